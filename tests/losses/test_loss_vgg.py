"""VGG19Features: layer naming, normalisation, partial runs, freezing, and weight loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torchvision.models import vgg as tv_vgg

from headless.testbed.standins.loss_nets import random_vgg19_features
from losses import GRAM_STYLE_LAYERS, VGG_CONTENT_LAYER_PRESETS, VGG19Features, load_vgg19_features


def test_layer_names(vgg) -> None:
    names = vgg.available_layers
    assert len(names) == 37
    assert names[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert names.index("relu4_2") == 22 and names.index("relu5_1") == 29 and names[-1] == "pool5"
    for layers in (*VGG_CONTENT_LAYER_PRESETS.values(), GRAM_STYLE_LAYERS):
        assert set(layers) <= set(names)
    assert not any(isinstance(m, torch.nn.ReLU) and m.inplace for m in vgg.modules())


def test_matches_torchvision_with_imagenet_normalisation(vgg, images) -> None:
    # torchvision's own builder for the VGG19 stack, loaded with the same weights.
    ref = tv_vgg.make_layers(tv_vgg.cfgs["E"])
    ref.load_state_dict(vgg.body.state_dict())
    x = images["smooth"](1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = ref[:23]((x - mean) / std)  # up to relu4_2
        got = vgg(x, ["relu4_2"])["relu4_2"]
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_conv_and_relu_outputs_coexist(vgg, images) -> None:
    x = images["noise"](1).requires_grad_(True)
    feats = vgg(x, ["conv1_1", "relu1_1", "conv2_1"])
    assert set(feats) == {"conv1_1", "relu1_1", "conv2_1"}
    assert feats["conv1_1"].min() < 0  # not overwritten by an in-place ReLU
    assert torch.equal(feats["relu1_1"], feats["conv1_1"].clamp_min(0))
    (feats["conv1_1"].sum() + feats["relu1_1"].square().sum() + feats["conv2_1"].sum()).backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())


def test_runs_only_up_to_deepest_layer(fresh_vgg, images) -> None:
    ran: list[int] = []
    for i, m in enumerate(fresh_vgg.body):
        m.register_forward_hook(lambda mod, inp, out, i=i: ran.append(i))
    fresh_vgg(images["noise"](1), ["relu2_1", "conv1_1"])
    assert ran == list(range(7))  # conv1_1 .. relu2_1
    assert fresh_vgg.calls == 1
    assert fresh_vgg(images["noise"](1), []) == {} and fresh_vgg.calls == 1


def test_frozen_eval_and_unknown_layer(vgg) -> None:
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['relu6_1'\]; available: conv1_1"):
        vgg(torch.rand(1, 3, 8, 8), ["relu6_1"])


def test_random_init_is_seeded_and_leaves_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    a, b, c = random_vgg19_features(3), random_vgg19_features(3), random_vgg19_features(4)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.body[0].weight, b.body[0].weight)
    assert not torch.equal(a.body[0].weight, c.body[0].weight)


# -- loading ---------------------------------------------------------------------------------


def _tv_state(vgg: VGG19Features) -> dict[str, torch.Tensor]:
    return {f"features.{k}": v.clone() for k, v in vgg.body.state_dict().items()}


def test_load_torchvision_pth_drops_classifier(vgg, tmp_path: Path) -> None:
    sd = _tv_state(vgg)
    sd["classifier.0.weight"] = torch.zeros(4, 8)  # stands in for the (huge) classifier
    sd["classifier.0.bias"] = torch.zeros(4)
    path = tmp_path / "vgg19-dcbee923.pth"
    torch.save(sd, path)
    loaded = load_vgg19_features(str(path))
    assert isinstance(loaded, VGG19Features)
    assert all(
        torch.equal(a, b)
        for a, b in zip(loaded.body.state_dict().values(), vgg.body.state_dict().values(), strict=True)
    )
    assert not any("classifier" in k for k in loaded.state_dict())
    assert not any(p.requires_grad for p in loaded.parameters())


@pytest.mark.parametrize("prefix", ["features.", ""])
def test_load_safetensors_both_key_styles(vgg, tmp_path: Path, prefix: str) -> None:
    path = tmp_path / "vgg.safetensors"
    save_file({f"{prefix}{k}": v.half().contiguous() for k, v in vgg.body.state_dict().items()}, str(path))
    loaded = load_vgg19_features(str(path))
    w = loaded.body[0].weight
    assert w.dtype == torch.float32 and torch.equal(w, vgg.body[0].weight.half().float())


def test_load_nested_state_dict(vgg, tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in _tv_state(vgg).items()}, "epoch": 3}, path)
    assert torch.equal(load_vgg19_features(str(path)).body[2].weight, vgg.body[2].weight)


@pytest.mark.parametrize("name", ["broken.pth", "broken.safetensors"])
def test_corrupt_file_error_names_the_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"this is not a weights file" * 10)
    with pytest.raises(ValueError, match=rf"could not read VGG19 weights file '.*{name}' \(unreadable or corrupt"):
        load_vgg19_features(str(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="VGG19 weights file not found: '.*nope.pth'"):
        load_vgg19_features(str(tmp_path / "nope.pth"))


def test_wrong_keys_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "not_vgg.safetensors"
    save_file({"encoder.conv.weight": torch.zeros(3, 3), "decoder.weight": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match=r"'.*not_vgg.safetensors' does not look like a VGG19 weights file: 32 of 32"):
        load_vgg19_features(str(path))


def test_vgg16_file_is_refused(tmp_path: Path) -> None:
    vgg16 = tv_vgg.make_layers(tv_vgg.cfgs["D"])
    path = tmp_path / "vgg16.pth"
    torch.save({f"features.{k}": v for k, v in vgg16.state_dict().items()}, path)
    with pytest.raises(ValueError, match=r"vgg16.pth.*(does not look like a VGG19|VGG19 expects)"):
        load_vgg19_features(str(path))


def test_shape_mismatch_names_file_and_key(vgg, tmp_path: Path) -> None:
    sd = _tv_state(vgg)
    sd["features.5.weight"] = torch.zeros(128, 64, 1, 1)
    path = tmp_path / "odd.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    with pytest.raises(ValueError, match=r"'.*odd.safetensors': weight features.5.weight has shape \(128, 64, 1, 1\)"):
        load_vgg19_features(str(path))
