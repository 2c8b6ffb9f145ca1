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
import datetime as _dt
import gc
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import _realsize_models as RM
from _common import (
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
from _realsize_configs import CHAIN, CONFIGS, FAST_STEPS, GIB, chain_of
from _realsize_flops import count_flops, evaluation_plan, run_flops
from _realsize_instrument import WHO, Instrument, profile_step
from _realsize_report import markdown, targets

SAMPLER_NODE = "sampler"
WARMUP_SEED = 1000
LOSS_NODE = {"image": "l5", "zecon-model": "lz", "ad": "la"}  # chain -> its last loss node in the prompt



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
