"""The art-trained Inception v3 whose state dict ``art_inception.pth`` loads (ArtFID's FID network).

Same layout and parameter names as torchvision's Inception3 (the ArtFID authors fine-tuned it on
WikiArt with two 1000-way heads, ``fc1``/``fc2``, and two auxiliary heads), so torchvision's
building blocks are reused. Only the trunk up to the 2048-d global average pool is needed for
FID; the heads are accepted in the file and ignored. Inputs are (B, 3, H, W) in [0, 1] with no
mean/std normalisation (``transform_input`` is off in the protocol).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.inception import (
    BasicConv2d,
    InceptionA,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE,
)

FEATURE_DIM = 2048
# Parameter-name prefixes of the heads in art_inception.pth that FID does not use.
HEAD_PREFIXES = ("fc1.", "fc2.", "fc.", "AuxLogits", "AuxLogits1.", "AuxLogits2.")


class ArtInception(nn.Module):
    """Inception v3 trunk returning the 2048-d pool features (eval mode, no gradients)."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 2048) pool features."""
        for m in self.children():
            x = m(x)
        return torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1)


def load_art_inception(state: dict[str, Tensor], where: str) -> ArtInception:
    """Build the network and load the trunk strictly: a missing trunk weight is an error, not random."""
    net = ArtInception()
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unknown = [k for k in state if k not in expected and not k.startswith(HEAD_PREFIXES)]
    if missing or unknown:
        raise ValueError(
            f"'{where}' is not the art-trained Inception v3 (art_inception.pth): "
            f"{len(missing)} trunk weight(s) missing (e.g. {missing[:2]}), "
            f"{len(unknown)} unexpected key(s) (e.g. {unknown[:2]})"
        )
    for k, ref in expected.items():
        if tuple(state[k].shape) != tuple(ref.shape):
            raise ValueError(f"'{where}': {k} has shape {tuple(state[k].shape)}, expected {tuple(ref.shape)}")
    net.load_state_dict({k: state[k].float() for k in expected}, strict=True)
    return net.eval()


def random_art_inception_state(seed: int) -> dict[str, Tensor]:
    """Seeded random weights with the real file's trunk and head names (stand-ins for tests/benchmarks)."""
    gen = torch.Generator().manual_seed(seed)
    net = ArtInception()
    state = {}
    for k, v in net.state_dict().items():
        if k.endswith("running_mean"):
            state[k] = torch.randn(v.shape, generator=gen) * 0.05
        elif k.endswith("running_var"):
            state[k] = 1.0 + torch.rand(v.shape, generator=gen) * 0.2
        elif k.endswith("num_batches_tracked"):
            state[k] = v.clone()
        elif k.endswith("bn.weight"):
            state[k] = 1.0 + torch.randn(v.shape, generator=gen) * 0.05
        elif k.endswith("bn.bias"):
            state[k] = torch.randn(v.shape, generator=gen) * 0.05
        else:  # conv weights: He-scaled so activations neither vanish nor explode through 90 layers
            fan_in = max(1, v[0].numel())
            state[k] = torch.randn(v.shape, generator=gen) * (2.0 / fan_in) ** 0.5
    state["fc1.weight"] = torch.randn(1000, FEATURE_DIM, generator=gen) * 0.01
    state["fc1.bias"] = torch.zeros(1000)
    state["fc2.weight"] = torch.randn(1000, FEATURE_DIM, generator=gen) * 0.01
    state["fc2.bias"] = torch.zeros(1000)
    return state
