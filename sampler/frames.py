"""Video latents for guidance: decoded frames folded into the loss batch, per-sample values averaged over frames.

ComfyUI-free. The adapter's decoder turns a latent of T frames (B, C, T, h, w) into F pictures per
sample (F = 1 + 4 (T - 1) for Wan 2.1's decoders) and hands the engine ONE tensor per sample with
the frames stacked along the channels, (B, 3 F, H, W): channel ``3 f + c`` is colour ``c`` of frame
``f``. The engine resizes it for the losses (per channel, so per frame), normalises each sample's
gradient over all its frames, and calls the chain; :class:`FrameChain` unfolds the frames into the
loss batch (B F pictures, sample-major: picture ``b F + f``), evaluates the chain there, and returns
per-sample values (B,) that are the mean over each sample's frames. One-frame latents (images,
Qwen-Image) stay (B, 3, H, W) and the chain runs exactly as before.

Pairing (the chain's rule: generated picture i pairs with reference i % R): a content term whose
content batch holds F frames (a video, as ComfyUI's video loaders give it) compares output frame f
with content frame f; B F references give each sample its own video. Any other count is refused by
name (:func:`check_content_frames`). A style term with one picture broadcasts it over every frame.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..losses.chain import CombinedLoss, LossResult

# The loss-node input every content term reads its reference from.
CONTENT_INPUT = "content"


def pack_frames(frames: torch.Tensor) -> torch.Tensor:
    """(B, 3, F, H, W) decoded frames -> (B, 3 F, H, W), frame-major channels; F = 1 gives (B, 3, H, W)."""
    b, c, f, h, w = frames.shape
    return frames.movedim(2, 1).reshape(b, f * c, h, w)


def frame_count(images: torch.Tensor) -> int:
    """Frames per sample of a packed batch (:func:`pack_frames`)."""
    return max(1, int(images.shape[1]) // 3)


def content_counts(chain: CombinedLoss) -> list[tuple[str, int]]:
    """(term name, pictures in its content batch) of every active image term that compares with a content."""
    out = []
    for name, term in chain.image_terms:
        content = getattr(term, "content", None)
        if isinstance(content, torch.Tensor) and content.ndim == 4:
            out.append((name, int(content.shape[0])))
    return out


def check_content_frames(chain: CombinedLoss, frames: int, batch: int, latent_frames: int | None = None,
                         stride: str = "") -> None:
    """Refuse content batches that cannot pair frame by frame with ``frames`` output frames per sample.

    A content batch must hold ``frames`` pictures (one video for every sample) or ``batch * frames``
    (one video per sample). ``latent_frames``/``stride`` only make the message say where ``frames``
    comes from (e.g. "2 latent frames decode to 5 (Wan 2.1: 1 + 4 (T - 1))").
    """
    if frames <= 1:
        return
    allowed = {frames, batch * frames}
    bad = [(n, r) for n, r in content_counts(chain) if r not in allowed]
    if not bad:
        return
    where = (f"the latent's {latent_frames} frames decode to {frames} frames" if latent_frames is not None
             else f"the video has {frames} frames per sample")
    if stride:
        where += f" ({stride})"
    terms = ", ".join(f"{n} has {r}" for n, r in bad)
    fit = ""
    r = bad[0][1]
    if r > 1 and (r - 1) % 4 == 0:
        fit = f", or make the latent {r} frames long (the length input of the empty video latent)"
    raise ValueError(
        f"{CONTENT_INPUT}: a content video must have one picture per output frame, but {where} and {terms} "
        f"picture(s) in its content batch. Give the loss node's {CONTENT_INPUT} input {frames} frames "
        f"(trim or extend the video, e.g. with ImageFromBatch or RepeatImageBatch){fit}.")


class FrameChain(CombinedLoss):
    """The same terms as a chain, evaluated on packed video frames (see the module docstring)."""

    def __init__(self, chain: CombinedLoss) -> None:
        super().__init__(chain.terms)
        self.source = chain

    def evaluate(self, images: torch.Tensor, names: Iterable[str] | None = None) -> LossResult:
        frames = frame_count(images)
        if frames == 1 or images.shape[1] != 3 * frames:
            return super().evaluate(images, names)
        b, _, h, w = images.shape
        check_content_frames(self, frames, b)
        result = super().evaluate(images.reshape(b * frames, 3, h, w), names)
        terms = {k: v.reshape(b, frames).mean(dim=1) for k, v in result.terms.items()}
        return LossResult(result.total.reshape(b, frames).mean(dim=1), terms, result.weights)
