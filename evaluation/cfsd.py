"""CFSD (content feature structural distance), StyleID's content-preservation score.

Per image pair: VGG19 relu3_1 features of the content and of the stylised image (ImageNet
normalisation, full resolution), each token divided by the channel count; the softmax over each
row of the token self-similarity matrix; the KL divergence from the content's rows to the
stylised image's rows, summed over all rows (``kl_div(..., reduction='batchmean')`` with one image
per batch). Rows are processed in chunks so a 512 px pair does not need four 1 GB matrices, and in
float64: the values are small sums of many near-equal logs, where float32 rounding shows (about
1e-5 absolute; the protocol's own code runs in float32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

LAYER = "relu3_1"


def _tokens(feat: Tensor) -> Tensor:
    """(1, C, H, W) -> (H*W, C) tokens scaled by 1/C (the protocol's scaling of the similarities)."""
    _, c, h, w = feat.shape
    return feat[0].reshape(c, h * w).t() / c


def similarity_kl(content_feat: Tensor, stylised_feat: Tensor, chunk: int = 2048) -> float:
    """Sum over rows of KL(softmax(content row) || softmax(stylised row)) for one pair of maps."""
    if content_feat.shape != stylised_feat.shape:
        raise ValueError(f"CFSD needs feature maps of one size, got {tuple(content_feat.shape)} "
                         f"and {tuple(stylised_feat.shape)}")
    tc, ts = _tokens(content_feat.double()), _tokens(stylised_feat.double())
    total = torch.zeros((), dtype=torch.float64)
    for start in range(0, tc.shape[0], chunk):
        log_p = F.log_softmax(tc[start:start + chunk] @ tc.t(), dim=-1)
        log_q = F.log_softmax(ts[start:start + chunk] @ ts.t(), dim=-1)
        total += (log_p.exp() * (log_p - log_q)).sum()
    return float(total)


def cfsd_pair(vgg, content: Tensor, stylised: Tensor) -> float:
    """CFSD of one (1, 3, H, W) pair in [0, 1]; ``vgg`` is losses.vgg.VGG19Features."""
    with torch.no_grad():
        fc = vgg.extract(content, (LAYER,))[LAYER]
        fs = vgg.extract(stylised, (LAYER,))[LAYER]
    return similarity_kl(fc, fs)
