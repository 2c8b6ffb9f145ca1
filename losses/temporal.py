"""Temporal consistency: the output's frame-to-frame change kept close to the content video's.

For a clip of F frames y_0..y_{F-1} and the content clip c_0..c_{F-1} (both resized to the same size
and, optionally, average-pooled by ``pool`` to compare slower structure than pixels),

    L = 1 / (F - 1) * sum_f mean_pixels | (y_{f+1} - y_f) - (c_{f+1} - c_f) |^2

so where the content does not move the output is pulled towards not moving either (no flicker),
and where it moves the output is pulled towards the same change (motion survives).

Batch layout: the generated batch holds the frames of each sample one after the other (B F pictures,
sample-major: picture ``b F + f``), as the sampler's video path gives them (``sampler/frames.py``), and
the content batch is one clip of F frames for every sample. The per-picture value is the sample's L
repeated over its F pictures, so the sampler's mean over frames gives L itself. A content of one
picture (or a batch that is not a whole number of clips) has no frame change to keep: the term is 0.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .content import _ContentTerm
from .inputs import check_generated

__all__ = ["TemporalConsistencyLoss", "flicker"]


def flicker(frames: Tensor) -> Tensor:
    """Mean absolute difference of consecutive frames of a clip (F,3,H,W) or clips (B,F,3,H,W): (B,) or ()."""
    return (frames[..., 1:, :, :, :] - frames[..., :-1, :, :, :]).abs().flatten(-4).mean(-1)


class TemporalConsistencyLoss(_ContentTerm):
    """Keeps each frame-to-frame change of the output close to the content clip's (see the module docstring)."""

    kind = "temporal_consistency"

    def __init__(self, content: Tensor, weight: float = 1.0, pool: int = 1, fit: str = "stretch",
                 **window: float) -> None:
        super().__init__(content, weight, None, None, fit, **window)
        if int(pool) < 1:
            raise ValueError(f"{self.kind}: pool must be 1 or more, got {pool}")
        self.pool = int(pool)

    def _describe_extra(self) -> str:
        return f", pool={self.pool}"

    def _features(self, x: Tensor) -> Tensor:
        return x if self.pool == 1 else F.avg_pool2d(x, self.pool, ceil_mode=True)

    def forward_features(self, images: Tensor, feats: dict[str, Tensor]) -> Tensor:
        """Per-picture (B F,) values: each sample's L over its F frames, repeated for each of its frames."""
        check_generated(images)
        n, _, h, w = images.shape
        frames = int(self.content.shape[0])
        if frames < 2 or n % frames:
            return images.float().flatten(1).sum(dim=1) * 0.0  # no frame change to keep (connected, zero gradient)
        clip = self._features(self.content_at((h, w)).to(images.device))
        out = self._features(images.float())
        y = out.reshape(n // frames, frames, *out.shape[1:])
        change = (y[:, 1:] - y[:, :-1]) - (clip[1:] - clip[:-1]).unsqueeze(0)
        per_sample = change.square().flatten(2).mean(dim=2).mean(dim=1)  # mean over pixels, then over pairs
        return per_sample.repeat_interleave(frames)
