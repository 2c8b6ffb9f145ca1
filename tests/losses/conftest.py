"""Fixtures for the pure loss tests: random-weight VGG19, the tiny open_clip tower, test images."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from headless.testbed.standins.loss_nets import (
    TINY_OPENCLIP_ARCH,
    ensure_tiny_open_clip_registered,
    random_vgg19_features,
)
from losses import CLIPImageEncoder, VGG19Features, load_open_clip_encoder


@pytest.fixture(scope="session")
def vgg() -> VGG19Features:
    """Real VGG19 layout, seeded random weights (shared; tests reset ``calls`` themselves)."""
    return random_vgg19_features(0)


@pytest.fixture()
def fresh_vgg() -> VGG19Features:
    """A private VGG instance for tests that count calls or move devices/dtypes."""
    return random_vgg19_features(0)


@pytest.fixture(scope="session")
def clip_encoder() -> CLIPImageEncoder:
    """The tiny open_clip vision tower with seeded random weights (64 px input, 32-d output)."""
    ensure_tiny_open_clip_registered()
    return load_open_clip_encoder(TINY_OPENCLIP_ARCH, None, seed=0)


def _smooth(seed: int, size: int | tuple[int, int] = 32, coarse: int = 6, batch: int = 1) -> torch.Tensor:
    """A smooth random image (coarse noise upsampled): content-like structure."""
    h, w = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, coarse, coarse, generator=g)
    return F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def _texture(seed: int, size: int = 32, batch: int = 1) -> torch.Tensor:
    """A seamless periodic texture (integer periods per ``size``): tiling it creates no seams."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    out = torch.zeros(batch, 3, size, size)
    periods = (1, 2, 4)
    for b in range(batch):
        for c in range(3):
            for _ in range(3):
                fx, fy = (periods[int(i)] for i in torch.randint(0, 3, (2,), generator=g))
                phase = float(torch.rand(1, generator=g)) * 2 * math.pi
                out[b, c] += torch.sin(2 * math.pi * (fx * xx + fy * yy) / size + phase)
    return (0.5 + 0.15 * out).clamp(0, 1)


def _noise(seed: int, size: int | tuple[int, int] = 32, batch: int = 1) -> torch.Tensor:
    """Uniform noise in [0,1]."""
    h, w = (size, size) if isinstance(size, int) else size
    return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="session")
def images() -> dict[str, Callable[..., torch.Tensor]]:
    """Image makers: smooth(seed, size), texture(seed, size), noise(seed, size)."""
    return {"smooth": _smooth, "texture": _texture, "noise": _noise}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Run these tiny-tensor tests on one intra-op thread, then restore the setting.

    At 32-64 px there is nothing to parallelise, and on a busy two-core machine every op waited
    for the second thread (measured: 1 ms vs 47 ms per 32 px convolution).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
