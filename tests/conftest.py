"""Shared fixtures: one real ComfyUI per test session, tiny models, in-process and server runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)  # for `headless`; appended so ComfyUI's top-level `nodes` wins

from headless.locate import ComfyUINotFound, locate_comfyui  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="session")
def comfy_root() -> Path:
    try:
        return locate_comfyui()
    except ComfyUINotFound as e:  # one clear message, then stop the whole run
        pytest.exit(str(e), returncode=3)


@pytest.fixture(scope="session")
def comfy_base(comfy_root, tmp_path_factory) -> Path:
    """A ComfyUI base folder with the pack, the test nodes and tiny models; ComfyUI imported."""
    from headless.testbed import base as hc

    base = hc.make_base(tmp_path_factory.mktemp("comfy_base"))
    _import_and_build(comfy_root, base)
    return base


def _import_and_build(comfy_root: Path, base: Path) -> None:
    import json

    from headless.testbed import base as hc
    from headless.testbed.standins import install, suite_models

    # Settings first (model_management reads them at import), then the model files that
    # need comfy's modules, then the custom nodes, as ComfyUI does at start-up.
    hc.configure_comfy(comfy_root, base)
    suite_models.build_all(base / "models")
    # Stand-ins under the shipped workflows' own model names. Their sample images are not copied:
    # the pack copies them into the empty input/ as ComfyUI loads it (tests/test_sample_images.py).
    for twin in sorted((hc.REPO_ROOT / "workflows" / "api").glob("*.json")):
        install.install_for_workflow(base / "models", json.loads(twin.read_text()))
    hc.init_nodes()


@pytest.fixture(scope="session")
def tiny_models(comfy_base) -> dict:
    from headless.testbed.standins import loss_nets as models
    from headless.testbed.standins import names

    return {
        "ckpt": names.TINY_CKPT, "kl_vae": names.TINY_KL_VAE, "vgg": models.TINY_VGG,
        "open_clip": models.TINY_OPENCLIP, "open_clip_arch": models.TINY_OPENCLIP_ARCH,
        "vgg_twin": models.TINY_VGG_TWIN, "open_clip_twin": models.TINY_OPENCLIP_TWIN,
    }


@pytest.fixture(scope="session")
def families(comfy_base, tiny_models) -> dict:
    """Stand-ins of SD2.x v-pred, SDXL, SD3.5, Flux (+ decoders, SD1.5 ControlNet and LoRA), built on first use."""
    from headless.testbed.standins import suite_models

    return {**tiny_models, **suite_models.build_families(comfy_base / "models")}


@pytest.fixture(scope="session")
def comfy(comfy_base):
    """In-process ComfyUI executor (PromptExecutor) over the test base."""
    from headless.testbed.inprocess import InProcessComfy

    return InProcessComfy()


@pytest.fixture(scope="session")
def comfy_server(comfy_root, comfy_base):
    """A real ComfyUI server process on a free loopback port; stopped at session end."""
    from headless.testbed.server import ComfyServer

    ARTIFACTS.mkdir(exist_ok=True)
    server = ComfyServer(comfy_root, comfy_base, ARTIFACTS / "comfyui-server.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pack(comfy_base):
    """The pack's package object as ComfyUI's loader imported it."""
    import sys as _sys

    from headless.testbed.base import PACK_DIRNAME

    for name, mod in list(_sys.modules.items()):
        if name.endswith(PACK_DIRNAME) and getattr(mod, "__file__", None) and hasattr(mod, "STYLE_GUIDANCE_VERSION"):
            return mod
    pytest.fail("the style_guidance pack was not loaded by ComfyUI's custom-node loader")


@pytest.fixture(scope="session")
def balance(pack):
    """The pack's ``sampler.balance`` module (the weighted and projected combinations)."""
    import importlib

    return importlib.import_module(f"{pack.__name__}.sampler.balance")
