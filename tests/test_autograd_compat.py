"""Backward through ComfyUI's Flux blocks, which add residuals in place (what xt mode needs)."""

from __future__ import annotations

import pytest
import torch


def _block_and_inputs(comfy_base):
    """A small real ComfyUI Flux DoubleStreamBlock in float64, with seeded weights and inputs."""
    import comfy.ops
    from comfy.ldm.flux.layers import DoubleStreamBlock

    block = DoubleStreamBlock(32, 2, 2.0, qkv_bias=True, operations=comfy.ops.disable_weight_init, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in block.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * (0.3 if p.ndim > 1 else 0.1)
                    + (1.0 if name.endswith("scale") else 0.0))
    x = torch.randn((1, 6, 32), generator=gen, dtype=torch.float64)
    txt = torch.randn((1, 4, 32), generator=gen, dtype=torch.float64)
    vec = torch.randn((1, 32), generator=gen, dtype=torch.float64)
    w = torch.randn((1, 6, 32), generator=gen, dtype=torch.float64)

    def loss(xin: torch.Tensor) -> torch.Tensor:
        img_out, txt_out = block(xin * 1.0, txt.clone(), vec, pe=None)  # activations, as inside a model
        return (img_out * w).sum() + txt_out.pow(2).sum()

    return loss, x


def test_flux_block_backward_fails_without_and_is_exact_with_saved_copies(comfy_base):
    from sampler.autograd_compat import clone_saved_activations, is_inplace_error

    loss, x = _block_and_inputs(comfy_base)
    xg = x.clone().requires_grad_(True)
    with pytest.raises(RuntimeError) as err:
        torch.autograd.grad(loss(xg), xg)
    assert is_inplace_error(err.value)

    with clone_saved_activations():
        value = loss(xg)
    (grad,) = torch.autograd.grad(value, xg)
    # Central differences along a random direction: the gradient is that of the block's maths.
    d = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    h = 1e-5
    with torch.no_grad():
        numeric = (loss(x + h * d) - loss(x - h * d)) / (2 * h)
    assert torch.isfinite(grad).all()
    assert float((grad * d).sum()) == pytest.approx(float(numeric), rel=1e-6)


def test_weights_are_not_copied(comfy_base):
    from sampler.autograd_compat import _pack

    weight = torch.zeros(3)
    activation = torch.zeros(3, requires_grad=True) * 1.0
    assert _pack(weight) is weight
    packed = _pack(activation)
    assert packed is not activation and torch.equal(packed, activation)
