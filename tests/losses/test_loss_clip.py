"""CLIPImageEncoder and the offline open_clip loader."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from headless.testbed.standins.loss_nets import TINY_OPENCLIP_ARCH as TINY_OPEN_CLIP_NAME
from headless.testbed.standins.loss_nets import ensure_tiny_open_clip_registered, tiny_open_clip_config
from losses import (
    CLIP_MEAN,
    CLIP_STD,
    CLIPImageEncoder,
    load_open_clip_encoder,
    register_open_clip_config,
)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch) -> None:
    """Any download attempt fails the test loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", refuse)
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained_from_hf", refuse)


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    """A full (text + vision) open_clip state dict for the tiny architecture."""
    ensure_tiny_open_clip_registered()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        model = open_clip.create_model(TINY_OPEN_CLIP_NAME, pretrained=None)
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def _check_loaded(enc: CLIPImageEncoder, state: dict[str, torch.Tensor]) -> None:
    visual = {k[len("visual.") :]: v for k, v in state.items() if k.startswith("visual.")}
    got = enc.model.state_dict()
    assert set(got) == set(visual)
    assert all(torch.equal(got[k], visual[k]) for k in visual)


def test_tiny_config_registered() -> None:
    name = ensure_tiny_open_clip_registered()
    assert name == TINY_OPEN_CLIP_NAME and name in open_clip.list_models()
    assert ensure_tiny_open_clip_registered() == name  # idempotent
    assert tiny_open_clip_config()["vision_cfg"]["image_size"] == 64


def test_random_encoder(clip_encoder) -> None:
    assert clip_encoder.image_size == (64, 64)
    assert torch.allclose(clip_encoder.mean.flatten(), torch.tensor(CLIP_MEAN))
    assert torch.allclose(clip_encoder.std.flatten(), torch.tensor(CLIP_STD))
    assert not any(p.requires_grad for p in clip_encoder.parameters()) and not clip_encoder.training
    for size in ((64, 64), (100, 150), (30, 40)):  # equal, shrink (area), enlarge (bicubic)
        x = torch.rand(2, 3, *size, requires_grad=True)
        emb = clip_encoder(x)
        assert emb.shape == (2, 32)
        (g,) = torch.autograd.grad(emb.square().sum(), x)
        assert g.shape == x.shape and bool(torch.isfinite(g).all()) and g.abs().sum() > 0
    again = load_open_clip_encoder(TINY_OPEN_CLIP_NAME, None, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(again.parameters(), clip_encoder.parameters(), strict=True))


def test_generic_wrapper_normalises(clip_encoder) -> None:
    seen = {}

    def encode(x: torch.Tensor) -> torch.Tensor:
        seen["x"] = x
        return x.mean(dim=(2, 3))

    enc = CLIPImageEncoder(encode, 8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    out = enc(torch.ones(1, 3, 16, 16))
    assert seen["x"].shape == (1, 3, 8, 8) and torch.allclose(out, torch.full((1, 3), 2.0))


@pytest.mark.parametrize("fmt", ["safetensors", "pt", "nested"])
def test_load_weights_file(tiny_state, tmp_path: Path, fmt: str) -> None:
    if fmt == "safetensors":
        path = tmp_path / "tiny.safetensors"
        save_file(tiny_state, str(path))
    elif fmt == "pt":
        path = tmp_path / "tiny.pt"
        torch.save(tiny_state, path)
    else:
        path = tmp_path / "tiny_ckpt.pt"
        torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in tiny_state.items()}}, path)
    enc = load_open_clip_encoder(TINY_OPEN_CLIP_NAME, str(path))
    _check_loaded(enc, tiny_state)
    assert not any(p.requires_grad for p in enc.parameters())
    assert not any("text" in k or "token_embedding" in k for k in enc.state_dict())  # text tower gone


def test_visual_only_file(tiny_state, tmp_path: Path) -> None:
    path = tmp_path / "visual.safetensors"
    save_file({k[7:]: v for k, v in tiny_state.items() if k.startswith("visual.")}, str(path))
    _check_loaded(load_open_clip_encoder(TINY_OPEN_CLIP_NAME, str(path)), tiny_state)


def test_config_file_registers_custom_arch(tiny_state, tmp_path: Path) -> None:
    cfg_path = tmp_path / "custom.json"
    cfg_path.write_text(
        json.dumps({"model_cfg": tiny_open_clip_config(), "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3}})
    )
    path = tmp_path / "tiny.safetensors"
    save_file(tiny_state, str(path))
    enc = load_open_clip_encoder("sg-test-from-json", str(path), config_path=str(cfg_path))
    _check_loaded(enc, tiny_state)
    assert torch.allclose(enc.mean.flatten(), torch.full((3,), 0.5))
    assert "sg-test-from-json" in open_clip.list_models()


def test_arch_file_mismatch_is_explained(tiny_state, tmp_path: Path) -> None:
    wide = tiny_open_clip_config()
    wide["vision_cfg"]["width"] = 96
    register_open_clip_config("sg-test-wide", wide)
    path = tmp_path / "tiny_weights.safetensors"
    save_file(tiny_state, str(path))
    with pytest.raises(ValueError) as err:
        load_open_clip_encoder("sg-test-wide", str(path))
    msg = str(err.value)
    assert (
        "weights file '" in msg
        and "tiny_weights.safetensors' does not match open_clip architecture 'sg-test-wide'" in msg
    )
    assert "pick the architecture the file was trained with" in msg
    assert TINY_OPEN_CLIP_NAME in msg  # the architecture whose shapes match is suggested
    # Missing keys: a ResNet-style file against a ViT architecture.
    path2 = tmp_path / "other.safetensors"
    save_file({"visual.layer1.0.conv1.weight": torch.zeros(2, 2)}, str(path2))
    with pytest.raises(ValueError, match=r"does not match open_clip architecture .*missing / 1 unexpected keys"):
        load_open_clip_encoder(TINY_OPEN_CLIP_NAME, str(path2))


def test_hugging_face_format_is_named(tmp_path: Path) -> None:
    path = tmp_path / "clip_vision_hf.safetensors"
    save_file({"vision_model.embeddings.patch_embedding.weight": torch.zeros(4, 3, 2, 2)}, str(path))
    with pytest.raises(ValueError, match="Hugging Face transformers CLIP format"):
        load_open_clip_encoder(TINY_OPEN_CLIP_NAME, str(path))


def test_unknown_arch_lists_close_names() -> None:
    with pytest.raises(ValueError, match=r"unknown open_clip architecture 'ViT-B-23'; close names: .*ViT-B-32"):
        load_open_clip_encoder("ViT-B-23", None)


def test_corrupt_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="could not read open_clip weights file '.*bad.safetensors'"):
        load_open_clip_encoder(TINY_OPEN_CLIP_NAME, str(bad))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_open_clip_encoder(TINY_OPEN_CLIP_NAME, str(tmp_path / "missing.pt"))
