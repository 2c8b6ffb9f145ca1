#!/usr/bin/env bash
# Second virtual environment for the compatibility run: the pack's requirements, the test tools
# and a newer ComfyUI tree's own requirements (default ../shared/comfyui-0.8.0), so that
# `COMFYUI_PATH=<tree> <venv>/bin/python -m pytest -m compat` runs the marked subset against it.
# Usage: scripts/setup_compat_env.sh [VENV] (or STYLE_GUIDANCE_COMPAT_VENV; default .venv08).
# Idempotent: a second run only checks what is there. No model weights are downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${1:-${STYLE_GUIDANCE_COMPAT_VENV:-.venv08}}
COMPAT_COMFYUI=${COMPAT_COMFYUI_PATH:-../shared/comfyui-0.8.0}
# The same torch build as scripts/setup_env.sh, so both runs differ only in ComfyUI.
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}

if [ ! -f "$COMPAT_COMFYUI/requirements.txt" ]; then
  echo "setup_compat_env: no ComfyUI tree at $COMPAT_COMFYUI (set COMPAT_COMFYUI_PATH)" >&2
  exit 1
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
pip install -q --upgrade pip >/dev/null 2>&1 || true

# shellcheck disable=SC2086
pip install -q $TORCH_SPEC
pip install -q -r requirements.txt -r requirements-test.txt
# The tree's own requirements (comfy-kitchen, newer frontend/template packages), less
# torch/torchvision (installed above) and torchaudio (no build matches this torch here).
grep -vE '^\s*(torch|torchvision|torchaudio)\s*([<>=!~].*)?$' "$COMPAT_COMFYUI/requirements.txt" \
  > "$VENV/comfyui-requirements.txt"
pip install -q -r "$VENV/comfyui-requirements.txt"
echo "setup_compat_env: ready in $VENV ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'), ComfyUI $(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$COMPAT_COMFYUI/comfyui_version.py" 2>/dev/null || echo '?'))"
