"""A LATENT input checked against the model before any network runs: shape, channels, finite values.

Without these, a latent of another family or a poisoned one reaches ``conv2d`` (an error that names
no input) or flows through as NaN. Reads the model's family from :mod:`.families` only.
"""

from __future__ import annotations

import torch

from .families import model_family

# Beyond this the latent is not a VAE encoding of anything: real ones stay within a few tens, and a
# model's first layers overflow float16/float32 long before 1e30.
MAX_ABS = 1e4


def check_latent(model, samples: torch.Tensor, name: str, node: str) -> None:
    """Raise ValueError naming ``node`` and input ``name`` when ``samples`` cannot go into ``model``."""
    fam = model_family(model)
    shape = tuple(samples.shape)
    if fam.dimensions == 2 and samples.dim() != 4:
        raise ValueError(f"{node}: {name} has shape {shape} ({samples.dim()}-D) but the model, {fam.describe()}, takes "
                         "4-D image latents (batch, channels, height, width); connect a latent made for this model "
                         "(VAE Encode with its VAE, or an Empty Latent Image)")
    empty = samples.is_floating_point() and torch.count_nonzero(samples) == 0  # ComfyUI fixes the channels of these
    if fam.channels is not None and samples.dim() >= 2 and shape[1] != fam.channels and not empty:
        raise ValueError(f"{node}: {name} has {shape[1]} channels but the model, {fam.describe()}, takes {fam.channels}; "
                         "encode the picture with this model's VAE")
    if samples.is_floating_point():
        if not bool(torch.isfinite(samples).all()):
            raise ValueError(f"{node}: {name} holds NaN or infinite values (e.g. encoded from a picture with NaN "
                             "pixels); connect a finite latent")
        peak = float(samples.abs().max()) if samples.numel() else 0.0
        if peak > MAX_ABS:
            raise ValueError(f"{node}: {name} holds values up to {peak:.3g}, far beyond any VAE encoding (|x| <= "
                             f"{MAX_ABS:g}); connect a latent from VAE Encode")
