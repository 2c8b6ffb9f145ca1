"""LPIPS v0.1 (AlexNet trunk + learned linear heads), as the ArtFID protocol uses it.

The trunk is torchvision's AlexNet ``features`` read from ``alexnet-owt-7be5be79.pth``; the five
1x1 linear heads are the LPIPS authors' v0.1 ``alex.pth`` (shipped inside the ``lpips`` wheel).
Written here rather than through ``lpips.LPIPS`` because that class builds its trunk with
torchvision's downloader; the maths is the same (tests compare the two on the same weights).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

# LPIPS's fixed input scaling: inputs in [-1, 1] are shifted and scaled per channel.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
# Indices of the ReLU outputs LPIPS taps in torchvision's AlexNet.features (relu1..relu5).
TAPS = (1, 4, 7, 9, 11)
CHANNELS = (64, 192, 384, 256, 256)


def alexnet_features() -> nn.Sequential:
    """torchvision's AlexNet ``features`` layout (same indices, so the same state-dict keys)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(3, 2),
    )


class LPIPSAlex(nn.Module):
    """LPIPS distance (B,) between two (B, C, H, W) batches in [0, 1]; C is 3, or 1 for grey."""

    def __init__(self, alexnet_state: dict[str, Tensor], heads_state: dict[str, Tensor], where: str = "") -> None:
        super().__init__()
        self.features = alexnet_features()[: TAPS[-1] + 1]
        trunk = {k[len("features."):]: v for k, v in alexnet_state.items() if k.startswith("features.")}
        trunk = trunk or {k: v for k, v in alexnet_state.items() if k[:1].isdigit()}
        expected = self.features.state_dict()
        missing = [k for k in expected if k not in trunk]
        if missing:
            raise ValueError(f"'{where}' is not torchvision's AlexNet: features.{missing[0]} and "
                             f"{len(missing) - 1} more weight(s) missing")
        self.features.load_state_dict({k: trunk[k].float() for k in expected}, strict=True)
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS)
        for i, head in enumerate(self.heads):
            key = f"lin{i}.model.1.weight"
            if key not in heads_state or tuple(heads_state[key].shape) != (1, CHANNELS[i], 1, 1):
                raise ValueError(f"LPIPS linear heads file '{where}' lacks {key} of shape (1, {CHANNELS[i]}, 1, 1)")
            head.weight.data.copy_(heads_state[key].float())
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def _taps(self, x: Tensor) -> list[Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in TAPS:
                # Unit-normalise each position's channel vector (LPIPS's eps is 1e-10).
                out.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """Distance per image; a one-channel input broadcasts to three, as LPIPS's scaling layer does."""
        if a.shape != b.shape:
            raise ValueError(f"LPIPS needs images of one size, got {tuple(a.shape)} and {tuple(b.shape)}")
        xa = ((2 * a - 1) - self.shift) / self.scale
        xb = ((2 * b - 1) - self.shift) / self.scale
        total = torch.zeros(a.shape[0], device=a.device)
        for head, fa, fb in zip(self.heads, self._taps(xa), self._taps(xb), strict=True):
            total = total + head((fa - fb) ** 2).mean(dim=(1, 2, 3))
        return total
