"""Transitional alias: this module now lives in headless.comfy_host (the runner shares it)."""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)  # appended, so ComfyUI's own top-level `nodes` is never shadowed

from headless import comfy_host as _impl  # noqa: E402

sys.modules[__name__] = _impl
