"""The private ComfyUI base folder and ComfyUI's settings, for the runner's local back end, the tests
and the benchmarks.

:func:`make_base` lays out a base folder with this pack linked into ``custom_nodes`` (and, for tests
and benchmarks, the SGTest* stand-in nodes of :mod:`headless.testbed.standin_nodes`, copied there
by path); :func:`configure_comfy` imports ComfyUI's settings rooted at it; :func:`init_nodes` loads
built-in and custom nodes with ComfyUI's own loader, exactly as a user's install would. The model
folder helpers read ``folder_paths``.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
STANDIN_NODES = Path(__file__).resolve().parent / "standin_nodes.py"
STANDIN_DIT_NODES = Path(__file__).resolve().parent / "standin_dit_nodes.py"  # tiny DiT loader, extra conditioning
PACK_DIRNAME = "style_guidance"
PACK_LOGGER = "style_guidance"


def make_base(base: Path, standin_nodes: bool = True) -> Path:
    """Lay out a ComfyUI base directory with this pack (and, for tests/benchmarks, the SGTest* nodes)."""
    for sub in ("models", "custom_nodes", "input", "output", "temp", "user"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / PACK_DIRNAME
    if not link.exists():
        link.symlink_to(REPO_ROOT, target_is_directory=True)
    if standin_nodes:
        shutil.copy(STANDIN_NODES, base / "custom_nodes" / "sg_standin_nodes.py")
        shutil.copy(STANDIN_DIT_NODES, base / "custom_nodes" / "sg_standin_dit_nodes.py")
    return base


def register_standin_nodes(base: Path) -> None:
    """Load the SGTest* stand-in nodes into a ComfyUI already started without them (the runner's tiny mode).

    Both files (:data:`STANDIN_NODES`: conditioning, narrow VAEs; :data:`STANDIN_DIT_NODES`: the tiny
    DiT loader, extra conditioning keys) go into the base's ``custom_nodes`` and through ComfyUI's own
    custom-node loader, as :func:`init_nodes` would have loaded them. Idempotent.
    """
    import nodes

    for source, name, probe in ((STANDIN_NODES, "sg_standin_nodes.py", "SGTestConditioning"),
                                (STANDIN_DIT_NODES, "sg_standin_dit_nodes.py", "SGTestDiTLoader")):
        if probe in nodes.NODE_CLASS_MAPPINGS:
            continue
        target = base / "custom_nodes" / name
        shutil.copy(source, target)
        if not asyncio.run(nodes.load_custom_node(str(target))):
            raise RuntimeError(f"ComfyUI could not load the stand-in nodes from {target}")


def configure_comfy(comfy_root: Path, base: Path, cpu: bool = True) -> None:
    """Import ComfyUI's settings in this process, rooted at ``base``; ``cpu`` forces ``--cpu``.

    Call before anything imports ``comfy.model_management`` (it reads the settings once).
    """
    if str(comfy_root) not in sys.path:
        sys.path.insert(0, str(comfy_root))
    import comfy.options

    comfy.options.enable_args_parsing(False)
    from comfy.cli_args import args

    args.cpu = cpu
    args.base_directory = str(base)
    args.disable_api_nodes = True
    args.database_url = "sqlite:///:memory:"
    # ComfyUI's nodes.py puts comfy/ first on sys.path, after which `import utils` finds
    # comfy/utils.py instead of ComfyUI's utils package; main.py imports the package before
    # nodes.py, so do the same (otherwise comfy_extras/nodes_images.py fails to load).
    import folder_paths  # noqa: F401  (reads args.base_directory at import)
    import utils.install_util  # noqa: F401


def init_nodes() -> None:
    """Load built-in and custom nodes with ComfyUI's own loader, as at server start."""
    import nodes

    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))


# ---------------------------------------------------------------------------------------------
# Model folders and node classes


def models_dir() -> Path:
    """The base folder's models/ (ComfyUI's ``folder_paths.models_dir``)."""
    import folder_paths

    return Path(folder_paths.models_dir).resolve()


def map_models_root(root: Path) -> None:
    """Make ``root`` (ComfyUI models layout) the first folder of every model type of the base."""
    import folder_paths

    base_models = models_dir()
    for name, (paths, _exts) in list(folder_paths.folder_names_and_paths.items()):
        for p in reversed(list(paths)):
            try:
                rel = Path(p).resolve().relative_to(base_models)
            except ValueError:
                continue
            folder_paths.add_model_folder_path(name, str(root / rel), is_default=True)


def load_extra_model_paths(yaml_path: Path) -> None:
    """Add the model folders of an ``extra_model_paths.yaml`` (ComfyUI's own reader)."""
    from utils.extra_config import load_extra_path_config

    load_extra_path_config(str(yaml_path))


def model_folder(folder: str) -> str | None:
    """Where ComfyUI looks first for files of a model type (None for a type it does not know)."""
    import folder_paths

    try:
        paths = folder_paths.get_folder_paths(folder)
    except KeyError:
        return None
    return paths[0] if paths else None


def model_file(folder: str, name: str) -> str | None:
    """The full path of a model file ComfyUI finds in its folders for that type, or None."""
    import folder_paths

    try:
        return folder_paths.get_full_path(folder, name)
    except KeyError:
        return None


def node_classes() -> dict[str, type]:
    """Every node class ComfyUI has loaded in this process (call after :func:`init_nodes`)."""
    import nodes

    return dict(nodes.NODE_CLASS_MAPPINGS)


def node_input_types(class_type: str) -> dict:
    """A loaded node's ``INPUT_TYPES()`` as ComfyUI computes it now (choice lists re-read)."""
    cls = node_classes().get(class_type)
    return cls.INPUT_TYPES() if cls is not None else {}
