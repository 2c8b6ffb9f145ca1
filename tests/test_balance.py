"""A weight is a share of the guidance direction: measured independently of the engine's bookkeeping.

The engine combines per-term unit-RMS gradients. Here each term's raw pixel gradient is taken
with autograd on its own, the engine's combined direction is regressed onto them (least
squares), and each term's contribution |c_i| * ||g_i|| is compared with its weight share.
The same measurement on the old "normalise the sum" rule must fail: that is what makes the
property a test.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from headless.testbed.standins.loss_nets import ensure_tiny_open_clip_registered, random_vgg19_features
from losses import (
    CLIPStyleLoss,
    CombinedLoss,
    ContentMSELoss,
    GramStyleLoss,
    VGGContentLoss,
    ZeConLoss,
    load_open_clip_encoder,
)
from sampler.balance import balanced_direction, shares

# The weights every shipped workflow used before balancing (MSE, VGG, PatchNCE, CLIP, Gram).
WEIGHTS = {"pixel_mse_content": 1.0, "vgg_content": 1.0, "vgg_patchnce_content": 0.5, "clip_style": 1.5, "gram_style": 1.0}


def _picture(seed: int, size: int) -> torch.Tensor:
    """A smooth random colour field with some texture, (1,3,size,size) in [0,1]."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 6, 6, generator=gen)
    smooth = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return (0.8 * smooth + 0.2 * torch.rand(1, 3, size, size, generator=gen)).clamp(0, 1)


@pytest.fixture(scope="module")
def vgg():
    return random_vgg19_features(0)


@pytest.fixture(scope="module")
def encoders() -> dict:
    tiny = load_open_clip_encoder(ensure_tiny_open_clip_registered(), None, seed=4)
    return {"tiny": tiny}


def _chain(vgg, encoder, size: int) -> CombinedLoss:
    content, style = _picture(1, size), _picture(2, size + 32)
    return CombinedLoss([
        ContentMSELoss(content, weight=WEIGHTS["pixel_mse_content"]),
        VGGContentLoss(content, vgg, weight=WEIGHTS["vgg_content"]),
        ZeConLoss(content, vgg, weight=WEIGHTS["vgg_patchnce_content"], num_patches=128),
        CLIPStyleLoss(style, encoder, weight=WEIGHTS["clip_style"], num_cutouts=4),
        GramStyleLoss(style, vgg, weight=WEIGHTS["gram_style"]),
    ])


def _raw_gradients(chain: CombinedLoss, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each term's own pixel gradient, by plain autograd (no engine code)."""
    x = image.clone().requires_grad_(True)
    chain.reset_rng(5)  # the same cutouts/patches the balanced evaluation draws
    values = chain.evaluate(x).terms
    names = list(values)
    return {n: torch.autograd.grad(values[n].sum(), x, retain_graph=i < len(names) - 1)[0]
            for i, n in enumerate(names)}


def regressed_shares(direction: torch.Tensor, raw: dict[str, torch.Tensor]) -> dict[str, float]:
    """Write ``direction`` as sum_i c_i g_i (least squares); term i's share is |c_i| ||g_i|| / sum."""
    names = list(raw)
    a = torch.stack([raw[n].flatten().double() for n in names], dim=1)  # (P, T)
    c = torch.linalg.lstsq(a, direction.flatten().double().unsqueeze(1)).solution.flatten()
    contrib = {n: abs(float(c[i])) * float(raw[n].double().norm()) for i, n in enumerate(names)}
    total = sum(contrib.values())
    return {n: v / total for n, v in contrib.items()}


def _balanced(chain: CombinedLoss, image: torch.Tensor) -> torch.Tensor:
    leaf = image.clone().requires_grad_(True)
    chain.reset_rng(5)
    result = chain.evaluate(leaf)
    return balanced_direction(result.terms, result.weights, leaf).direction


def _summed(chain: CombinedLoss, image: torch.Tensor) -> torch.Tensor:
    """The rule the engine used before: one gradient of the weighted sum."""
    leaf = image.clone().requires_grad_(True)
    chain.reset_rng(5)
    (g,) = torch.autograd.grad(chain.evaluate(leaf).total.sum(), leaf)
    return g


def _check(vgg, encoder, size: int) -> None:
    chain = _chain(vgg, encoder, size)
    image = _picture(3, size)
    raw = _raw_gradients(chain, image)
    want = {k: w / sum(WEIGHTS.values()) for k, w in WEIGHTS.items()}
    got = regressed_shares(_balanced(chain, image), raw)
    for k in WEIGHTS:
        assert 0.5 * want[k] <= got[k] <= 2.0 * want[k], f"{size}px {k}: share {got[k]:.3f}, weight share {want[k]:.3f}"
    # Counterfactual: normalising the sum lets the terms' units decide; some term leaves the band.
    old = regressed_shares(_summed(chain, image), raw)
    outside = [k for k in WEIGHTS if not 0.5 * want[k] <= old[k] <= 2.0 * want[k]]
    assert outside, f"the summed rule should break the shares at {size}px: {old}"
    print(f"\n{size}px {encoder.name}: balanced {_fmt(got)}; summed {_fmt(old)}")


def _fmt(d: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1%}" for k, v in d.items())


# One size per encoder (256 px tiny, 512 px real-size): both sizes are covered, the suite's time kept down.
@pytest.mark.parametrize("size", [256])
def test_each_weight_is_its_share_of_the_direction(vgg, encoders, size) -> None:
    _check(vgg, encoders["tiny"], size)


@pytest.mark.slow
@pytest.mark.parametrize("size", [512])
def test_shares_hold_with_real_size_networks(vgg, size) -> None:
    """Real VGG19 and ViT-B-32 architectures (random weights: nothing is downloaded)."""
    encoder = load_open_clip_encoder("ViT-B-32", None, seed=6)
    _check(vgg, encoder, size)


def test_reported_shares_follow_the_weights_and_skip_dead_terms() -> None:
    leaf = torch.randn(2, 3, 8, 8, requires_grad=True)
    values = {"a": (leaf ** 2).flatten(1).mean(1) * 1e6, "b": leaf.flatten(1).sum(1) * 1e-6,
              "dead": (leaf * 0).flatten(1).sum(1)}
    bal = balanced_direction(values, {"a": 3.0, "b": 1.0, "dead": 4.0}, leaf)
    s = {k: float(v) for k, v in shares([bal]).items()}
    assert s["a"] == pytest.approx(0.75) and s["b"] == pytest.approx(0.25) and s["dead"] == 0.0
    assert bal.zero == ["dead"]
    # Each live term enters at unit RMS times its weight, whatever its units (1e6 vs 1e-6 here):
    # the combined RMS lies between |3 - 1| and 3 + 1 per sample (the direction holds it in units of
    # the largest weight, bal.scale, so huge weights cannot overflow).
    rms = bal.direction.flatten(1).pow(2).mean(1).sqrt() * bal.scale
    assert bool(((rms >= 2.0 - 1e-5) & (rms <= 4.0 + 1e-5)).all()), rms


def test_negative_weight_flips_its_direction() -> None:
    leaf = torch.randn(1, 3, 8, 8, requires_grad=True)
    pos = balanced_direction({"a": (leaf ** 2).sum(1).mean((1, 2))}, {"a": 1.0}, leaf).direction
    leaf2 = leaf.detach().clone().requires_grad_(True)
    neg = balanced_direction({"a": (leaf2 ** 2).sum(1).mean((1, 2))}, {"a": -1.0}, leaf2).direction
    assert torch.allclose(pos, -neg)
