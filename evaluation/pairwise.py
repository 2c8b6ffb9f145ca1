"""The protocol's pairwise scores (LPIPS, LPIPS grey, CFSD) of one picture against its content picture.

One definition for the folder evaluation (:mod:`evaluation.protocol`) and the Measure node: a
picture in the graph is turned into the 8-bit image SaveImage would write (``255 * x``, clipped,
truncated), then scored exactly as ``python -m headless evaluate`` scores that file: LPIPS on both
resized to a shorter side of 512 (PIL bilinear, antialiased), CFSD at full resolution, the
stylised picture resized to the content's size when they differ (the protocol assumes equal sizes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from . import images as I
from .cfsd import cfsd_pair
from .lpips_metric import LPIPSAlex
from .weights import WeightFile, locate_in, losses_vgg, read

PAIRWISE = ("LPIPS", "LPIPS_grey", "CFSD")
# Weight files each pairwise score needs (keys of evaluation.weights.locate_in).
NEEDS = {"LPIPS": ("alexnet", "lpips_heads"), "LPIPS_grey": ("alexnet", "lpips_heads"), "CFSD": ("vgg19",)}


@dataclass
class PairwiseNetworks:
    """LPIPS (AlexNet + heads) and/or VGG19 for CFSD, loaded once, and the files they came from."""

    lpips: LPIPSAlex | None
    vgg: torch.nn.Module | None
    files: dict[str, WeightFile] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        for net in (self.lpips, self.vgg):
            if net is not None:
                return next(net.parameters()).device
        return torch.device("cpu")


def load_pairwise(folders: dict[str, list[Path]], metrics: tuple[str, ...], device: str | torch.device = "cpu"
                  ) -> PairwiseNetworks:
    """Locate (never download) and load what ``metrics`` need; WeightsMissing names each missing file and folder."""
    unknown = [m for m in metrics if m not in NEEDS]
    if unknown:
        raise ValueError(f"unknown pairwise score(s) {unknown}; choose from {list(NEEDS)}")
    keys = tuple(dict.fromkeys(k for m in metrics for k in NEEDS[m]))
    files = locate_in(folders, keys)
    lp = vgg = None
    if "alexnet" in files:
        lp = LPIPSAlex(read(files["alexnet"].path, "AlexNet"), read(files["lpips_heads"].path, "LPIPS heads"),
                       str(files["alexnet"].path)).to(device)
    if "vgg19" in files:
        vgg = losses_vgg().load_vgg19_features(str(files["vgg19"].path)).to(device)
    return PairwiseNetworks(lp, vgg, files)


def to_pil(image: Tensor) -> Image.Image:
    """(3, H, W) or (H, W, 3) float in [0, 1] -> the 8-bit RGB image SaveImage writes (255x, clipped, truncated)."""
    a = image.detach().float().cpu()
    if a.ndim != 3:
        raise ValueError(f"expected one picture (3, H, W) or (H, W, 3), got shape {tuple(a.shape)}")
    if a.shape[0] == 3 and a.shape[-1] != 3:
        a = a.permute(1, 2, 0)
    return Image.fromarray(np.clip(255.0 * a.numpy(), 0, 255).astype(np.uint8))


def pair_scores(nets: PairwiseNetworks, stylised: Image.Image, content: Image.Image, metrics: tuple[str, ...],
                short_side: int = I.SHORT_SIDE) -> tuple[dict[str, float], bool]:
    """The asked pairwise scores of one pair of RGB images, and whether the stylised one was resized to the content's size."""
    out: dict[str, float] = {}
    resized = False
    dev = nets.device
    with torch.no_grad():
        if "LPIPS" in metrics or "LPIPS_grey" in metrics:
            if nets.lpips is None:
                raise ValueError("LPIPS needs the LPIPS networks: load them with 'LPIPS' in the metrics")
            out_r, cont_r = I.resized(stylised, short_side), I.resized(content, short_side)
            out_r, changed = I.match_size(out_r, cont_r)
            resized |= changed
            if "LPIPS" in metrics:
                out["LPIPS"] = float(nets.lpips(I.to_tensor(out_r).to(dev), I.to_tensor(cont_r).to(dev))[0])
            if "LPIPS_grey" in metrics:
                out["LPIPS_grey"] = float(nets.lpips(I.to_tensor(I.grey(out_r)).to(dev),
                                                     I.to_tensor(I.grey(cont_r)).to(dev))[0])
        if "CFSD" in metrics:
            if nets.vgg is None:
                raise ValueError("CFSD needs VGG19: load it with 'CFSD' in the metrics")
            out_full, changed = I.match_size(stylised, content)
            resized |= changed
            out["CFSD"] = cfsd_pair(nets.vgg, I.to_tensor(content).to(dev), I.to_tensor(out_full).to(dev))
    return out, resized


def batch_pairwise(nets: PairwiseNetworks, images: Tensor, content: Tensor, metrics: tuple[str, ...],
                   short_side: int = I.SHORT_SIDE) -> tuple[dict[str, float], list[str]]:
    """Mean pairwise scores of a batch of pictures against content pictures, sample i with content i % R.

    ``images``/``content``: (B, 3, H, W) and (R, 3, H', W') in [0, 1]. Returns the means and notes.
    """
    if images.ndim != 4 or content.ndim != 4 or content.shape[0] == 0 or images.shape[0] == 0:
        raise ValueError(f"expected picture batches (B, 3, H, W), got {tuple(images.shape)} and {tuple(content.shape)}")
    sums = {m: 0.0 for m in metrics}
    resized = 0
    for i in range(images.shape[0]):
        scores, changed = pair_scores(nets, to_pil(images[i]), to_pil(content[i % content.shape[0]]), metrics, short_side)
        resized += changed
        for m in metrics:
            sums[m] += scores[m]
    notes = []
    if resized:
        notes.append(f"{resized} picture(s) differ in size from their content picture and were resized to it "
                     "(bilinear) first, as the protocol's evaluation does")
    return {m: v / images.shape[0] for m, v in sums.items()}, notes


__all__ = ["NEEDS", "PAIRWISE", "PairwiseNetworks", "batch_pairwise", "load_pairwise", "pair_scores", "to_pil"]
