"""The temporal consistency term (losses/temporal.py): frame-to-frame change against the content clip's."""

from __future__ import annotations

import pytest
import torch

from losses import CombinedLoss, TemporalConsistencyLoss, flicker


def _clip(frames: int = 5, motion: int = 0, seed: int = 0, size: int = 16) -> torch.Tensor:
    """(F, 3, size, size): one random picture seen through a window sliding ``motion`` px per frame."""
    wide = torch.rand((3, size, size + motion * (frames - 1)), generator=torch.Generator().manual_seed(seed))
    return torch.stack([wide[:, :, f * motion:f * motion + size] for f in range(frames)])


def test_zero_on_the_content_itself_and_on_any_offset_of_it():
    """Only change between frames counts: the clip, and the clip plus a constant picture, score 0."""
    clip = _clip(motion=2)
    term = TemporalConsistencyLoss(clip)
    assert torch.allclose(term(clip), torch.zeros(5), atol=1e-7)
    offset = clip + 0.3 * torch.rand((1, 3, 16, 16), generator=torch.Generator().manual_seed(1))
    assert torch.allclose(term(offset), torch.zeros(5), atol=1e-7)


def test_the_formula_on_a_static_clip_and_the_per_frame_layout():
    """Static content: L is the mean over pairs of the mean squared frame change; one value per picture, per sample."""
    still = _clip(frames=3)
    term = TemporalConsistencyLoss(still)
    y = torch.rand((2 * 3, 3, 16, 16), generator=torch.Generator().manual_seed(2))  # two samples of 3 frames
    got = term(y)
    for b in range(2):
        frames = y[3 * b:3 * b + 3]
        want = ((frames[1:] - frames[:-1]) ** 2).flatten(1).mean(1).mean()
        assert torch.allclose(got[3 * b:3 * b + 3], want.expand(3), rtol=1e-5)


def test_descending_the_term_lowers_flicker_on_a_still_clip_and_keeps_motion():
    """Gradient steps on the term bring a flickering output's flicker down to the still content's (0); on a moving
    content the output's flicker goes towards the content's own, not to 0."""
    for motion in (0, 3):
        content = _clip(motion=motion)
        y = (content + 0.2 * torch.randn(content.shape, generator=torch.Generator().manual_seed(3))).requires_grad_(True)
        chain = CombinedLoss([TemporalConsistencyLoss(content, weight=1.0)])
        before = float(flicker(y.detach()))
        opt = torch.optim.SGD([y], lr=20.0)
        for _ in range(50):
            opt.zero_grad()
            chain.evaluate(y).total.sum().backward()
            opt.step()
        after, target = float(flicker(y.detach())), float(flicker(content))
        print(f"motion {motion}: flicker {before:.4f} -> {after:.4f} (content {target:.4f})")
        assert abs(after - target) < 0.25 * abs(before - target)


def test_one_picture_or_a_partial_clip_has_nothing_to_keep():
    """A content of one picture, or a batch that is not whole clips: 0 with no gradient (the sampler says so)."""
    y = torch.rand((4, 3, 16, 16), requires_grad=True)
    assert float(TemporalConsistencyLoss(_clip(frames=1))(y).detach().abs().sum()) == 0.0
    value = TemporalConsistencyLoss(_clip(frames=3))(y)
    assert float(value.detach().abs().sum()) == 0.0
    (g,) = torch.autograd.grad(value.sum(), y)
    assert float(g.abs().sum()) == 0.0


def test_pool_compares_coarser_structure_and_is_validated():
    """pool 4 ignores texture that averages out in 4x4 blocks; pool 0 is refused by name."""
    still = _clip(frames=2)
    checker = torch.zeros((1, 3, 16, 16))
    checker[..., ::2, ::2] = 0.5
    checker[..., 1::2, 1::2] = 0.5
    flicker_texture = torch.cat([still[:1], still[1:] + checker - 0.25])  # zero-mean per 2x2 block
    assert float(TemporalConsistencyLoss(still)(flicker_texture)[0]) > 1e-3
    assert float(TemporalConsistencyLoss(still, pool=4)(flicker_texture)[0]) < 1e-10
    with pytest.raises(ValueError, match="temporal_consistency: pool"):
        TemporalConsistencyLoss(still, pool=0)
