"""Backward through custom ops that have no autograd formula (sampler/op_fallbacks.py).

ComfyUI 0.8.0 runs the DiTs' rotary embedding through comfy_kitchen's ``apply_rope``, a custom op
without backward. On such a tree the xt run below takes the fallback; on a tree without it (0.3.75)
the same assertions hold with nothing swapped. Either way plain sampling keeps ComfyUI's own op.
"""

from __future__ import annotations

import gc
import importlib
import sys
from types import SimpleNamespace

import pytest
import torch

from headless.testbed import family_graphs as F

pytestmark = pytest.mark.compat


@pytest.fixture(scope="module")
def pk(pack):
    name = pack.__name__
    return SimpleNamespace(of=importlib.import_module(f"{name}.sampler.op_fallbacks"),
                           ac=importlib.import_module(f"{name}.sampler.autograd_compat"))


def _kitchen_routed() -> bool:
    """True where ComfyUI's Flux attention calls comfy_kitchen's RoPE (0.8.0 with comfy-kitchen installed)."""
    import comfy.ldm.flux.math as fm

    ck = sys.modules.get("comfy_kitchen")
    return ck is not None and fm.apply_rope is getattr(ck, "apply_rope", None)


def _flux_rope_inputs(seq: int = 12, extra: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k (B, heads, L, 128) and Flux's own frequency table for them (ComfyUI's EmbedND)."""
    from comfy.ldm.flux.layers import EmbedND

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 64, (1, seq + extra, 3), generator=g).float()
    pe = EmbedND(dim=128, theta=10000, axes_dim=[16, 56, 56])(ids)
    q, k = (torch.randn(1, 2, seq, 128, generator=g) for _ in range(2))
    return q, k, pe


def test_rope_equivalent_has_comfyuis_numbers_and_a_gradient(pk, comfy_base):
    """Bit for bit ComfyUI's apply_rope (the kitchen op on 0.8.0, the torch path on 0.3.75); a true gradient."""
    import comfy.ldm.flux.math as fm

    q, k, pe = _flux_rope_inputs()
    for a, b in zip(fm.apply_rope(q, k, pe), pk.of.KNOWN[0].functions["apply_rope"](q, k, pe), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(fm.apply_rope1(q, pe), pk.of.KNOWN[0].functions["apply_rope1"](q, pe))
    ck = sys.modules.get("comfy_kitchen")
    if ck is not None:  # the op trims surplus sequence frequencies; the equivalent too
        q, k, pe = _flux_rope_inputs(extra=5)
        assert torch.equal(ck.apply_rope1(q, pe), pk.of.KNOWN[0].functions["apply_rope1"](q, pe))
    rope1 = pk.of.KNOWN[0].functions["apply_rope1"]
    q, _, pe = _flux_rope_inputs(seq=3)
    x = q[:, :1, :, :8].double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: rope1(t, pe[..., :4, :, :].double()), (x,))


def test_substitution_swaps_every_binding_and_restores_it(pk, comfy_base):
    import comfy.ldm.flux.math as fm

    fallback = pk.of.KNOWN[0]
    before = fm.apply_rope
    bindings = pk.of._bindings(fallback)
    if not _kitchen_routed():
        assert bindings == []  # nothing to swap: ComfyUI's torch path is differentiable already
        return
    assert any(mod is fm and attr == "apply_rope" for mod, attr, _, _ in bindings)
    with pk.of.substituted([fallback]):
        assert fm.apply_rope is fallback.functions["apply_rope"]
        assert fm.apply_rope1 is fallback.functions["apply_rope1"]
        for mod, attr, _, eq in bindings:  # e.g. comfy.ldm.qwen_image.model.apply_rope1
            assert getattr(mod, attr) is eq
    assert fm.apply_rope is before
    for mod, attr, original, _ in bindings:
        assert getattr(mod, attr) is original


def test_an_op_without_backward_and_without_equivalent_is_refused_by_name(pk):
    """An unknown op without autograd: a clear error naming it and the setting that avoids it (x0 mode)."""

    @torch.library.custom_op("style_guidance_test::no_backward", mutates_args=())
    def no_backward(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    model = torch.nn.Linear(1, 1)
    x = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"'style_guidance_test\.no_backward'.*no backward.*set mode to x0"):
        pk.ac.backward_through(model, lambda: torch.autograd.grad(no_backward(x).sum(), x))
    assert pk.of.missing_backward_op(ValueError("x")) is None
    # A known op is recognised from autograd's own wording.
    err = RuntimeError("Trying to backward through comfy_kitchen.apply_rope.default but no autograd formula was "
                       "registered. Please use register_autograd to add one.")
    assert pk.of.missing_backward_op(err) == "comfy_kitchen.apply_rope"
    assert pk.of.fallback_for("comfy_kitchen.apply_rope1") is pk.of.KNOWN[0]


def _plain_graph(families: dict) -> dict:
    g = F.family_graph("flux", families)
    F.add_plain_and_guided(g, "sampler", F.options(mode="xt"), F.sampling("flux"))
    return {k: v for k, v in g.items() if not k.startswith("guided")}  # plain, decoded and twin-scored


@pytest.mark.slow
def test_flux_xt_guides_and_plain_sampling_stays_bit_identical(pk, comfy, families):
    """Flux, Sampler node, xt: guided beats plain (twin-scored); plain before and after equal; the op restored."""
    import comfy.ldm.flux.math as fm

    from headless.testbed.inprocess import InProcessComfy

    original = fm.apply_rope
    comfy.run(_plain_graph(families))
    plain_before = comfy.output("plain")["samples"].clone()

    g = F.family_graph("flux", families)
    F.add_plain_and_guided(g, "sampler", F.options(mode="xt"), F.sampling("flux"))
    comfy.run(g)
    ratio = F.scores(comfy, "guided")["total"] / F.scores(comfy, "plain")["total"]
    print(f"flux/sampler/xt: twin total guided/plain {ratio:.3f} (kitchen RoPE: {_kitchen_routed()})")
    assert ratio < 0.85
    assert fm.apply_rope is original
    marked = pk.ac._FALLBACKS.get(comfy.output("model").model, [])
    assert (pk.of.KNOWN[0] in marked) == _kitchen_routed()

    # A fresh executor samples plain again from nothing cached: the same bits as before guidance ran.
    fresh = InProcessComfy()
    fresh.run(_plain_graph(families))
    plain_after = fresh.output("plain")["samples"]
    del fresh
    gc.collect()
    assert torch.equal(plain_before, plain_after)
