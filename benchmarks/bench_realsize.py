"""Time Style Guidance at real model sizes inside a real ComfyUI: ratios, FLOP floors, memory, profile.

One process, one run. Real-size architectures with seeded random weights (SD1.5 UNet, SD VAE,
TAESD, VGG19, open_clip ViT-B-32; SDXL UNet/TAESDXL with ``--gpu``), built once through
ComfyUI's own classes and cached (``benchmarks/_realsize_models.py``), are loaded by ComfyUI's
own loaders; every configuration is an API prompt run by ComfyUI's validator and executor
in-process, with the same model, conditioning, starting latent, seed, resolution and steps
(``_realsize_configs.py`` names them):

    plain         core KSampler, no guidance
    fast          StyleGuidanceSampler as workflows/style_transfer_fast: x0, TAESD, window 0-0.7, losses at 256 px
    x0-vae        x0 mode, full SD VAE decoder
    xt-taesd      xt mode (backward through the UNet), TAESD decoder
    xt-vae        xt mode, full SD VAE decoder
    freedom-like  xt, full VAE, guidance window 0.3-0.7, recurrence 3 in 0.4-0.7
    mpgd-like     x0, full VAE, window 0.3-0.7
    zecon-model   x0, ZeCon on the UNet's own encoder features alone (no decoder)
    ad            x0, Attention Distillation on the UNet's self-attention alone (no decoder)

Image-loss configurations chain the five losses of the fast workflow (content MSE, VGG content,
ZeCon with 256 patches, CLIP style with 8 cutouts, Gram style) with its weights. For each
configuration and image size (``--sizes``): median/min/max wall time over ``--repeats``
interleaved runs after a warm-up, the ratio to plain, the FLOP floor of that ratio, peak memory
(CPU: peak RSS; GPU: ``torch.cuda.max_memory_allocated`` in a separate pass that starts each
configuration with every model unloaded), and a torch.profiler breakdown of one guided step.

FLOP floors follow the engine as it runs: the matmul/conv/attention FLOPs (FlopCounterMode's
formulas) of ONE real ``GuidanceEngine.direction`` call on the objects ComfyUI built, split by
component: decoder forward, the loss chain's forward (each shared extractor once), one backward
per term, the decoder backward once (latent terms: their model passes and backwards), plus the
UNet forward at the CFG batch (and its backward in xt mode), times the evaluations each
configuration makes (the pack's own window rule, ``sampler.guidance.in_window``).

With ``--gpu``: SD1.5 at 512 px / 30 steps, SDXL at 1024 px (plain and fast), and a resolution
x batch scaling table for plain and fast. ``--dry-run`` runs the same code with tiny sizes and
step counts (checks the GPU path on a CPU).

    .venv/bin/python benchmarks/bench_realsize.py --threads 2 --only fast,xt-taesd   # CPU: 256 and 512 px, 4 steps
    .venv/bin/python benchmarks/bench_realsize.py --threads 2 --flops-only           # floors and per-term work only
    .venv/bin/python benchmarks/bench_realsize.py --gpu                 # CUDA machine (see gpu_run.sh)
    .venv/bin/python benchmarks/bench_realsize.py --gpu --dry-run       # the GPU path, tiny, on any machine

Results: Markdown on stdout and in ``benchmarks/results/<cpu|cuda>_realsize.md``, all numbers in
the ``.json`` beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import gc
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import _realsize_models as RM
from _common import (
    REPO_ROOT,
    RESULTS_DIR,
    command_line,
    log,
    machine_info,
    make_executor,
    pack_info,
    setup_comfy,
    timed_run,
    write_results,
)
from _realsize_configs import CHAIN, CONFIGS, FAST_STEPS, GIB, chain_of, guided_key
from _realsize_report import markdown, targets
from torch.utils._python_dispatch import TorchDispatchMode

WHO = "bench_realsize"
SAMPLER_NODE = "sampler"
WARMUP_SEED = 1000
LABELS = {  # record_function label -> component
    "sg::unet": "UNet", "sg::probe": "model features", "sg::decoder": "decoder", "sg::vgg": "VGG",
    "sg::clip": "CLIP", "sg::loss": "loss arithmetic", "sg::engine": "guidance step", "sg::bwd": "guidance step",
    "sg::mf_content": "model features (per run)", "sg::model_eval": "other", "sg::final_decode": "final decode",
}
UNSPLIT = ("sg::model_eval", "sg::loss", "sg::engine", "sg::bwd", "sg::mf_content")  # not split into fwd/bwd
LOSS_NODE = {"image": "l5", "zecon-model": "lz", "ad": "la"}  # chain -> its last loss node in the prompt
TERM_BWD = "sg::term_bwd:"  # + term name: the range of one term's backward inside balanced_direction
BWD = "autograd::engine::evaluate_function"


# ---------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gpu", action="store_true", help="CUDA run: SD1.5 512 px / 30 steps, SDXL 1024, scaling table")
    p.add_argument("--dry-run", action="store_true", help="same code path, tiny sizes and steps (no result files)")
    p.add_argument("--sizes", default="", help="SD1.5 image sides in px, comma-separated (default 256,512 CPU, 512 GPU)")
    p.add_argument("--size", type=int, default=0, help="one SD1.5 image side (same as --sizes N)")
    p.add_argument("--steps", type=int, default=0, help="sampling steps (default 4 CPU, 30 GPU)")
    p.add_argument("--repeats", type=int, default=0, help="timed runs per configuration after the warm-up (2 CPU, 3 GPU)")
    p.add_argument("--cfg", type=float, default=7.0, help="CFG scale (7.0)")
    p.add_argument("--denoise", type=float, default=0.7, help="denoise, from the TAESD-encoded content image (0.7)")
    p.add_argument("--sampler", default="euler", help="sampler_name (euler)")
    p.add_argument("--scheduler", default="normal", help="scheduler (normal)")
    p.add_argument("--scale", type=float, default=1.0, help="guidance scale of the guided configurations (1.0)")
    p.add_argument("--only", default="", help=f"comma-separated subset of: {','.join(CONFIGS)} (plain always runs)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = torch's default)")
    p.add_argument("--warmup-steps", type=int, default=1, help="steps of the warm-up run of each prompt (1)")
    p.add_argument("--profile", default="", help="configurations whose guided step is profiled (default: plain,fast,"
                   "xt-taesd on CPU; plain,fast,x0-vae,xt-taesd,xt-vae,zecon-model,ad on GPU; 'none' to skip)")
    p.add_argument("--profile-sizes", default="", help="sizes whose steps are profiled (default: every size)")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP counts (and floors)")
    p.add_argument("--flops-only", action="store_true", help="warm-ups and FLOP counts only: floors and the per-term "
                   "work without timed runs, memory pass or profiles (minutes instead of tens of minutes on a CPU)")
    p.add_argument("--memory-steps", type=int, default=10, help="steps of the GPU memory pass runs (10)")
    p.add_argument("--sdxl-size", type=int, default=1024, help="SDXL image side (1024; --gpu only)")
    p.add_argument("--sdxl-configs", default="plain,fast", help="SDXL configurations (plain,fast)")
    p.add_argument("--no-sdxl", action="store_true", help="skip the SDXL part")
    p.add_argument("--scaling-res", default="512,768,1024", help="scaling table sides (--gpu only)")
    p.add_argument("--scaling-batch", default="1,2,4", help="scaling table batch sizes")
    p.add_argument("--scaling-steps", type=int, default=10, help="steps in the scaling table (10)")
    p.add_argument("--scaling-repeats", type=int, default=2, help="timed runs per scaling cell (2)")
    p.add_argument("--no-scaling", action="store_true", help="skip the scaling table")
    p.add_argument("--deadline-s", type=float, default=0.0, help="skip remaining scaling cells past this many "
                   "seconds since start (0 = never)")
    p.add_argument("--out", default="", help="output stem (default benchmarks/results/<cpu|cuda>_realsize)")
    p.add_argument("--no-write", action="store_true", help="print only; write no result files")
    a = p.parse_args(argv)
    if a.size:
        a.sizes = a.sizes or str(a.size)
    if a.dry_run:
        a.sizes = a.sizes or "64"
        a.steps = a.steps or 4  # enough for the 0-0.7 window to leave one evaluation unguided
        a.repeats = 1
        a.memory_steps = min(a.memory_steps, 2)
        a.sdxl_size = 64
        a.scaling_res = "64,128"
        a.scaling_batch = "1,2"
        a.scaling_steps = 2
        a.scaling_repeats = 1
        a.no_write = a.no_write or not a.out
    # CPU: 4 steps, so that the fast preset's 0-0.7 window leaves the last one unguided (3 of 4 guided; the
    # workflow's 20 steps guide 14; 3 steps would guide all); 2 repeats (min and max show the spread). A 512 px
    # step takes ~10 s on 2 quiet cores, an xt one ~30 s: see benchmarks/README.md for run times.
    a.sizes = _ints(a.sizes or ("512" if a.gpu else "256,512"))
    a.steps = a.steps or (30 if a.gpu else 4)
    a.repeats = a.repeats or (3 if a.gpu else 2)
    a.profile_sizes = _ints(a.profile_sizes) if a.profile_sizes else list(a.sizes)
    if any(s % 8 for s in a.sizes) or a.sdxl_size % 8:
        p.error("sizes must be multiples of 8")
    if a.flops_only:
        a.repeats, a.profile, a.no_flops, a.no_scaling = 0, "none", False, True
    elif a.steps < 1 or a.repeats < 1 or a.warmup_steps < 1:
        p.error("--steps, --repeats and --warmup-steps must be >= 1")
    return a


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        sys.exit(f"{WHO}: unknown configuration(s) {unknown}; choose from {list(CONFIGS)}")
    return names


# ---------------------------------------------------------------- prompts


def _loss_chain(g: dict, chain: str) -> str:
    """Add a configuration's loss nodes to ``g``; return the id of the last one."""
    from headless.testbed import graphs as G

    if chain == "image":
        g["vgg"] = {"class_type": "StyleGuidanceVGGLoader", "inputs": {"vgg_name": RM.VGG}}
        g["oclip"] = {"class_type": "StyleGuidanceOpenCLIPLoader",
                      "inputs": {"arch": RM.OPEN_CLIP_ARCH, "clip_name": RM.OPEN_CLIP}}
        last = G.add_all_losses(g, weights={k: v["weight"] for k, v in CHAIN.items()})
        for i, key in enumerate(G.TERMS):  # the fast workflow's settings (patches, cutouts, layers, ...)
            g[f"l{i + 1}"]["inputs"].update(CHAIN.get(key, {}))
        return last
    if chain == "zecon-model":
        g["lz"] = {"class_type": "StyleGuidanceModelZeCon", "inputs": {
            "content": G.link("enc"), "weight": 1.0, "layers": "all levels (ZeCon: input blocks 0,2,5,8,11 on SD1.5)",
            "num_patches": 256, "tau": 0.07, "seed": 0}}
        return "lz"
    if chain == "ad":
        g["senc"] = {"class_type": "VAEEncode", "inputs": {"pixels": G.link("style"), "vae": G.link("io_vae")}}
        g["la"] = {"class_type": "StyleGuidanceAttentionDistillation", "inputs": {
            "style": G.link("senc"), "weight": 1.0, "layers": "decoder, last 6 self-attentions (paper)", "seed": 0}}
        return "la"
    raise ValueError(f"unknown loss chain {chain!r}")


def build_prompt(fam: str, name: str, size: int, batch: int, steps: int, seed: int, a: argparse.Namespace) -> dict:
    """One configuration's prompt: shared inputs, the sampler node, a TAESD decode and a preview."""
    from headless.testbed import graphs as G

    spec = CONFIGS[name][1]
    taesd = "taesd" if fam == "sd15" else "taesdxl"
    tokens, dim, pooled = RM.CONDITIONING[fam]

    def cond(text: str) -> dict:
        return {"class_type": "SGTestConditioning", "inputs": {
            "text": text, "seed": 0, "tokens": tokens, "dim": dim, "pooled_dim": pooled, "width": size, "height": size}}

    g: dict[str, dict] = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": RM.SD15 if fam == "sd15" else RM.SDXL}},
        # Same starting latent and output decode everywhere (TAESD): only the sampler node differs.
        "io_vae": {"class_type": "VAELoader", "inputs": {"vae_name": taesd}},
        "content": {"class_type": "SGTestImage", "inputs": {"width": size, "height": size, "seed": 1, "batch_size": batch}},
        "enc": {"class_type": "VAEEncode", "inputs": {"pixels": G.link("content"), "vae": G.link("io_vae")}},
        "pos": cond("a painting"),
        "neg": cond(""),
    }
    samp = G.sampling(seed=seed, steps=steps, cfg=a.cfg, sampler_name=a.sampler, scheduler=a.scheduler,
                      denoise=a.denoise)
    if spec is None:
        G.add_ksampler(g, SAMPLER_NODE, samp)
    else:
        g["vae"] = {"class_type": "VAELoader", "inputs": {"vae_name": RM.SD_VAE if spec["vae"] == "vae" else taesd}}
        g["style"] = {"class_type": "SGTestImage", "inputs": {"width": size, "height": size, "seed": 7, "batch_size": 1}}
        last = _loss_chain(g, chain_of(name))
        assert last == LOSS_NODE[chain_of(name)], (last, name)
        opts = {k: v for k, v in spec.items() if k not in ("vae", "chain")}
        G.add_guided_sampler(g, SAMPLER_NODE, last, G.guidance_options(scale=a.scale, **opts), samp)
    g["decode"] = {"class_type": "VAEDecode", "inputs": {"samples": G.link(SAMPLER_NODE), "vae": G.link("io_vae")}}
    g["preview"] = {"class_type": "PreviewImage", "inputs": {"images": G.link("decode")}}
    return g


def evaluation_plan(name: str, steps: int) -> list[bool]:
    """Per model evaluation (euler: one per step, k per step in the recurrence window): guided or not.

    Uses the pack's own window rule (``sampler.guidance.in_window``, as loaded by ComfyUI), so the
    floors follow whatever the engine does: step i of n is at fraction i/n, guided when the
    sampler's window admits it, repeated k times when the recurrence window does. Every term of
    the benchmark's chains has the default window (0-1), so a guided step guides all of them.
    """
    in_window = _pack_attr("in_window", "guidance")
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


# ---------------------------------------------------------------- instrumentation


class Instrument:
    """Counts model evaluations and, while tracking, labels components (profiler ranges, FLOP counts).

    Class methods (and the engine module's ``balanced_direction``, and ``torch.autograd.grad``)
    are wrapped in this process only; the pack's files are untouched. With tracking off a wrapper
    costs one counter increment and a flag test per call. While tracking, each term's backward in
    ``balanced_direction`` runs inside a ``sg::term_bwd:<term>`` label (the grad calls come in the
    order of the terms that carry a graph), any other ``autograd.grad`` inside ``sg::bwd`` (in
    ``GuidanceEngine.direction`` that is the one backward through the decoder).
    """

    def __init__(self) -> None:
        self.labels = False  # torch.profiler ranges
        self.counter: LabelledFlops | None = None  # FLOPs by label while counting
        self.stack: list[str] = []  # labels entered, outermost first
        self.pending: list[str] = []  # terms whose backward comes next, in balanced_direction's order
        self.counts: Counter = Counter()
        self.found: set[str] = set()
        self._undo: list[tuple[object, str, object]] = []

    @property
    def tracking(self) -> bool:
        return self.labels or self.counter is not None

    @contextlib.contextmanager
    def label(self, label: str) -> Iterator[None]:
        import torch

        self.stack.append(label)
        try:
            if self.labels:
                with torch.profiler.record_function(label):
                    yield
            else:
                yield
        finally:
            self.stack.pop()

    def wrap(self, owner: object, attr: str, label: str | None, count: str | None = None,
             before: Callable[[tuple, dict], None] | None = None) -> None:
        import torch

        orig = owner.__dict__[attr]
        inst = self

        def wrapper(*args, **kwargs):
            if count:
                inst.counts[count] += 1
                if torch.is_grad_enabled():
                    inst.counts[count + "_grad"] += 1
            if not inst.tracking:
                return orig(*args, **kwargs)
            if before is not None:
                before(args, kwargs)
            try:
                if label is None:
                    return orig(*args, **kwargs)
                with inst.label(label):
                    return orig(*args, **kwargs)
            finally:
                if before is not None:
                    inst.pending.clear()

        wrapper.__wrapped__ = orig
        setattr(owner, attr, wrapper)
        self._undo.append((owner, attr, orig))

    def _term_order(self, args: tuple, kwargs: dict) -> None:
        values = args[0] if args else kwargs["values"]
        self.pending[:] = [n for n, v in values.items() if getattr(v, "requires_grad", False)]

    def _wrap_grad(self) -> None:
        import torch

        orig = torch.autograd.grad
        inst = self

        def grad(*args, **kwargs):
            if not inst.tracking:
                return orig(*args, **kwargs)
            with inst.label(TERM_BWD + inst.pending.pop(0) if inst.pending else "sg::bwd"):
                return orig(*args, **kwargs)

        grad.__wrapped__ = orig
        torch.autograd.grad = grad
        self._undo.append((torch.autograd, "grad", orig))

    def install(self) -> None:
        import comfy.ldm.modules.diffusionmodules.openaimodel as oai
        import comfy.samplers
        import comfy.sd

        self.wrap(oai.UNetModel, "forward", "sg::unet", "unet")
        self.wrap(comfy.samplers.CFGGuider, "__call__", "sg::model_eval", "model_eval")
        self.wrap(comfy.sd.VAE, "decode", "sg::final_decode")
        wanted = (
            ("DecoderCopy", "forward", "sg::decoder", "decoder"),
            ("FeatureExtractor", "forward", "sg::vgg", None),
            ("CLIPImageEncoder", "encode_resized", "sg::clip", None),
            ("CombinedLoss", "evaluate", "sg::loss", None),
            ("GuidanceEngine", "direction", "sg::engine", "direction"),
            ("ModelZeConLoss", "content_features", "sg::mf_content", None),
        )
        for mod in _pack_modules():
            for cls_name, attr, label, count in wanted:
                cls = getattr(mod, cls_name, None)
                if isinstance(cls, type) and cls.__module__ == mod.__name__ and attr in cls.__dict__:
                    self.wrap(cls, attr, label, count)
                    self.found.add(cls_name)
            if Path(mod.__file__).stem == "engine" and callable(mod.__dict__.get("balanced_direction")):
                self.wrap(mod, "balanced_direction", None, before=self._term_order)
                self.found.add("balanced_direction")
        self._wrap_grad()
        missing = {w[0] for w in wanted} | {"balanced_direction"}
        missing -= self.found
        if missing:
            log(WHO, f"warning: could not label {sorted(missing)} (pack layout changed?)")

    def uninstall(self) -> None:
        for owner, attr, orig in reversed(self._undo):
            setattr(owner, attr, orig)
        self._undo.clear()


def _pack_modules() -> list:
    """The pack's modules as ComfyUI loaded them (any copy whose file is in this repository)."""
    out = []
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if f and Path(f).resolve().parent.parent == REPO_ROOT and Path(f).parent.name in ("sampler", "losses"):
            out.append(mod)
    return out


def _pack_attr(name: str, module: str = "comfy_adapter"):
    """``name`` from the pack's ``sampler/<module>.py`` as ComfyUI loaded it."""
    for mod in _pack_modules():
        if Path(mod.__file__).stem == module and Path(mod.__file__).parent.name == "sampler" and hasattr(mod, name):
            return getattr(mod, name)
    raise RuntimeError(f"pack attribute sampler/{module}.py:{name} not found (is the pack loaded?)")


def component_of(labels: list[str]) -> str | None:
    """The component label of an op, from the labels around it (innermost first)."""
    if "sg::mf_content" in labels:  # a latent term's reference features: once per run, whatever runs inside
        return "sg::mf_content"
    if not labels:
        return None
    if labels[0] == "sg::unet" and "sg::engine" in labels:  # the model run by a latent term, not by the sampler
        return "sg::probe"
    return labels[0]


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

    install_guidance = _pack_attr("install_guidance")
    ordinary_weights = _pack_attr("ordinary_weights", "autograd_compat")
    settings_cls = _pack_attr("GuidanceSettings")
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
        probe = partial(_pack_attr("measure_probe", "model_probe"), objs["model"], objs["positive"], 0, sigma) \
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


# ---------------------------------------------------------------- profiling


def profile_step(comfy, prompt: dict, inst: Instrument, cuda: bool) -> dict:
    """torch.profiler over a 1-step prompt; time of its model evaluation split by component and by term backward."""
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    inst.labels = True
    try:
        t0 = time.perf_counter()
        with profile(activities=acts) as prof:
            comfy.run(prompt)
            if cuda:
                torch.cuda.synchronize()
        prompt_s = time.perf_counter() - t0
    finally:
        inst.labels = False
        inst.stack.clear()
    evs = list(prof.events())
    evals = [e for e in evs if e.name == "sg::model_eval"]
    if not evals:
        return {"error": "no model evaluation recorded"}
    window = max(evals, key=lambda e: e.time_range.end - e.time_range.start)
    lo, hi = window.time_range.start, window.time_range.end

    def around(e) -> tuple[list[str], bool, str | None]:
        """(labels around ``e``, innermost first, up to a backward node; inside a backward node?; term range)."""
        labels: list[str] = []
        term = None
        in_bwd = False
        while e is not None:
            if e.name.startswith(TERM_BWD) and term is None:
                term = e.name[len(TERM_BWD):]
            if not in_bwd:
                if e.name.startswith(BWD):
                    in_bwd = not labels
                    if in_bwd:
                        e = e.cpu_parent
                        continue
                if e.name in LABELS:
                    labels.append(e.name)
            e = e.cpu_parent
        return labels, in_bwd, term

    seq: dict = {}  # (forward thread, autograd sequence number) -> label of the op that made the node
    for e in evs:
        if getattr(e, "sequence_nr", -1) >= 0:
            labels, in_bwd, _ = around(e)
            lab = None if in_bwd else component_of(labels)
            if lab:
                seq.setdefault((e.thread, e.sequence_nr), lab)

    def bucket(e) -> tuple[str, str | None]:
        labels, in_bwd, term = around(e)
        if in_bwd:
            x = e
            while x is not None and not x.name.startswith(BWD):
                x = x.cpu_parent
            lab = seq.get((getattr(x, "fwd_thread", x.thread), x.sequence_nr), "sg::model_eval")
            return LABELS[lab] + ("" if lab in UNSPLIT else " bwd"), term
        lab = component_of(labels)
        if lab is None:
            return "other", term
        return LABELS[lab] + ("" if lab in UNSPLIT else " fwd"), term

    cpu_us: Counter = Counter()
    dev_us: Counter = Counter()
    term_cpu_us: Counter = Counter()
    term_dev_us: Counter = Counter()
    other_ops: Counter = Counter()
    syncs: Counter = Counter()
    for e in evs:
        if e.device_type != DeviceType.CPU or e.time_range.start < lo or e.time_range.end > hi:
            continue
        b, term = bucket(e)
        if b == "guidance step bwd":
            b = "guidance step"
        cpu_us[b] += e.self_cpu_time_total
        dev_us[b] += getattr(e, "self_device_time_total", 0) or 0
        if term is not None:
            term_cpu_us[term] += e.self_cpu_time_total
            term_dev_us[term] += getattr(e, "self_device_time_total", 0) or 0
        if b in ("other", "guidance step") and not e.name.startswith("sg::"):
            other_ops[e.name] += e.self_cpu_time_total
        if e.name in ("aten::_local_scalar_dense", "cudaStreamSynchronize", "cudaDeviceSynchronize",
                      "cudaMemcpy", "aten::nonzero"):
            syncs[e.name] += 1
    step_us = hi - lo
    return {
        "prompt_s": prompt_s, "step_s": step_us / 1e6,
        "components_cpu_ms": {k: v / 1e3 for k, v in cpu_us.items()},
        "components_device_ms": {k: v / 1e3 for k, v in dev_us.items()} if cuda else {},
        "term_bwd_cpu_ms": {k: v / 1e3 for k, v in term_cpu_us.items()},
        "term_bwd_device_ms": {k: v / 1e3 for k, v in term_dev_us.items()} if cuda else {},
        "top_other_ops_ms": {k: v / 1e3 for k, v in other_ops.most_common(8)},
        "sync_points": dict(syncs),
    }


# ---------------------------------------------------------------- measuring


def unload_all() -> None:
    import comfy.model_management as mm
    import torch

    mm.unload_all_models()
    mm.soft_empty_cache(True)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def timed(comfy, prompt: dict, cuda: bool, inst: Instrument) -> dict:
    before = Counter(inst.counts)
    r = timed_run(comfy, prompt, cuda)
    r["counts"] = {k: inst.counts[k] - before.get(k, 0) for k in inst.counts}
    return r


class Bench:
    """The run's shared state: ComfyUI, instrumentation, options, clock."""

    def __init__(self, comfy, inst: Instrument, a: argparse.Namespace, cuda: bool, started: float) -> None:
        self.comfy, self.inst, self.a, self.cuda, self.started = comfy, inst, a, cuda, started
        self.memory_pass = cuda or a.dry_run

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def warm(self, fam: str, name: str, size: int, batch: int, objs: dict) -> float:
        t0 = time.perf_counter()
        self.comfy.run(build_prompt(fam, name, size, batch, self.a.warmup_steps, WARMUP_SEED, self.a))
        dt = time.perf_counter() - t0
        objs["model"] = self.comfy.output("ckpt")
        objs["io_vae"] = self.comfy.output("io_vae")
        objs["positive"] = self.comfy.output("pos")
        spec = CONFIGS[name][1]
        if spec is not None:
            objs.setdefault("decoders", {})[spec["vae"]] = self.comfy.output("vae")
            objs.setdefault("losses", {})[chain_of(name)] = self.comfy.output(LOSS_NODE[chain_of(name)])
        log(WHO, f"warm-up {fam} {size}px b{batch} {name:13s} {dt:7.2f}s")
        return dt

    def memory(self, fam: str, name: str, size: int, batch: int) -> dict:
        """Peak memory of one run started with every model unloaded (as a fresh process would)."""
        import torch

        unload_all()
        r = timed(self.comfy, build_prompt(fam, name, size, batch, self.a.memory_steps, WARMUP_SEED - 1, self.a),
                  self.cuda, self.inst)
        out = {"rss_peak": r["rss_peak"], "rss_growth": r["rss_growth"]}
        if self.cuda:
            out["cuda_peak"], out["cuda_reserved_peak"] = r["cuda_peak"], r["cuda_reserved_peak"]
            torch.cuda.reset_peak_memory_stats()
        log(WHO, f"memory {fam} {size}px b{batch} {name:13s} " + (
            f"{out['cuda_peak'] / GIB:.2f} GiB allocated" if self.cuda else f"RSS peak {out['rss_peak'] / GIB:.2f} GiB"))
        return out

    def table(self, fam: str, size: int, batch: int, steps: int, names: list[str], repeats: int,
              flops: bool, profile: list[str]) -> dict:
        """Warm-ups, interleaved timed rounds, FLOP counts, memory pass, profiles for one setting."""
        a = self.a
        t_start = self.elapsed()
        load_before = os.getloadavg()
        objs: dict = {}
        warm = {n: self.warm(fam, n, size, batch, objs) for n in names}
        runs: dict[str, list[dict]] = {n: [] for n in names}
        expected = {SAMPLER_NODE, "decode", "preview"}
        for i in range(repeats):
            k = i % len(names)
            for n in names[k:] + names[:k]:
                r = timed(self.comfy, build_prompt(fam, n, size, batch, steps, WARMUP_SEED + 1 + i, a), self.cuda,
                          self.inst)
                r["loadavg"] = os.getloadavg()[0]
                if set(r["executed"]) != expected:
                    log(WHO, f"warning: {n} re-executed {r['executed']}, expected {sorted(expected)}")
                runs[n].append(r)
                log(WHO, f"{fam} {size}px b{batch} round {i + 1}/{repeats} {n:13s} {r['wall_s']:8.3f}s wall "
                    f"{r['cpu_s']:8.3f}s cpu  load {r['loadavg']:.1f}")
        f = None
        if flops:  # after the timed rounds, so that nothing it leaves behind can touch them
            t0 = time.perf_counter()
            f = count_flops(objs, self.inst, fam, size, batch, a.cfg, names)
            log(WHO, f"FLOP counts ({time.perf_counter() - t0:.1f}s): unet_fwd {f['unet_fwd'] / 1e9:.0f}G"
                + (f", unet_bwd {f['unet_bwd'] / 1e9:.0f}G" if "unet_bwd" in f else "")
                + "".join(f"; [{k}] {g['per_eval'] / 1e9:.0f}G/eval" for k, g in f["guided"].items()))
        mem = {n: self.memory(fam, n, size, batch) for n in names} if self.memory_pass and repeats else {}
        profiles = {}
        for n in profile:
            if n in names:
                profiles[n] = profile_step(self.comfy, build_prompt(fam, n, size, batch, 1, WARMUP_SEED - 2, a),
                                           self.inst, self.cuda)
                log(WHO, f"profiled {n}: step {profiles[n].get('step_s', 0):.3f}s")
        rows = []
        for n in names:
            plan = evaluation_plan(n, steps)
            row = {"config": n, "description": CONFIGS[n][0], "settings": CONFIGS[n][1], "warmup_s": warm[n],
                   "evaluations_planned": len(plan), "guided_planned": sum(plan)}
            if f is not None:
                row["flops"] = run_flops(n, steps, size, f)["flops"]
                if n == "fast" and steps != FAST_STEPS:  # the preset as shipped: the workflow's step count
                    row["flops_workflow_steps"] = {"steps": FAST_STEPS, "flops": run_flops(n, FAST_STEPS, size, f)["flops"],
                                                   "plain": run_flops("plain", FAST_STEPS, size, f)["flops"]}
            rows.append(row)
            if not runs[n]:  # --flops-only
                continue
            times = [r["wall_s"] for r in runs[n]]
            cpus = [r["cpu_s"] for r in runs[n]]
            counted = runs[n][-1]["counts"]
            row.update({
                "times_s": times, "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
                "cpu_times_s": cpus, "median_cpu_s": statistics.median(cpus),
                "loadavg": [r["loadavg"] for r in runs[n]],
                "peak_rss_bytes": max(r["rss_peak"] for r in runs[n]),
                "peak_rss_growth_bytes": max(r["rss_growth"] for r in runs[n]),
                "model_evals": counted.get("model_eval", 0), "guided_calls": counted.get("direction", 0),
                "unet_calls": counted.get("unet", 0),  # latent terms' model passes included
                "decoder_calls": counted.get("decoder", 0), "executed_nodes": runs[n][-1]["executed"],
            })
            if chain_of(n) == "image" and row["decoder_calls"] != row["guided_calls"]:
                log(WHO, f"warning: {n}: {row['decoder_calls']} decoder calls for {row['guided_calls']} guided evaluations")
            if row["model_evals"] != len(plan):
                log(WHO, f"warning: {n}: {row['model_evals']} model evaluations counted, {len(plan)} planned")
            if sum(plan) != row["guided_calls"]:
                log(WHO, f"warning: {n}: {row['guided_calls']} guided evaluations counted, {sum(plan)} planned")
            if n in mem:
                row["memory_pass"] = mem[n]
        plain = rows[0]
        for r in rows:
            if "median_s" in r:
                r["ratio"] = r["median_s"] / plain["median_s"]
                r["ratio_cpu"] = r["median_cpu_s"] / plain["median_cpu_s"]
            if "flops" in r:
                r["floor"] = r["flops"] / plain["flops"]
                if "ratio" in r:
                    r["x_floor"] = r["ratio"] / r["floor"]
                    r["x_floor_cpu"] = r["ratio_cpu"] / r["floor"]
            wf = r.get("flops_workflow_steps")
            if wf:
                wf["floor"] = wf["flops"] / wf["plain"]
        return {"family": fam, "size": size, "batch": batch, "steps": steps, "repeats": repeats, "rows": rows,
                "flops": f, "profiles": profiles, "seconds": self.elapsed() - t_start,
                "loadavg_before": load_before, "loadavg_after": os.getloadavg()}


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    names = ["plain"] + [n for n in (_names(a.only) if a.only else CONFIGS) if n != "plain"]
    started = time.perf_counter()
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    want_gpu_parts = a.gpu or a.dry_run
    families = ("sd15", "sdxl") if want_gpu_parts and not a.no_sdxl else ("sd15",)
    manifest: dict = {}

    def models(models_dir: Path) -> dict:
        root, man = RM.ensure_models(families, log=lambda s: log(WHO, s))
        RM.link_into(models_dir, root)
        manifest.update(man)
        return man

    with tempfile.TemporaryDirectory(prefix="sg_realsize_") as tmp:
        comfy_root, _ = setup_comfy(Path(tmp) / "base", a.gpu, models, who=WHO)
        import torch

        cuda = a.gpu and torch.cuda.is_available()
        if a.gpu and not cuda:
            log(WHO, "--gpu given but CUDA is unavailable: running the GPU plan on the CPU")
        profile = ([] if a.profile == "none" else _names(a.profile) if a.profile else
                   (["plain", "fast", "x0-vae", "xt-taesd", "xt-vae", "zecon-model", "ad"] if cuda
                    else ["plain", "fast", "xt-taesd"]))
        inst = Instrument()
        inst.install()
        comfy = make_executor()
        bench = Bench(comfy, inst, a, cuda, started)
        setup_s = bench.elapsed()
        load_before = os.getloadavg()
        result: dict = {"benchmark": WHO, "cuda": cuda, "tables": []}
        for i, size in enumerate(a.sizes):
            if i:
                comfy = bench.comfy = make_executor()  # drop the last size's cached outputs
                unload_all()
            result["tables"].append(bench.table("sd15", size, 1, a.steps, names, a.repeats, not a.no_flops,
                                                profile if size in a.profile_sizes else []))
        if want_gpu_parts and not a.no_sdxl:
            comfy = bench.comfy = make_executor()  # drop SD1.5's cached outputs before loading SDXL
            unload_all()
            snames = ["plain"] + [n for n in _names(a.sdxl_configs) if n != "plain"]
            result["sdxl"] = bench.table("sdxl", a.sdxl_size, 1, a.steps, snames, a.repeats, not a.no_flops, [])
        if want_gpu_parts and not a.no_scaling:
            comfy = bench.comfy = make_executor()
            unload_all()
            cells = []
            for size in _ints(a.scaling_res):
                for batch in _ints(a.scaling_batch):
                    if a.deadline_s and bench.elapsed() > a.deadline_s:
                        cells.append({"size": size, "batch": batch, "skipped": "time budget"})
                        continue
                    try:
                        cell = bench.table("sd15", size, batch, a.scaling_steps, ["plain", "fast"], a.scaling_repeats,
                                           False, [])
                        cells.append({"size": size, "batch": batch, "rows": cell["rows"]})
                    except torch.OutOfMemoryError as e:
                        cells.append({"size": size, "batch": batch, "skipped": f"out of memory: {str(e)[:80]}"})
                        unload_all()
            result["scaling"] = cells
        load_after = os.getloadavg()
        inst.uninstall()
        from _common import PeakRSS

        result.update({
            "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": command_line(__file__, argv), "settings": {k: v for k, v in vars(a).items()},
            "machine": machine_info(comfy_root, cuda), "pack": pack_info(), "models": manifest,
            "rss_method": PeakRSS().method, "setup_s": setup_s, "loadavg_before": load_before,
            "loadavg_after": load_after, "fast_workflow": {"settings": CONFIGS["fast"][1], "steps": FAST_STEPS},
        })
    result["total_s"] = time.perf_counter() - started
    result["targets"] = targets(result, cuda)
    md = markdown(result)
    print(md)
    if not a.no_write:
        write_results(result, md, a.out, RESULTS_DIR / f"{'cuda' if cuda else 'cpu'}_realsize",
                      lambda msg: log(WHO, msg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
