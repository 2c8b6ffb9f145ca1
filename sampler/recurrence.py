"""Recurrence (time travel): inside a window of the schedule, take each step k times.

Time-travel as in FreeDoM / Universal Guidance: take the step, re-noise back to the step's
noise level, take it again. This module is ComfyUI-free: it wraps any k-diffusion style
sampler function ``inner(model, x, sigmas, extra_args=..., callback=..., disable=..., **opts)``;
the adapter turns the result back into a ComfyUI ``KSAMPLER``.

Inside the window the sampler function is called on one-step slices of the schedule, so
multistep samplers run first-order there. Every call gets its own seed in ``extra_args``:
k-diffusion builds the noise of ancestral/SDE samplers from that seed at each call, so
passing the run's seed unchanged would reuse the same noise at every step and every repeat.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..losses.inputs import derive_seed
from .guidance import in_window

Renoise = Callable[[torch.Tensor, float, float, torch.Tensor], torch.Tensor]

# Salts that keep the re-noise draws and the per-call sampler seeds apart from each other.
_RENOISE_SALT = 0x5EED
_CALL_SALT = 0xCA11


def call_seed(seed: int, step: int, repeat: int) -> int:
    """The seed handed to the inner sampler for its call starting at ``step``, repeat ``repeat``."""
    return derive_seed(int(seed), _CALL_SALT, step, repeat) % (2**63)


def recurrent_sampler_function(inner: Callable[..., torch.Tensor], k: int, start: float, end: float,
                               renoise: Renoise, seed: int) -> Callable[..., torch.Tensor]:
    """``inner`` with every step whose fraction lies in [start, end) taken ``k`` times."""
    gen = torch.Generator().manual_seed(derive_seed(int(seed), _RENOISE_SALT))

    def recurrent(model: Any, x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict | None = None,
                  callback: Callable | None = None, disable: bool | None = None, **opts: Any) -> torch.Tensor:
        n = len(sigmas) - 1
        args = dict(extra_args or {})
        run_seed = int(args.get("seed") or seed or 0)

        def repeats(i: int) -> bool:
            return in_window(i / n, start, end)

        def shifted(offset: int) -> Callable | None:
            if callback is None:
                return None
            return lambda d: callback({**d, "i": d["i"] + offset})

        def call(x_in: torch.Tensor, i: int, j: int, repeat: int, cb: Callable | None, quiet: bool | None):
            return inner(model, x_in, sigmas[i:j + 1], extra_args={**args, "seed": call_seed(run_seed, i, repeat)},
                         callback=cb, disable=quiet, **opts)

        i = 0
        while i < n:
            if not repeats(i):
                j = i
                while j < n and not repeats(j):
                    j += 1
                x = call(x, i, j, 0, shifted(i), disable)
                i = j
                continue
            s, s_next = float(sigmas[i]), float(sigmas[i + 1])
            for r in range(k):
                last = r == k - 1
                x_next = call(x, i, i + 1, r, shifted(i) if last else None, True)
                if last:
                    x = x_next
                    break
                noise = torch.randn(x.shape, generator=gen).to(device=x.device, dtype=x.dtype)
                x = renoise(x_next, s, s_next, noise)
            i += 1
        return x

    return recurrent
