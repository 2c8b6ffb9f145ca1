"""Transitional alias: this module now lives in headless.tiny_models (the runner shares it)."""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)  # appended, so ComfyUI's own top-level `nodes` is never shadowed

from headless import tiny_models as _impl  # noqa: E402

sys.modules[__name__] = _impl
