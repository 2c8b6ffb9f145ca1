"""Time Style Guidance at real model sizes inside a real ComfyUI: ratios, FLOP floors, memory, profile.

One process, one run. Real-size architectures with seeded random weights (SD1.5 UNet, SD VAE,
TAESD, VGG19, open_clip ViT-B-32; SDXL UNet/TAESDXL with ``--gpu``), built once through
ComfyUI's own classes and cached (``benchmarks/_realsize_models.py``), are loaded by ComfyUI's
own loaders; every configuration is an API prompt run by ComfyUI's validator and executor
in-process, with the same model, conditioning, starting latent, seed, resolution and steps:

    plain         core KSampler, no guidance
    fast          StyleGuidanceSampler, x0 mode, TAESD decoder, loss_resolution 256
    x0-vae        x0 mode, full SD VAE decoder
    xt-taesd      xt mode (backward through the UNet), TAESD decoder
    xt-vae        xt mode, full SD VAE decoder
    freedom-like  xt, full VAE, guidance window 0.3-0.7, recurrence 3 in 0.4-0.7
    mpgd-like     x0, full VAE, window 0.3-0.7

Guided configurations chain all five losses (content MSE, VGG content, ZeCon with 256 patches,
CLIP style with 8 cutouts, Gram style) at the loss nodes' defaults. For each configuration:
median/min/max wall time over ``--repeats`` interleaved runs after a warm-up, the ratio to plain,
the FLOP floor of that ratio (``torch.utils.flop_counter.FlopCounterMode`` on the same
components: UNet forward at the CFG batch, UNet forward+backward, decoder forward+backward, loss
networks forward+backward, the final decode, times the evaluations each configuration makes),
peak memory (CPU: peak RSS; GPU: ``torch.cuda.max_memory_allocated`` in a separate pass that
starts each configuration with every model unloaded), and a torch.profiler breakdown of one
guided step by component. With ``--gpu``: SD1.5 at 512 px / 30 steps, SDXL at 1024 px (plain
and fast), and a resolution x batch scaling table for plain and fast. ``--dry-run`` runs the
same code with tiny sizes and step counts (checks the GPU path on a CPU).

    .venv/bin/python benchmarks/bench_realsize.py --threads 2           # CPU: 256 px, 3 steps, 2 repeats
    .venv/bin/python benchmarks/bench_realsize.py --gpu                 # CUDA machine (see gpu_run.sh)
    .venv/bin/python benchmarks/bench_realsize.py --gpu --dry-run       # the GPU path, tiny, on any machine

Results: Markdown on stdout and in ``benchmarks/results/<cpu|cuda>_realsize.md``, all numbers in
the ``.json`` beside it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
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
from _realsize_configs import CONFIGS, GIB, loss_side
from _realsize_report import markdown, targets

WHO = "bench_realsize"
SAMPLER_NODE = "sampler"
WARMUP_SEED = 1000
LABELS = {  # record_function label -> component
    "sg::unet": "UNet", "sg::decoder": "decoder", "sg::vgg": "VGG", "sg::clip": "CLIP",
    "sg::loss": "loss arithmetic", "sg::engine_finish": "guidance step", "sg::model_eval": "other",
    "sg::final_decode": "final decode",
}
BWD = "autograd::engine::evaluate_function"


# ---------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gpu", action="store_true", help="CUDA run: SD1.5 512 px / 30 steps, SDXL 1024, scaling table")
    p.add_argument("--dry-run", action="store_true", help="same code path, tiny sizes and steps (no result files)")
    p.add_argument("--size", type=int, default=0, help="SD1.5 image side in px (default 256 CPU, 512 GPU)")
    p.add_argument("--steps", type=int, default=0, help="sampling steps (default 3 CPU, 30 GPU)")
    p.add_argument("--repeats", type=int, default=0, help="timed runs per configuration after the warm-up (2 CPU, 3 GPU)")
    p.add_argument("--cfg", type=float, default=7.0, help="CFG scale (7.0)")
    p.add_argument("--denoise", type=float, default=0.7, help="denoise, from the TAESD-encoded content image (0.7)")
    p.add_argument("--sampler", default="euler", help="sampler_name (euler)")
    p.add_argument("--scheduler", default="normal", help="scheduler (normal)")
    p.add_argument("--scale", type=float, default=1.0, help="guidance scale of the guided configurations (1.0)")
    p.add_argument("--only", default="", help=f"comma-separated subset of: {','.join(CONFIGS)} (plain always runs)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = torch's default)")
    p.add_argument("--warmup-steps", type=int, default=1, help="steps of the warm-up run of each prompt (1)")
    p.add_argument("--profile", default="", help="configurations whose guided step is profiled "
                   "(default: plain,fast,xt-vae on CPU; plain,fast,x0-vae,xt-taesd,xt-vae on GPU; 'none' to skip)")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP counts (and floors)")
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
    if a.dry_run:
        a.size = a.size or 64
        a.steps = a.steps or 2
        a.repeats = 1
        a.memory_steps = min(a.memory_steps, 2)
        a.sdxl_size = 64
        a.scaling_res = "64,128"
        a.scaling_batch = "1,2"
        a.scaling_steps = 2
        a.scaling_repeats = 1
        a.no_write = a.no_write or not a.out
    # CPU: 256 px, 3 steps, 2 repeats: on 2 cores an xt-vae evaluation takes ~14 s at 256 px and the seven
    # configurations x (warm-up + repeats) must fit in 10 minutes (8.4 min measured; benchmarks/README.md).
    a.size = a.size or (512 if a.gpu else 256)
    a.steps = a.steps or (30 if a.gpu else 3)
    a.repeats = a.repeats or (3 if a.gpu else 2)
    if a.size % 8 or a.sdxl_size % 8:
        p.error("sizes must be multiples of 8")
    if a.steps < 1 or a.repeats < 1 or a.warmup_steps < 1:
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


def build_prompt(fam: str, name: str, size: int, batch: int, steps: int, seed: int, a: argparse.Namespace) -> dict:
    """One configuration's prompt: shared inputs, the sampler node, a TAESD decode and a preview."""
    from headless import graphs as G

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
        g["vgg"] = {"class_type": "StyleGuidanceVGGLoader", "inputs": {"vgg_name": RM.VGG}}
        g["oclip"] = {"class_type": "StyleGuidanceOpenCLIPLoader",
                      "inputs": {"arch": RM.OPEN_CLIP_ARCH, "clip_name": RM.OPEN_CLIP}}
        last = G.add_all_losses(g)
        g["l3"]["inputs"]["num_patches"] = 256  # the loss nodes' defaults (the tests use fewer)
        g["l4"]["inputs"]["num_cutouts"] = 8
        opts = {k: v for k, v in spec.items() if k != "vae"}
        G.add_guided_sampler(g, SAMPLER_NODE, last, G.guidance_options(scale=a.scale, **opts), samp)
    g["decode"] = {"class_type": "VAEDecode", "inputs": {"samples": G.link(SAMPLER_NODE), "vae": G.link("io_vae")}}
    g["preview"] = {"class_type": "PreviewImage", "inputs": {"images": G.link("decode")}}
    return g


def evaluation_plan(name: str, steps: int) -> list[bool]:
    """Per model evaluation (euler: one per step, k per step in the recurrence window): guided or not.

    Mirrors the pack: step i of n is at fraction i/n; guidance in [start, end), recurrence
    repeats a step k times in [recurrence_start, recurrence_end).
    """
    spec = CONFIGS[name][1]
    plan = []
    for i in range(steps):
        f = i / steps
        if spec is None:
            plan.append(False)
            continue
        k = spec.get("recurrence", 1)
        reps = k if k > 1 and spec.get("recurrence_start_percent", 0.0) <= f < spec.get("recurrence_end_percent", 1.0) else 1
        guided = spec.get("start_percent", 0.0) <= f < spec.get("end_percent", 1.0)
        plan += [guided] * reps
    return plan


# ---------------------------------------------------------------- instrumentation


class Instrument:
    """Counts model evaluations and, while ``labels`` is on, wraps components in profiler labels.

    Class methods are wrapped in this process only (the pack's files are untouched). With labels
    off a wrapper costs one counter increment and a flag test per call.
    """

    def __init__(self) -> None:
        self.labels = False
        self.counts: Counter = Counter()
        self._undo: list[tuple[type, str, object]] = []

    def wrap(self, cls: type, attr: str, label: str, count: str | None = None) -> None:
        import torch

        orig = cls.__dict__[attr]
        inst = self

        def wrapper(*args, **kwargs):
            if count:
                inst.counts[count] += 1
                if torch.is_grad_enabled():
                    inst.counts[count + "_grad"] += 1
            if not inst.labels:
                return orig(*args, **kwargs)
            with torch.profiler.record_function(label):
                return orig(*args, **kwargs)

        wrapper.__wrapped__ = orig
        setattr(cls, attr, wrapper)
        self._undo.append((cls, attr, orig))

    def install(self) -> None:
        import comfy.ldm.modules.diffusionmodules.openaimodel as oai
        import comfy.samplers
        import comfy.sd

        self.wrap(oai.UNetModel, "forward", "sg::unet", "unet")
        self.wrap(comfy.samplers.CFGGuider, "__call__", "sg::model_eval", "model_eval")
        self.wrap(comfy.sd.VAE, "decode", "sg::final_decode")
        found = set()
        for mod in _pack_modules():
            for cls_name, attr, label, count in (
                ("DecoderCopy", "forward", "sg::decoder", "decoder"),
                ("FeatureExtractor", "forward", "sg::vgg", None),
                ("CLIPImageEncoder", "encode_resized", "sg::clip", None),
                ("CombinedLoss", "evaluate", "sg::loss", None),
                ("GuidanceEngine", "_finish", "sg::engine_finish", None),
            ):
                cls = getattr(mod, cls_name, None)
                if isinstance(cls, type) and cls.__module__ == mod.__name__ and attr in cls.__dict__:
                    self.wrap(cls, attr, label, count)
                    found.add(cls_name)
        missing = {"DecoderCopy", "FeatureExtractor", "CLIPImageEncoder", "CombinedLoss", "GuidanceEngine"} - found
        if missing:
            log(WHO, f"warning: could not label {sorted(missing)} (pack layout changed?)")

    def uninstall(self) -> None:
        for cls, attr, orig in reversed(self._undo):
            setattr(cls, attr, orig)
        self._undo.clear()


def _pack_modules() -> list:
    """The pack's modules as ComfyUI loaded them (any copy whose file is in this repository)."""
    out = []
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if f and Path(f).resolve().parent.parent == REPO_ROOT and Path(f).parent.name in ("sampler", "losses"):
            out.append(mod)
    return out


def _pack_attr(name: str):
    for mod in _pack_modules():
        if hasattr(mod, name) and mod.__name__.endswith("comfy_adapter"):
            return getattr(mod, name)
    raise RuntimeError(f"pack attribute {name} not found")


# ---------------------------------------------------------------- FLOP counts


def _flops(fn: Callable[[], None]) -> tuple[int, str]:
    """FLOPs of ``fn`` (matmul/conv/attention, as FlopCounterMode counts) and how they were counted.

    Tried first under FakeTensorMode (no compute); falls back to really running it.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(False), torch.enable_grad():
        try:
            from torch._subclasses.fake_tensor import FakeTensorMode

            with FakeTensorMode(allow_non_fake_inputs=True), FlopCounterMode(display=False) as fc:
                fn()
            return fc.get_total_flops(), "fake"
        except Exception as e:  # noqa: BLE001 - any failure of the symbolic run: count for real
            log(WHO, f"FLOP count under FakeTensorMode failed ({type(e).__name__}: {str(e)[:120]}); running it")
        with FlopCounterMode(display=False) as fc:
            fn()
        return fc.get_total_flops(), "real"


def _param(module):
    return next(module.parameters())


def count_flops(objs: dict, fam: str, size: int, batch: int, cfg: float, names: list[str]) -> dict:
    """Per-component FLOPs at this resolution and batch, on the objects ComfyUI built."""
    import torch

    autograd_safe_ = _pack_attr("autograd_safe_")
    decoder_for = _pack_attr("decoder_for")
    model = objs["model"].model
    unet = model.diffusion_model
    xt = any((CONFIGS[n][1] or {}).get("mode") == "xt" for n in names)
    if xt:
        with torch.inference_mode(False):
            autograd_safe_(unet)  # what the pack does in xt mode (a no-op when that already ran)
    p = _param(unet)
    dev, dt = p.device, p.dtype
    h = w = size // 8
    b = batch * (2 if cfg != 1.0 else 1)
    tokens, dim, pooled = RM.CONDITIONING[fam]

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

    def unet_fwd_bwd():
        x, t, kw = unet_inputs(True)
        unet(x, timesteps=t, **kw).float().sum().backward()  # .backward(): FlopCounterMode breaks autograd.grad

    out: dict = {"method": {}}

    def record(key: str, fn) -> None:
        out[key], out["method"][key] = _flops(fn)

    record("unet_fwd", unet_fwd)
    if xt:
        record("unet_fwd_bwd", unet_fwd_bwd)
    lf = model.latent_format
    for kind, vae in objs.get("decoders", {}).items():
        dec, _ = decoder_for(vae)
        with torch.inference_mode(False):
            autograd_safe_(dec)
        dp = _param(dec)

        def dec_fwd_bwd(dec=dec, dp=dp):
            z = torch.randn(batch, 4, h, w, device=dp.device, requires_grad=True)
            dec(lf.process_out(z)).sum().backward()

        record(f"decoder_fwd_bwd[{kind}]", dec_fwd_bwd)
    losses = objs.get("losses")
    if losses is not None:
        for side in sorted({loss_side(n, size) for n in names if CONFIGS[n][1]}):
            def loss_fwd_bwd(side=side):
                img = torch.rand(batch, 3, side, side, device=dev, requires_grad=True)
                losses(img).total.sum().backward()

            losses.reset_rng(0)
            record(f"loss_fwd_bwd[{side}]", loss_fwd_bwd)
    io_vae = objs["io_vae"]
    first = io_vae.first_stage_model
    fp = _param(first)

    def final_decode():
        with torch.no_grad():
            first.decode(torch.randn(batch, 4, h, w, device=fp.device, dtype=fp.dtype))

    record("final_decode", final_decode)
    return out


def run_flops(name: str, steps: int, size: int, f: dict) -> dict:
    """FLOPs of one run of ``name``: its evaluations, plus the final TAESD decode."""
    spec = CONFIGS[name][1] or {}
    plan = evaluation_plan(name, steps)
    total = f["final_decode"]
    for guided in plan:
        if not guided:
            total += f["unet_fwd"]
            continue
        total += f["unet_fwd_bwd"] if spec["mode"] == "xt" else f["unet_fwd"]
        total += f[f"decoder_fwd_bwd[{spec['vae']}]"] + f[f"loss_fwd_bwd[{loss_side(name, size)}]"]
    return {"flops": total, "evaluations": len(plan), "guided": sum(plan)}


# ---------------------------------------------------------------- profiling


def profile_step(comfy, prompt: dict, inst: Instrument, cuda: bool) -> dict:
    """torch.profiler over a 1-step prompt; time of its model evaluation split by component."""
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
    evs = list(prof.events())
    evals = [e for e in evs if e.name == "sg::model_eval"]
    if not evals:
        return {"error": "no model evaluation recorded"}
    window = max(evals, key=lambda e: e.time_range.end - e.time_range.start)
    lo, hi = window.time_range.start, window.time_range.end

    def forward_label(e):
        """Innermost label around a forward op; None inside a backward pass or outside every label."""
        while e is not None:
            if e.name.startswith(BWD):
                return None
            if e.name in LABELS:
                return e.name
            e = e.cpu_parent
        return None

    seq: dict = {}  # (forward thread, autograd sequence number) -> label of the op that made the node
    for e in evs:
        if getattr(e, "sequence_nr", -1) >= 0:
            lab = forward_label(e)
            if lab:
                seq.setdefault((e.thread, e.sequence_nr), lab)

    def bucket(e) -> str:
        while e is not None:
            if e.name.startswith(BWD):
                lab = seq.get((getattr(e, "fwd_thread", e.thread), e.sequence_nr), "sg::model_eval")
                return LABELS[lab] + " bwd"
            if e.name in LABELS:
                return LABELS[e.name] + (" fwd" if e.name not in ("sg::model_eval", "sg::loss", "sg::engine_finish")
                                         else "")
            e = e.cpu_parent
        return "other"

    cpu_us: Counter = Counter()
    dev_us: Counter = Counter()
    other_ops: Counter = Counter()
    syncs: Counter = Counter()
    for e in evs:
        if e.device_type != DeviceType.CPU or e.time_range.start < lo or e.time_range.end > hi:
            continue
        b = bucket(e)
        if b == "loss arithmetic bwd":
            b = "loss arithmetic"
        if b in ("other bwd", "guidance step bwd"):
            b = b[:-4]
        cpu_us[b] += e.self_cpu_time_total
        dev_us[b] += getattr(e, "self_device_time_total", 0) or 0
        if b in ("other", "guidance step"):
            other_ops[e.name] += e.self_cpu_time_total
        if e.name in ("aten::_local_scalar_dense", "cudaStreamSynchronize", "cudaDeviceSynchronize",
                      "cudaMemcpy", "aten::nonzero"):
            syncs[e.name] += 1
    step_us = hi - lo
    return {
        "prompt_s": prompt_s, "step_s": step_us / 1e6,
        "components_cpu_ms": {k: v / 1e3 for k, v in cpu_us.items()},
        "components_device_ms": {k: v / 1e3 for k, v in dev_us.items()} if cuda else {},
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
        spec = CONFIGS[name][1]
        if spec is not None:
            objs.setdefault("decoders", {})[spec["vae"]] = self.comfy.output("vae")
            objs["losses"] = self.comfy.output("l5")
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
        objs: dict = {}
        warm = {n: self.warm(fam, n, size, batch, objs) for n in names}
        runs: dict[str, list[dict]] = {n: [] for n in names}
        expected = {SAMPLER_NODE, "decode", "preview"}
        for i in range(repeats):
            k = i % len(names)
            for n in names[k:] + names[:k]:
                r = timed(self.comfy, build_prompt(fam, n, size, batch, steps, WARMUP_SEED + 1 + i, a), self.cuda,
                          self.inst)
                if set(r["executed"]) != expected:
                    log(WHO, f"warning: {n} re-executed {r['executed']}, expected {sorted(expected)}")
                runs[n].append(r)
                log(WHO, f"{fam} {size}px b{batch} round {i + 1}/{repeats} {n:13s} {r['wall_s']:8.3f}s wall "
                    f"{r['cpu_s']:8.3f}s cpu  load {os.getloadavg()[0]:.1f}")
        f = None
        if flops:  # after the timed rounds, so that nothing it leaves behind can touch them
            t0 = time.perf_counter()
            f = count_flops(objs, fam, size, batch, a.cfg, names)
            log(WHO, f"FLOP counts ({time.perf_counter() - t0:.1f}s): " + ", ".join(
                f"{k} {v / 1e9:.0f}G" for k, v in f.items() if isinstance(v, int)))
        mem = {n: self.memory(fam, n, size, batch) for n in names} if self.memory_pass else {}
        profiles = {}
        for n in profile:
            if n in names:
                profiles[n] = profile_step(self.comfy, build_prompt(fam, n, size, batch, 1, WARMUP_SEED - 2, a),
                                           self.inst, self.cuda)
                log(WHO, f"profiled {n}: step {profiles[n].get('step_s', 0):.3f}s")
        rows = []
        for n in names:
            times = [r["wall_s"] for r in runs[n]]
            cpus = [r["cpu_s"] for r in runs[n]]
            plan = evaluation_plan(n, steps)
            counted = runs[n][-1]["counts"]
            row = {
                "config": n, "description": CONFIGS[n][0], "settings": CONFIGS[n][1], "warmup_s": warm[n],
                "times_s": times, "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
                "cpu_times_s": cpus, "median_cpu_s": statistics.median(cpus),
                "peak_rss_bytes": max(r["rss_peak"] for r in runs[n]),
                "peak_rss_growth_bytes": max(r["rss_growth"] for r in runs[n]),
                "evaluations_planned": len(plan), "guided_planned": sum(plan),
                "unet_calls": counted.get("unet", 0), "decoder_calls": counted.get("decoder", 0),
                "executed_nodes": runs[n][-1]["executed"],
            }
            if row["unet_calls"] != len(plan):
                log(WHO, f"warning: {n}: {row['unet_calls']} UNet calls counted, {len(plan)} planned")
            if sum(plan) != row["decoder_calls"]:
                log(WHO, f"warning: {n}: {row['decoder_calls']} guided evaluations counted, {sum(plan)} planned")
            if n in mem:
                row["memory_pass"] = mem[n]
            if f is not None:
                row.update({k: v for k, v in run_flops(n, steps, size, f).items() if k == "flops"})
            rows.append(row)
        plain = rows[0]
        for r in rows:
            r["ratio"] = r["median_s"] / plain["median_s"]
            r["ratio_cpu"] = r["median_cpu_s"] / plain["median_cpu_s"]
            if "flops" in r:
                r["floor"] = r["flops"] / plain["flops"]
                r["x_floor"] = r["ratio"] / r["floor"]
        return {"family": fam, "size": size, "batch": batch, "steps": steps, "repeats": repeats, "rows": rows,
                "flops": f, "profiles": profiles}


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
                   (["plain", "fast", "x0-vae", "xt-taesd", "xt-vae"] if cuda else ["plain", "fast", "xt-vae"]))
        inst = Instrument()
        inst.install()
        comfy = make_executor()
        bench = Bench(comfy, inst, a, cuda, started)
        setup_s = bench.elapsed()
        load_before = os.getloadavg()
        result: dict = {"benchmark": WHO, "cuda": cuda}
        result["main"] = bench.table("sd15", a.size, 1, a.steps, names, a.repeats, not a.no_flops, profile)
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
            "loadavg_after": load_after,
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
