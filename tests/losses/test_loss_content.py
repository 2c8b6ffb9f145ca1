"""Content terms: pixel MSE, VGG feature MSE, ZeCon PatchNCE."""

from __future__ import annotations

import math

import pytest
import torch

from losses import ContentMSELoss, VGGContentLoss, ZeConLoss, patch_nce


def _grad(loss, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(x).sum(), x)
    return g


# -- pixel MSE ---------------------------------------------------------------------------------


def test_mse_zero_at_identity_and_grows(images) -> None:
    content = images["smooth"](1)
    loss = ContentMSELoss(content)
    noise = images["noise"](9) - 0.5
    values = [float(loss(content + a * noise)) for a in (0.0, 0.05, 0.1, 0.2)]
    assert values[0] == 0.0
    assert values == sorted(values) and values[1] > 0
    assert values[2] == pytest.approx(4 * values[1], rel=1e-4)  # quadratic in the offset


def test_mse_gradient_and_batch(images) -> None:
    loss = ContentMSELoss(images["smooth"](1))
    x = images["noise"](2, batch=3)
    out = loss(x)
    assert out.shape == (3,) and out.dtype == torch.float32
    g = _grad(loss, x)
    assert g.shape == x.shape and bool(torch.isfinite(g).all())


def test_pairing_rule(images) -> None:
    refs = torch.cat([images["smooth"](1), images["smooth"](2)])  # R = 2
    loss = ContentMSELoss(refs)
    matched = refs[torch.tensor([0, 1, 0, 1])]  # sample i pairs with reference i % 2
    swapped = refs[torch.tensor([1, 0, 1, 0])]
    assert torch.equal(loss(matched), torch.zeros(4))
    assert bool((loss(swapped) > 0).all())


def test_content_resized_to_generated_size(images) -> None:
    content = images["smooth"](1, size=64)
    out = ContentMSELoss(content)(images["smooth"](1, size=32))
    assert out.shape == (1,) and float(out) < 1e-3  # the same smooth picture, half size


def test_fit_center_crop_versus_stretch(images) -> None:
    wide = images["smooth"](1, size=(32, 64))
    center = wide[..., 16:48]
    assert float(ContentMSELoss(wide, fit="center_crop")(center)) == pytest.approx(0.0, abs=1e-10)
    assert float(ContentMSELoss(wide, fit="stretch")(center)) > 1e-3


def test_mse_mask_confines_gradient_and_averages_inside(images) -> None:
    content = images["smooth"](1)
    mask = torch.zeros(32, 32)
    mask[:, :16] = 1.0
    loss = ContentMSELoss(content, mask=mask)
    x = images["noise"](4)
    g = _grad(loss, x)
    assert torch.equal(g[..., 16:], torch.zeros_like(g[..., 16:]))
    assert bool((g[..., :16] != 0).any())
    expected = (x - content)[..., :16].square().mean()
    assert float(loss(x)) == pytest.approx(float(expected), rel=1e-5)
    # A low-resolution mask is resized (bilinear: a soft edge of a few pixels) to the image.
    small = torch.zeros(8, 8)
    small[:, :4] = 1.0
    soft = ContentMSELoss(content, mask=small)
    assert float(soft(x)) == pytest.approx(float(expected), rel=0.05)
    g = _grad(soft, x)
    assert torch.equal(g[..., 20:], torch.zeros_like(g[..., 20:])) and bool((g[..., :12] != 0).all())


# -- VGG content -------------------------------------------------------------------------------


@pytest.mark.parametrize("layers", [("relu4_2",), ("conv1_1", "conv2_1")])
def test_vgg_content_identity_growth_gradient(vgg, images, layers) -> None:
    content = images["smooth"](1)
    loss = VGGContentLoss(content, vgg, layers=layers)
    noise = images["noise"](9) - 0.5
    values = [float(loss(content + a * noise)) for a in (0.0, 0.1, 0.3)]
    assert values[0] < 1e-12
    assert values[0] < values[1] < values[2]
    x = images["noise"](3, batch=2)
    assert loss(x).shape == (2,)
    g = _grad(loss, x)
    assert g.shape == x.shape and bool(torch.isfinite(g).all()) and g.abs().sum() > 0


def test_vgg_content_other_generated_size(vgg, images) -> None:
    content = images["smooth"](1, size=(40, 24))
    loss = VGGContentLoss(content, vgg, layers=("relu3_1",), fit="center_crop")
    out = loss(images["noise"](3, size=48))
    assert out.shape == (1,) and bool(torch.isfinite(out).all())
    assert ("targets", (48, 48)) in loss._cache  # cached per generated size


def test_vgg_content_mask_averages_inside(vgg, images) -> None:
    content = images["smooth"](1)
    mask = torch.zeros(32, 32)
    mask[:16] = 1.0
    loss = VGGContentLoss(content, vgg, layers=("conv1_1",), mask=mask)
    x = images["noise"](2)
    with torch.no_grad():
        diff = vgg(x, ["conv1_1"])["conv1_1"] - vgg(content, ["conv1_1"])["conv1_1"]
    assert float(loss(x)) == pytest.approx(float(diff[..., :16, :].square().mean()), rel=1e-4)


# -- ZeCon ---------------------------------------------------------------------------------------


def test_zecon_orders_identity_perturbed_unrelated(vgg, images) -> None:
    content = images["smooth"](1)
    loss = ZeConLoss(content, vgg)
    noise = images["noise"](9) - 0.5

    def value(x: torch.Tensor) -> float:
        loss.reset_rng(0)
        return float(loss(x))

    same, near, far, unrelated = (
        value(content),
        value(content + 0.1 * noise),
        value(content + 0.4 * noise),
        value(images["smooth"](5)),
    )
    assert same < near < far
    assert same < 0.5 * unrelated


def test_zecon_gradient_batch_and_patch_cap(vgg, images) -> None:
    loss = ZeConLoss(images["smooth"](1), vgg, num_patches=10**6)  # capped at each layer's h*w
    x = images["noise"](3, batch=2)
    out = loss(x)
    assert out.shape == (2,) and bool(torch.isfinite(out).all())
    g = _grad(loss, x)
    assert g.shape == x.shape and bool(torch.isfinite(g).all()) and g.abs().sum() > 0


def test_zecon_repeatable_after_reset_rng(vgg, images) -> None:
    loss = ZeConLoss(images["smooth"](1), vgg, num_patches=32)
    x = images["noise"](3)
    loss.reset_rng(1)
    a, b = loss(x), loss(x)
    loss.reset_rng(1)
    assert torch.equal(loss(x), a)
    assert not torch.equal(a, b)  # fresh locations on every call
    loss.reset_rng(2)
    assert not torch.equal(loss(x), a)
    # The construction seed takes part, so two terms with different seeds differ under one run seed.
    other = ZeConLoss(images["smooth"](1), vgg, num_patches=32, seed=7)
    loss.reset_rng(1)
    other.reset_rng(1)
    assert not torch.equal(loss(x), other(x))


def test_zecon_mask_samples_inside_the_mask(vgg, images) -> None:
    # relu1_1 sees 3x3 pixels, so with every location inside the left half, pixels in the right
    # half (beyond the receptive field) cannot change the loss or receive gradient.
    content = images["smooth"](1)
    mask = torch.zeros(32, 32)
    mask[:, :12] = 1.0
    loss = ZeConLoss(content, vgg, layers=("relu1_1",), num_patches=64, mask=mask)
    x = images["noise"](3)
    y = x.clone()
    y[..., 16:] = images["noise"](4)[..., 16:]
    loss.reset_rng(3)
    a = loss(x)
    loss.reset_rng(3)
    assert torch.equal(loss(y), a)
    loss.reset_rng(3)
    g = _grad(loss, x)
    assert torch.equal(g[..., 14:], torch.zeros_like(g[..., 14:])) and g.abs().sum() > 0


def test_zecon_rejects_bad_settings(vgg, images) -> None:
    with pytest.raises(ValueError, match="num_patches"):
        ZeConLoss(images["smooth"](1), vgg, num_patches=1)
    with pytest.raises(ValueError, match="tau"):
        ZeConLoss(images["smooth"](1), vgg, tau=0.0)
    with pytest.raises(ValueError, match="unknown layer"):
        ZeConLoss(images["smooth"](1), vgg, layers=("relu9_9",))


def test_patch_nce_definition() -> None:
    # One-hot features: every location is orthogonal to every other one.
    n = 16
    f = torch.eye(n).view(1, n, 4, 4)
    idx = torch.arange(n).unsqueeze(0)
    matched = float(patch_nce(f, f, idx, tau=0.5))
    expected = math.log(1 + (n - 1) * math.exp(-1 / 0.5))  # positive cos 1, negatives cos 0
    assert matched == pytest.approx(expected, rel=1e-5)
    shuffled = f.flatten(2)[..., torch.roll(torch.arange(n), 1)].view(1, n, 4, 4)
    assert float(patch_nce(f, shuffled, idx)) > 10.0  # every positive is now a wrong location
    assert float(patch_nce(f, f, idx[:, :4], tau=0.5)) < matched  # fewer negatives, easier
