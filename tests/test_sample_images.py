"""First run: the shipped workflows' sample images reach ComfyUI's input folder without a manual copy."""

from __future__ import annotations

import importlib
import json

import pytest

from headless.testbed.base import REPO_ROOT

pytestmark = pytest.mark.compat

SAMPLES = REPO_ROOT / "workflows" / "images"


def _named_images() -> set[str]:
    """Every image a shipped workflow's Load Image node names (and every clip its Load Video node names)."""
    names = set()
    for twin in (REPO_ROOT / "workflows" / "api").glob("*.json"):
        for node in json.loads(twin.read_text()).values():
            if node["class_type"] == "LoadImage":
                names.add(node["inputs"]["image"])
            if node["class_type"] == "LoadVideo":
                names.add(node["inputs"]["file"])
    return names


def test_every_named_image_is_a_shipped_sample():
    assert _named_images() and _named_images() <= {p.name for p in SAMPLES.glob("*.jpg")} | {p.name for p in SAMPLES.glob("*.mp4")}


def test_loading_the_pack_put_the_samples_in_a_fresh_input_folder(comfy_base):
    """The session's base folder starts with an empty input/; ComfyUI's loader loaded the pack into it."""
    import folder_paths

    input_dir = folder_paths.get_input_directory()
    assert input_dir == str(comfy_base / "input")
    for name in sorted(_named_images()):
        copy = comfy_base / "input" / name
        assert copy.is_file(), f"{name} is not in ComfyUI's input folder after the pack loaded"
        assert copy.read_bytes() == (SAMPLES / name).read_bytes()
    # ... and Load Image lists them (the list its combo offers).
    import nodes

    choices = nodes.LoadImage.INPUT_TYPES()["required"]["image"][0]
    assert {n for n in _named_images() if not n.endswith(".mp4")} <= set(choices)


def _install(pack):
    """The function as the pack ComfyUI loaded holds it."""
    return importlib.import_module(f"{pack.__name__}.nodes.sample_images").install_sample_images


def test_a_users_file_of_the_same_name_is_kept(tmp_path, pack):
    install_sample_images = _install(pack)

    mine = tmp_path / "style_guidance_style.jpg"
    mine.write_bytes(b"the user's own picture")
    copied = install_sample_images(tmp_path)
    assert mine.read_bytes() == b"the user's own picture"
    assert "style_guidance_style.jpg" not in copied and "style_guidance_content.jpg" in copied
    assert install_sample_images(tmp_path) == []  # second load: nothing to do


def test_an_unwritable_input_folder_is_logged_not_raised(tmp_path, pack, caplog):
    install_sample_images = _install(pack)

    blocker = tmp_path / "input"
    blocker.write_text("a file where the folder should be")
    with caplog.at_level("WARNING", logger="style_guidance"):
        assert install_sample_images(blocker) == []
    assert "sample images not installed" in caplog.text
