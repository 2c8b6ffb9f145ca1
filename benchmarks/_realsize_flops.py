"""FLOP floors for ``bench_realsize.py``: what one guided evaluation costs, by component, and per run.

The counts follow the engine as it runs: one real ``GuidanceEngine.direction`` call on the objects
ComfyUI built, split by the instrument's labels, times the evaluations each configuration makes
(the pack's own window rule).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial

import _realsize_models as RM
from _common import log
from _realsize_configs import CONFIGS, chain_of, guided_key
from _realsize_instrument import TERM_BWD, WHO, Instrument, component_of, pack_attr
from torch.utils._python_dispatch import TorchDispatchMode


def evaluation_plan(name: str, steps: int) -> list[bool]:
    """Per model evaluation (euler: one per step, k per step in the recurrence window): guided or not.

    Uses the pack's own window rule (``sampler.guidance.in_window``, as loaded by ComfyUI), so the
    floors follow whatever the engine does: step i of n is at fraction i/n, guided when the
    sampler's window admits it, repeated k times when the recurrence window does. Every term of
    the benchmark's chains has the default window (0-1), so a guided step guides all of them.
    """
    in_window = pack_attr("in_window", "guidance")
    spec = CONFIGS[name][1]
    plan: list[bool] = []
    for i in range(steps):
        if spec is None:
            plan.append(False)
            continue
        f = i / steps
        k = spec.get("recurrence", 1)
        rec = in_window(f, spec.get("recurrence_start_percent", 0.0), spec.get("recurrence_end_percent", 1.0))
        plan += [in_window(f, spec.get("start_percent", 0.0), spec.get("end_percent", 1.0))] * (k if k > 1 and rec else 1)
    return plan


# ---------------------------------------------------------------- FLOP counts


def _flop_formulas() -> dict:
    """FlopCounterMode's formulas, plus the CPU flash attention ops it leaves out (counted as the CUDA ones)."""
    import torch
    from torch.utils.flop_counter import flop_registry

    aten = torch.ops.aten
    formulas = dict(flop_registry)
    for cpu_op, like in (("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention"),
                         ("_scaled_dot_product_flash_attention_for_cpu_backward",
                          "_scaled_dot_product_flash_attention_backward")):
        if hasattr(aten, cpu_op) and getattr(aten, like) in formulas:
            formulas.setdefault(getattr(aten, cpu_op), formulas[getattr(aten, like)])
    return formulas


class LabelledFlops(TorchDispatchMode):
    """Matmul/convolution/attention FLOPs by the instrument's label stack.

    FlopCounterMode's own formulas, without its module tracking: that registers backward hooks
    that make ``torch.autograd.grad`` fail, and the engine takes one ``autograd.grad`` per term.
    """

    def __init__(self, inst: Instrument) -> None:
        super().__init__()
        self.inst = inst
        self.formulas = _flop_formulas()
        self.by_labels: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = self.formulas.get(func._overloadpacket)
        if formula is not None:
            self.by_labels[tuple(reversed(self.inst.stack))] += int(formula(*args, **kwargs, out_val=out))
        return out

    def total(self) -> int:
        return sum(self.by_labels.values())


def _count(inst: Instrument, fn: Callable[[], None], fake: bool = True) -> tuple[LabelledFlops, str]:
    """Run ``fn`` with FLOPs counted by label: shapes only (FakeTensorMode) when ``fake`` and that works."""
    import torch

    with torch.inference_mode(False), torch.enable_grad():
        if fake:
            from torch._subclasses.fake_tensor import FakeTensorMode

            counter = LabelledFlops(inst)
            inst.counter = counter
            try:
                with FakeTensorMode(allow_non_fake_inputs=True), counter:
                    fn()
                return counter, "fake"
            except Exception as e:  # noqa: BLE001 - any failure of the symbolic run: count for real
                log(WHO, f"FLOP count under FakeTensorMode failed ({type(e).__name__}: {str(e)[:120]}); running it")
            finally:
                inst.counter = None
                inst.stack.clear()
        counter = LabelledFlops(inst)
        inst.counter = counter
        try:
            with counter:
                fn()
        finally:
            inst.counter = None
            inst.stack.clear()
        return counter, "real"


# What each counted label is in one guided evaluation (see guided_parts).
PART_OF = {"sg::decoder": "decoder fwd", "sg::vgg": "chain fwd: VGG", "sg::clip": "chain fwd: CLIP",
           "sg::loss": "chain fwd: loss arithmetic", "sg::bwd": "decoder bwd", "sg::probe": "model passes fwd",
           "sg::mf_content": "per run: reference features",
           # matmuls of the engine outside every network: the latent terms' own maths (AD's attention of the
           # output's queries to the style's keys/values, ZeCon's patch similarities)
           "sg::engine": "latent terms' loss arithmetic"}


def guided_parts(counter: LabelledFlops) -> dict[str, int]:
    """One counted ``GuidanceEngine.direction`` call, by component: 'decoder fwd', 'chain fwd: VGG', ...,
    'term bwd: <name>' (one backward per term), 'decoder bwd', 'model passes fwd' (latent terms'
    model passes), 'per run: reference features' (computed once per sampling run)."""
    parts: Counter = Counter()
    for labels, n in counter.by_labels.items():
        labels = list(labels)
        if labels and labels[0].startswith(TERM_BWD) and "sg::mf_content" not in labels:
            parts["term bwd: " + labels[0][len(TERM_BWD):]] += n
            continue
        comp = component_of(labels)
        parts[PART_OF.get(comp, f"other ({comp})")] += n
    return {k: v for k, v in parts.items() if v}


def _param(module):
    return next(module.parameters())


def count_flops(objs: dict, inst: Instrument, fam: str, size: int, batch: int, cfg: float, names: list[str]) -> dict:
    """Per-component FLOPs at this resolution and batch, on the objects ComfyUI built.

    The UNet at the CFG batch (forward; forward with grad + backward to its input in xt mode,
    with the pack's ``ordinary_weights`` swap as the xt hook does) and the final decode are
    counted on shapes. Each distinct guided evaluation (decoder, loss size, chain) is ONE real
    ``GuidanceEngine.direction`` call of an engine made by the pack's ``install_guidance`` and
    prepared by its hooks, i.e. exactly the engine's work, split by label (see :func:`guided_parts`).
    """
    import torch

    install_guidance = pack_attr("install_guidance")
    ordinary_weights = pack_attr("ordinary_weights", "autograd_compat")
    settings_cls = pack_attr("GuidanceSettings")
    model = objs["model"].model
    unet = model.diffusion_model
    xt = any((CONFIGS[n][1] or {}).get("mode") == "xt" for n in names)
    p = _param(unet)
    dev, dt = p.device, p.dtype
    h = w = size // 8
    b = batch * (2 if cfg != 1.0 else 1)
    tokens, dim, pooled = RM.CONDITIONING[fam]
    out: dict = {"method": {}, "guided": {}}
    sigma = float(model.model_sampling.percent_to_sigma(0.5))  # mid-schedule, for the latent terms' passes

    def unet_inputs(grad: bool):
        x = torch.randn(b, 4, h, w, device=dev, dtype=dt, requires_grad=grad)
        kw = {"context": torch.randn(b, tokens, dim, device=dev, dtype=dt)}
        if pooled:
            kw["y"] = torch.randn(b, 2816, device=dev, dtype=dt)
        return x, torch.full((b,), 500.0, device=dev), kw

    def unet_fwd():
        x, t, kw = unet_inputs(False)
        with torch.no_grad():
            unet(x, timesteps=t, **kw)

    c, out["method"]["unet_fwd"] = _count(inst, unet_fwd)
    out["unet_fwd"] = c.total()
    if xt:
        def unet_fwd_bwd():
            x, t, kw = unet_inputs(True)
            y = unet(x, timesteps=t, **kw)
            with inst.label("count::unet_bwd"):
                torch.autograd.grad(y, x, grad_outputs=torch.ones_like(y))

        with torch.inference_mode(False), ordinary_weights([unet], dev):
            c, out["method"]["unet_bwd"] = _count(inst, unet_fwd_bwd)
        out["unet_bwd"] = sum(n for labels, n in c.by_labels.items() if "count::unet_bwd" in labels)

    for name in names:
        key = guided_key(name, size) if CONFIGS[name][1] else None
        if key is None or key in out["guided"]:
            continue
        spec = CONFIGS[name][1]
        chain = chain_of(name)
        losses = objs["losses"][chain]
        settings = settings_cls(mode="x0", scale=1.0, loss_resolution=int(spec.get("loss_resolution", 0)))
        clone, engine = install_guidance(objs["model"], objs["decoders"][spec["vae"]], losses, settings)
        hooks = next(f.__self__ for f in clone.model_options.get("sampler_post_cfg_function", [])
                     if type(getattr(f, "__self__", None)).__name__ == "GuidanceHooks")
        hooks.prepare(clone)
        engine.begin(0)
        # Latent terms: the pack's probe for use outside sampling (same model passes as in a run).
        probe = partial(pack_attr("measure_probe", "model_probe"), objs["model"], objs["positive"], 0, sigma) \
            if losses.latent_terms else None
        x0 = torch.randn(batch, 4, h, w, device=dev, dtype=torch.float32) * 0.5

        def direction(x0=x0, engine=engine, probe=probe):
            leaf = x0.clone().requires_grad_(True)
            engine.direction(leaf, 0.0, sigma, probe)

        # Real: the losses draw sizes and positions at random (data-dependent under FakeTensorMode).
        c, method = _count(inst, direction, fake=False)
        parts = guided_parts(c)
        out["guided"][key] = {
            "parts": parts, "method": method,
            "per_eval": sum(v for k, v in parts.items() if not k.startswith("per run")),
            "per_run": sum(v for k, v in parts.items() if k.startswith("per run")),
        }
        out["method"][key] = method
        del clone, engine, hooks

    first = objs["io_vae"].first_stage_model
    fp = _param(first)

    def final_decode():
        with torch.no_grad():
            first.decode(torch.randn(batch, 4, h, w, device=fp.device, dtype=fp.dtype))

    c, out["method"]["final_decode"] = _count(inst, final_decode)
    out["final_decode"] = c.total()
    return out


def run_flops(name: str, steps: int, size: int, f: dict) -> dict:
    """FLOPs of one run of ``name`` with ``steps`` steps: its evaluations, plus the final TAESD decode."""
    spec = CONFIGS[name][1] or {}
    plan = evaluation_plan(name, steps)
    g = f["guided"].get(guided_key(name, size)) if spec else None
    total = f["final_decode"] + f["unet_fwd"] * len(plan)
    for guided in plan:
        if guided:
            total += g["per_eval"] + (f["unet_bwd"] if spec["mode"] == "xt" else 0)
    if any(plan):
        total += g["per_run"]
    return {"flops": total, "evaluations": len(plan), "guided": sum(plan)}
