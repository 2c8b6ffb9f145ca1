"""The pack's protocol (``protocol.py`` at the repository root), loaded by its file path.

The runner never imports the pack (it needs ComfyUI and torch); the names and schemas it shares
with the pack live in that one stdlib-only file, which this module loads under its own module
name and re-exports. Why a path load: see that file's docstring.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_NAME = "style_guidance_protocol"
_PATH = Path(__file__).resolve().parent.parent / "protocol.py"


def _load() -> ModuleType:
    mod = sys.modules.get(_NAME)
    if mod is None:
        spec = importlib.util.spec_from_file_location(_NAME, _PATH)
        if spec is None or spec.loader is None:
            raise ImportError(f"the pack's protocol module is missing: {_PATH}")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[_NAME] = mod
    return mod


_protocol = _load()
STEP_EVENT: str = _protocol.STEP_EVENT
STEP_EVENT_FIELDS: tuple[str, ...] = _protocol.STEP_EVENT_FIELDS
STEP_TERM_FIELDS: tuple[str, ...] = _protocol.STEP_TERM_FIELDS
MEASURE_UI_KEY: str = _protocol.MEASURE_UI_KEY
MEASURE_VERSION: int = _protocol.MEASURE_VERSION
MEASURE_TERM_FIELDS: tuple[str, ...] = _protocol.MEASURE_TERM_FIELDS
MEASURE_COSINE_FIELDS: tuple[str, ...] = _protocol.MEASURE_COSINE_FIELDS
MEASURE_QUALITY_FIELDS: tuple[str, ...] = _protocol.MEASURE_QUALITY_FIELDS
TERM_KINDS: dict[str, tuple[str, str]] = _protocol.TERM_KINDS
LEGACY_TERM_KINDS: dict[str, str] = _protocol.LEGACY_TERM_KINDS
kind_of_title = _protocol.kind_of_title
current_term_name = _protocol.current_term_name
term_label = _protocol.term_label

__all__ = ["LEGACY_TERM_KINDS", "TERM_KINDS", "current_term_name", "kind_of_title", "term_label",
           "MEASURE_COSINE_FIELDS", "MEASURE_QUALITY_FIELDS", "MEASURE_TERM_FIELDS", "MEASURE_UI_KEY",
           "MEASURE_VERSION", "STEP_EVENT",
           "STEP_EVENT_FIELDS", "STEP_TERM_FIELDS"]
