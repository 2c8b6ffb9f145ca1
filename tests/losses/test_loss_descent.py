"""Gradient descent on pixels: each loss (and a Gram + pixel MSE mix) is actually minimised.

Adam on the pixels of a 32 px image starting from uniform noise. Thresholds were set by
measurement (ratios in comments, random-weight VGG19 / tiny CLIP, fixed seeds) with margin,
and are far from what a wrong gradient (sign, missing term, detached graph) would give.
Stochastic terms (ZeCon patches, CLIP cutouts) are scored with the same reseeded draws at the
start and the end.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from losses import (
    CLIPStyleLoss,
    CombinedLoss,
    ContentMSELoss,
    GramStyleLoss,
    GuidanceLoss,
    RangeLoss,
    VGGContentLoss,
    ZeConLoss,
)


def _descend(loss: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss(x).sum().backward()
        opt.step()
    return x.detach()


def _score(term: GuidanceLoss, x: torch.Tensor) -> float:
    term.reset_rng(123)  # the same patches/cutouts for the start and the end score
    with torch.no_grad():
        return float(term(x).sum())


# name -> (build(vgg, clip, images), steps, lr, max ratio end/start)
CASES: dict[str, tuple[Callable, int, float, float]] = {
    # measured ~7e-4
    "pixel_mse_content": (lambda v, c, im: ContentMSELoss(im["smooth"](1)), 60, 0.05, 0.01),
    # measured ~0.007 (relu4_2 is 4x4 at 32 px)
    "vgg_content": (lambda v, c, im: VGGContentLoss(im["smooth"](1), v, layers=("relu4_2",)), 80, 0.05, 0.1),
    # measured ~0.25; its floor is not 0 (identity still scores ~2.4 of a 9.2 start)
    "vgg_patchnce_content": (lambda v, c, im: ZeConLoss(im["smooth"](1), v), 100, 0.05, 0.5),
    # measured ~0.045
    "gram_style": (lambda v, c, im: GramStyleLoss(im["texture"](2), v), 60, 0.1, 0.2),
    # measured ~0.21 (fresh random cutouts each step)
    "clip_style": (lambda v, c, im: CLIPStyleLoss(im["texture"](2, size=64), c, num_cutouts=8), 100, 0.05, 0.5),
    # whole-image CLIP distance, measured ~2e-4
    "clip_whole": (lambda v, c, im: CLIPStyleLoss(im["texture"](2, size=64), c, num_cutouts=0), 60, 0.05, 0.01),
    "range": (lambda v, c, im: RangeLoss(), 40, 0.05, 0.01),
}


@pytest.mark.parametrize("case", list(CASES))
def test_single_loss_descends(case: str, vgg, clip_encoder, images) -> None:
    build, steps, lr, max_ratio = CASES[case]
    term = build(vgg, clip_encoder, images)
    x0 = images["noise"](5)
    if case == "range":
        x0 = x0 * 3 - 1  # start well outside [0,1]
    start = _score(term, x0)
    end = _score(term, _descend(term, x0, steps, lr))
    assert start > 0
    assert end < max_ratio * start, f"{case}: {start:.4g} -> {end:.4g} (ratio {end / start:.3g})"


def test_gram_plus_pixel_mse_descends(vgg, images) -> None:
    content, style, x0 = images["smooth"](1), images["texture"](2), images["noise"](5)
    gram, mse = GramStyleLoss(style, vgg), ContentMSELoss(content)
    # Weights that give both terms the value 1 at the start, so neither drowns the other.
    gram.weight = 1.0 / float(gram(x0))
    mse.weight = 1.0 / float(mse(x0))
    loss = CombinedLoss([gram, mse])
    x = _descend(lambda t: loss(t).total, x0, 60, 0.05)
    with torch.no_grad():
        end = loss(x)
    # measured: total 2 -> 0.027; weighted gram 1 -> 0.012, weighted mse 1 -> 0.016
    assert float(end.total) < 0.1 * 2.0
    for name, value in end.terms.items():
        assert float(value) * end.weights[name] < 0.1, name
