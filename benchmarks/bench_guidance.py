"""Time the Style Guidance sampler against the core KSampler inside a real ComfyUI.

One process, one run. A temporary ComfyUI base is laid out by ``headless.testbed``
(the pack loaded by ComfyUI's own custom-node loader, the ``SGTest*`` stand-in nodes, tiny
seeded random models, nothing downloaded), then each configuration below is run as an API
prompt through ComfyUI's own validator and executor (``InProcessComfy``):

    plain         core KSampler (no guidance)
    x0-taesd      StyleGuidanceSampler, mode x0, TAESD as the guidance decoder
    x0-vae        mode x0, the small full-architecture AutoencoderKL (SGTestKLVAE)
    xt-taesd      mode xt (backward through the UNet), TAESD
    xt-vae        mode xt, AutoencoderKL
    freedom-like  xt, AutoencoderKL, window 0.3-0.7, recurrence 3 in 0.4-0.7
    mpgd-like     x0, AutoencoderKL, window 0.3-0.7

All guided configurations use all five losses (``graphs.add_all_losses``), scale 1.0
and (unless stated) window 0-1. Every prompt shares the model, prompt, starting latent,
seed, resolution, steps, cfg, sampler and denoise; the starting latent is encoded and
the result decoded with TAESD in every configuration (node ``io_vae``), so the only
difference between configurations is the sampler node itself.

Timing: each prompt runs once as a warm-up (loaders, loss networks and feature caches
are built and cached by ComfyUI), then ``--repeats`` times with a new seed on the
sampler node only, so ComfyUI re-executes just the sampler, the TAESD decode and the
preview (checked from ComfyUI's 'executing' messages; a warning is printed otherwise).
The wall time and process CPU time of ``InProcessComfy.run`` are recorded per repeat.
The executor uses ComfyUI's LRU output cache so that the timed runs can be interleaved
across configurations (round r runs each configuration once, order rotated per round):
slow changes in machine load then hit every configuration alike.

    .venv/bin/python benchmarks/bench_guidance.py                # 64 px, 8 steps, 3 repeats
    .venv/bin/python benchmarks/bench_guidance.py --steps 4 --repeats 2
    .venv/bin/python benchmarks/bench_guidance.py --only plain,x0-taesd --no-write

Results: a Markdown table on stdout and in ``benchmarks/results/<device>_guidance.md``,
the raw numbers in ``benchmarks/results/<device>_guidance.json``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    RESULTS_DIR,
    PeakRSS,
    command_line,
    machine_info,
    make_executor,
    pack_info,
    timed_run,
    write_results,
)
from _common import mib as _mib
from _common import setup_comfy as _setup_comfy

# name -> (description, sampler settings or None for the core KSampler)
CONFIGS: dict[str, tuple[str, dict | None]] = {
    "plain": ("core KSampler, no guidance", None),
    "x0-taesd": ("x0 mode, TAESD decoder, window 0-1", {"vae": "taesd", "mode": "x0"}),
    "x0-vae": ("x0 mode, AutoencoderKL decoder, window 0-1", {"vae": "kl", "mode": "x0"}),
    "xt-taesd": ("xt mode, TAESD decoder, window 0-1", {"vae": "taesd", "mode": "xt"}),
    "xt-vae": ("xt mode, AutoencoderKL decoder, window 0-1", {"vae": "kl", "mode": "xt"}),
    "freedom-like": ("xt, AutoencoderKL, window 0.3-0.7, recurrence 3 in 0.4-0.7",
                     {"vae": "kl", "mode": "xt", "start_percent": 0.3, "end_percent": 0.7, "recurrence": 3,
                      "recurrence_start_percent": 0.4, "recurrence_end_percent": 0.7}),
    "mpgd-like": ("x0, AutoencoderKL, window 0.3-0.7",
                  {"vae": "kl", "mode": "x0", "start_percent": 0.3, "end_percent": 0.7}),
}
SAMPLER_NODE = "sampler"
WARMUP_SEED = 1000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=64, help="image side in px (multiple of 8; default 64)")
    p.add_argument("--steps", type=int, default=8, help="sampling steps (default 8)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per configuration after the warm-up (default 3)")
    p.add_argument("--cfg", type=float, default=2.0, help="CFG scale (default 2.0)")
    p.add_argument("--denoise", type=float, default=0.7, help="denoise (default 0.7)")
    p.add_argument("--sampler", default="euler", help="sampler_name (default euler)")
    p.add_argument("--scale", type=float, default=1.0, help="guidance scale of the guided configurations (default 1.0)")
    p.add_argument("--only", default="", help=f"comma-separated subset of: {','.join(CONFIGS)} (plain is always added)")
    p.add_argument("--gpu", action="store_true", help="let ComfyUI use its default device (CUDA) instead of --cpu")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = torch's default)")
    p.add_argument("--out", default="", help="output stem (default benchmarks/results/<cpu|cuda>_guidance)")
    p.add_argument("--no-write", action="store_true", help="print the table only; write no result files")
    args = p.parse_args(argv)
    if args.size % 8:
        p.error("--size must be a multiple of 8")
    if args.steps < 1 or args.repeats < 1:
        p.error("--steps and --repeats must be >= 1")
    return args


# ---------------------------------------------------------------- set-up


def setup_comfy(base: Path, gpu: bool) -> tuple[Path, dict]:
    """Temp ComfyUI base with the pack and tiny models; ComfyUI imported and nodes loaded."""

    def tiny_models(models_dir: Path) -> dict:
        from headless.testbed.standins import suite_models as models

        return models.build_all(models_dir)

    return _setup_comfy(base, gpu, tiny_models, who="bench_guidance")


def build_prompt(tiny: dict, name: str, a: argparse.Namespace, seed: int) -> dict:
    """One configuration's prompt: shared inputs, the sampler node, TAESD decode, preview."""
    from headless.testbed import graphs as G

    spec = CONFIGS[name][1]
    g = G.base_graph(tiny, vae=(spec or {}).get("vae", "taesd"), size=a.size)
    # Same starting latent and same output decode in every configuration: TAESD for both,
    # so the guidance decoder ("vae") is the only thing that differs between prompts.
    g["io_vae"] = {"class_type": "VAELoader", "inputs": {"vae_name": "taesd"}}
    g["enc"]["inputs"]["vae"] = G.link("io_vae")
    samp = G.sampling(seed=seed, steps=a.steps, cfg=a.cfg, sampler_name=a.sampler, denoise=a.denoise)
    if spec is None:
        G.add_ksampler(g, SAMPLER_NODE, samp)
    else:
        last = G.add_all_losses(g)
        opts = {k: v for k, v in spec.items() if k != "vae"}
        G.add_guided_sampler(g, SAMPLER_NODE, last, G.guidance_options(scale=a.scale, **opts), samp)
    g["decode"] = {"class_type": "VAEDecode", "inputs": {"samples": G.link(SAMPLER_NODE), "vae": G.link("io_vae")}}
    g["preview"] = {"class_type": "PreviewImage", "inputs": {"images": G.link("decode")}}
    return g


# ---------------------------------------------------------------- measure


def run_all(comfy, tiny: dict, names: list[str], a: argparse.Namespace, cuda: bool) -> list[dict]:
    """Warm every configuration up, then time ``a.repeats`` interleaved rounds."""
    runs: dict[str, list[dict]] = {n: [] for n in names}
    warm: dict[str, float] = {}
    for name in names:
        t0 = time.perf_counter()
        comfy.run(build_prompt(tiny, name, a, WARMUP_SEED))
        warm[name] = time.perf_counter() - t0
        print(f"[bench_guidance] warm-up {name:13s} {warm[name]:7.2f}s", file=sys.stderr, flush=True)
    expected = {SAMPLER_NODE, "decode", "preview"}
    for i in range(a.repeats):
        k = i % len(names)  # rotate the order so no configuration always runs first
        for name in names[k:] + names[:k]:
            r = timed_run(comfy, build_prompt(tiny, name, a, WARMUP_SEED + 1 + i), cuda)
            if set(r["executed"]) != expected:
                print(f"[bench_guidance] warning: {name} re-executed {r['executed']}, expected {sorted(expected)}",
                      file=sys.stderr)
            runs[name].append(r)
            print(f"[bench_guidance] round {i + 1}/{a.repeats} {name:13s} {r['wall_s']:7.3f}s wall "
                  f"{r['cpu_s']:7.3f}s cpu  load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
    rows = []
    for name in names:
        times = [r["wall_s"] for r in runs[name]]
        cpus = [r["cpu_s"] for r in runs[name]]
        row = {
            "config": name, "description": CONFIGS[name][0], "settings": CONFIGS[name][1],
            "warmup_s": warm[name], "times_s": times, "median_s": statistics.median(times),
            "min_s": min(times), "max_s": max(times), "cpu_times_s": cpus, "median_cpu_s": statistics.median(cpus),
            "peak_rss_growth_bytes": max(r["rss_growth"] for r in runs[name]),
            "peak_rss_bytes": max(r["rss_peak"] for r in runs[name]),
            "executed_nodes": runs[name][-1]["executed"],
        }
        if cuda:
            row["peak_cuda_allocated_bytes"] = max(r["cuda_peak"] for r in runs[name])
        rows.append(row)
    return rows


def table(rows: list[dict], cuda: bool) -> str:
    plain = next(r for r in rows if r["config"] == "plain")["median_s"]
    plain_cpu = next(r for r in rows if r["config"] == "plain")["median_cpu_s"]
    head = ["config", "median s", "min s", "max s", "x plain (median)", "median CPU s", "x plain (CPU)",
            "warm-up s", "peak RSS growth MiB"]
    if cuda:
        head.append("peak CUDA alloc MiB")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in rows:
        cells = [r["config"], f"{r['median_s']:.3f}", f"{r['min_s']:.3f}", f"{r['max_s']:.3f}",
                 f"{r['median_s'] / plain:.2f}", f"{r['median_cpu_s']:.3f}", f"{r['median_cpu_s'] / plain_cpu:.2f}",
                 f"{r['warmup_s']:.2f}", _mib(r["peak_rss_growth_bytes"])]
        if cuda:
            cells.append(_mib(r["peak_cuda_allocated_bytes"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(result: dict) -> str:
    a, m = result["settings"], result["machine"]
    legend = "\n".join(f"- **{n}**: {CONFIGS[n][0]}" for n in (r["config"] for r in result["rows"]))
    dev = m.get("gpu") or m.get("cpu_model") or m["machine"]
    return f"""# Style Guidance sampler timing ({m['device']})

Measured {result['timestamp']} with `{result['command']}`.

- Machine: {m['platform']}, {dev}, {m['cpu_count']} CPUs ({m['cpu_affinity']} usable), torch {m['torch']} \
({m['torch_threads']} thread{'s' if m['torch_threads'] != 1 else ''}), ComfyUI {m['comfyui']}, \
pack {result['pack'].get('style_guidance_version', '?')} \
(git {result['pack'].get('git', '?')}).
- Workload: tiny random SD1.5-detectable UNet (~14M params, headless/testbed/standins/), {a['size']}x{a['size']} px, \
{a['steps']} steps, cfg {a['cfg']}, {a['sampler']}/normal, denoise {a['denoise']}, batch 1; guided configurations \
use all five losses (content MSE, VGG content, ZeCon, CLIP style, Gram style) at scale {a['scale']}.
- Each figure is the wall time of one in-process ComfyUI prompt run in which only the sampler node (new seed), \
a TAESD decode and a preview re-execute; {a['repeats']} timed runs per configuration after one warm-up run each, \
interleaved (round r runs every configuration once). "x plain" is the ratio of medians to the core KSampler. \
"CPU s" is this process's user+system CPU time over the same run (all threads; less sensitive than wall time to \
other processes on the machine). Load average (1 min) {result['loadavg_before'][0]:.1f} before, \
{result['loadavg_after'][0]:.1f} after. "warm-up" is the first run of the prompt, including loaders and \
loss-network set-up. \
"peak RSS growth" is the process's peak resident memory during a timed run over its resident memory just before \
({result['rss_method']}; the allocator keeps freed memory, so this understates the later rows).
- Tiny random models: the ratios show the guidance machinery's overhead relative to a cheap UNet, not real-model \
speed (bench_realsize.py counts the real-size FLOPs). In particular the test AutoencoderKL ("vae" rows) is the \
SD VAE's architecture at width 32 (decoder 0.63M parameters, 0.69 GFLOP forward at 64 px), *cheaper* than the \
full-width random TAESD (1.22M, 2.2 GFLOP), so here the "vae" rows come out faster than the "taesd" rows; with the \
real SD VAE it is the other way round (~6x).

{result['table']}

{legend}
"""


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    names = list(CONFIGS)
    if a.only:
        wanted = [n.strip() for n in a.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in CONFIGS]
        if unknown:
            sys.exit(f"bench_guidance: unknown configuration(s) {unknown}; choose from {list(CONFIGS)}")
        names = ["plain"] + [n for n in wanted if n != "plain"]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sg_bench_") as tmp:
        comfy_root, tiny = setup_comfy(Path(tmp) / "base", a.gpu)
        import torch

        if a.threads:
            torch.set_num_threads(a.threads)
        cuda = a.gpu and torch.cuda.is_available()
        if a.gpu and not cuda:
            print("bench_guidance: --gpu given but CUDA is unavailable; measuring on CPU", file=sys.stderr)
        comfy = make_executor()
        setup_s = time.perf_counter() - started
        load_before = os.getloadavg()
        rows = run_all(comfy, tiny, names, a, cuda)
        load_after = os.getloadavg()
        rss_method = PeakRSS().method
        machine = machine_info(comfy_root, cuda)
        pack = pack_info()
    plain = rows[0]["median_s"]
    for r in rows:
        r["ratio_to_plain"] = r["median_s"] / plain
    cmd = command_line(__file__, argv)
    result = {
        "benchmark": "bench_guidance", "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": cmd, "settings": {k: v for k, v in vars(a).items() if k not in ("out", "no_write")},
        "machine": machine, "pack": pack, "rss_method": rss_method, "setup_s": setup_s,
        "loadavg_before": load_before, "loadavg_after": load_after,
        "total_s": time.perf_counter() - started, "rows": rows,
    }
    result["table"] = table(rows, cuda)
    md = markdown(result)
    print(md)
    if not a.no_write:
        write_results(result, md, a.out, RESULTS_DIR / f"{'cuda' if cuda else 'cpu'}_guidance",
                      lambda msg: print(msg, file=sys.stderr))
    return 0


if __name__ == "__main__":
    sys.exit(main())
