"""The cost of video guidance (Wan 2.1 T2V): stand-in step times on this machine, real-size FLOP floors.

    .venv/bin/python benchmarks/bench_video.py                       # CPU: 64 + 128 px, 5 + 17 frames, both decoders
    .venv/bin/python benchmarks/bench_video.py --sizes 64 --frames 5,17 --vaes lighttae --no-flops --no-write
    .venv/bin/python benchmarks/bench_video.py --gpu --deadline-s 100 --out "$OUT/cuda_video"   # gpu_run.sh's row
    .venv/bin/python benchmarks/bench_video.py --gpu --dry-run --no-write                # the GPU path, tiny, on CPU

Part 1 (stand-ins): each cell (decoder, size, frames) runs in its own process (its peak memory is
its own): ComfyUI in-process with this pack, the Wan 2.1 T2V stand-in (headless.testbed.standins.wan21,
UNETLoader), the guidance decoder (``lighttaew2_1`` at its real configuration, or the Wan 2.1 VAE
stand-in at width 16 instead of 96), an SGTestVideo content clip of F = 1 + 4 (T - 1) frames encoded
to T latent frames, denoise 0.7, cfg 2. Plain is KSampler; guided is StyleGuidanceSampler in x0 mode
with the tests' chain (pixel MSE + Gram on the tiny VGG19 + CLIP on the tiny open_clip) plus
StyleGuidanceTemporalConsistency. Seconds per step (best of --repeats after a warm-up run that
loads the models), the process's peak RSS and its growth during the timed run (CUDA: peak
allocation). The guided - plain difference per frame shows how guidance scales with frames.
Part 2 (--flops, default on): the real-size accounting of ``_video_flops.py`` (shapes only).
Results: ``results/cpu_video.{md,json}`` (``cuda_video`` with --gpu; ``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import _common as C

WHO = "bench_video"
CONFIGS = ("plain", "x0")
VAES = ("lighttae", "wan21")
VAE_LABEL = {"lighttae": "lighttaew2_1 (real config)", "wan21": "Wan 2.1 VAE (width 16 stand-in)"}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vaes", default=",".join(VAES), help=f"comma list of {VAES}")
    p.add_argument("--sizes", default="", help="comma list of N or WxH (default 64,128; --gpu 832x480)")
    p.add_argument("--frames", default="", help="comma list of frame counts 1 + 4k (default 5,17; --gpu 17,33)")
    p.add_argument("--steps", type=int, default=4, help="sampling steps (default 4)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per configuration (default 1)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    p.add_argument("--gpu", action="store_true", help="let ComfyUI use CUDA (falls back to CPU without it)")
    p.add_argument("--deadline-s", type=float, default=0.0, help="skip cells that would start after this (0: none)")
    p.add_argument("--dry-run", action="store_true", help="the same path at a tiny size: 64 px, 5 frames, 2 steps")
    p.add_argument("--no-flops", action="store_true", help="skip the real-size FLOP accounting")
    p.add_argument("--flops-size", default="832x480x33", help="WxHxFRAMES of the accounting (default 832x480x33)")
    p.add_argument("--out", default="", help="results stem (default benchmarks/results/cpu_video or cuda_video)")
    p.add_argument("--no-write", action="store_true", help="print the tables only")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)  # internal: one cell as JSON, or 'flops'
    a = p.parse_args(argv)
    if a.dry_run:  # tiny everything; the accounting too (its code path is size-independent)
        a.sizes, a.frames, a.steps, a.repeats, a.flops_size = "64", "5", 2, 1, "64x64x5"
        a.vaes = a.vaes if a.vaes != ",".join(VAES) else "lighttae"
    a.sizes = a.sizes or ("832x480" if a.gpu else "64,128")
    a.frames = a.frames or ("17,33" if a.gpu else "5,17")
    bad = [f for f in a.frames.split(",") if (int(f) - 1) % 4]
    if bad or set(a.vaes.split(",")) - set(VAES):
        p.error(f"frames must be 1 + 4k (got {bad}); vaes from {VAES}")
    return a


def wh(size: str) -> tuple[int, int]:
    """'64' -> (64, 64); '832x480' -> (832, 480)."""
    w, _, h = size.partition("x")
    return int(w), int(h or w)


def _prompt(models: dict, config: str, vae: str, size: str, frames: int, steps: int, seed: int) -> dict:
    from headless.testbed import family_graphs as F
    from headless.testbed.graphs import link
    from headless.testbed.standins import wan21

    w, h = wh(size)
    g = F.family_graph(wan21.KEY, models, size=h)
    g["vae"] = wan21.vae_node(vae)
    g["content"] = {"class_type": "SGTestVideo", "inputs": {"width": w, "height": h, "seed": 1, "frames": frames,
                                                             "motion": 2}}
    g["temporal"] = {"class_type": "StyleGuidanceTemporalConsistency", "inputs": {
        "content": link("content"), "weight": 1.0, "pool": 1, "fit": "stretch", "losses": link("l3")}}
    samp = F.sampling(wan21.KEY, steps=steps, seed=seed)
    common = {"model": link("model"), "positive": link("pos"), "negative": link("neg"), "latent_image": link("enc")}
    if config == "plain":
        g["out_latent"] = {"class_type": "KSampler", "inputs": {**common, **samp}}
    else:
        g["out_latent"] = {"class_type": "StyleGuidanceSampler", "inputs": {
            **common, "vae": link("vae"), "losses": link("temporal"), **samp, **F.options(mode=config)}}
    # No final decode: it is the same in both configurations and would dilute the per-step figures.
    g["out"] = {"class_type": "PreviewAny", "inputs": {"source": link("out_latent")}}
    return g


def cell(a: argparse.Namespace, vae: str, size: str, frames: int) -> dict:
    """One (decoder, size, frames) cell in this process: load, warm up, time plain then guided."""
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)

    def build(models_dir: Path) -> dict:
        from headless.testbed.standins import suite_models, wan21

        return {**suite_models.build_all(models_dir), **wan21.build_wan21(models_dir)}

    base = Path(tempfile.mkdtemp(prefix="sg_bench_video_"))
    root, models = C.setup_comfy(base, gpu=a.gpu, build_models=build, who=WHO)
    cuda = a.gpu and torch.cuda.is_available()
    comfy = C.make_executor()
    out: dict = {"vae": vae, "size": size, "frames": frames, "device": "cuda" if cuda else "cpu", "configs": {},
                 "machine": C.machine_info(root, cuda)}
    for i, config in enumerate(CONFIGS):
        t0 = C.now()
        comfy.run(_prompt(models, config, vae, size, frames, a.steps, seed=100 + i))  # loads what it needs
        first = C.now() - t0
        runs = [C.timed_run(comfy, _prompt(models, config, vae, size, frames, a.steps, seed=200 + 10 * i + r), cuda)
                for r in range(a.repeats)]
        best = min(runs, key=lambda r: r["wall_s"])
        out["configs"][config] = {"first_run_s": first, "s_per_step": best["wall_s"] / a.steps,
                                  "rss_peak": max(r["rss_peak"] for r in runs),
                                  "rss_growth": max(r["rss_growth"] for r in runs),
                                  **({"cuda_peak": max(r["cuda_peak"] for r in runs)} if cuda else {})}
    out["latent_shape"] = list(comfy.output("enc")["samples"].shape)
    shutil.rmtree(base, ignore_errors=True)  # links to the cached stand-ins only; the cache stays
    return out


def flops_child(a: argparse.Namespace) -> dict:
    """The real-size accounting, with ComfyUI importable (no models built)."""
    import _video_flops as V

    base = Path(tempfile.mkdtemp(prefix="sg_bench_video_flops_"))
    C.setup_comfy(base, gpu=False, build_models=lambda _d: None, who=WHO)
    w, h, f = (int(x) for x in a.flops_size.split("x"))
    t0 = C.now()
    out = V.account(w, h, f)
    out["seconds"] = C.now() - t0
    shutil.rmtree(base, ignore_errors=True)
    return out


def _run_child(a: argparse.Namespace, spec: str) -> dict | None:
    """Run one child (cell spec 'vae:size:frames' or 'flops'); its JSON, or None on failure."""
    cmd = [sys.executable, __file__, "--child", spec, "--steps", str(a.steps), "--repeats", str(a.repeats),
           "--threads", str(a.threads), "--flops-size", a.flops_size] + (["--gpu"] if a.gpu else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        sys.stderr.write(proc.stderr[-4000:])
        C.log(WHO, f"{spec}: failed (exit {proc.returncode})")
        return None
    return json.loads(line[len("RESULT "):])


def markdown(a: argparse.Namespace, rows: list[dict], skipped: list[str], flops: dict | None) -> str:
    """Stand-in table, per-frame scaling, and the real-size accounting."""
    dev = rows[0]["device"] if rows else ("cuda" if a.gpu else "cpu")
    mem = "CUDA peak alloc" if dev == "cuda" else "peak RSS"
    md = [f"# Video guidance cost, Wan 2.1 T2V stand-in, {dev} ({a.steps} steps, x0, MSE + Gram + CLIP + temporal)", "",
          f"| guidance decoder | size | frames (latent) | plain s/step | guided s/step | guided/plain | "
          f"(guided - plain) per frame, s/step | {mem} plain / guided (MiB) | RSS growth plain / guided (MiB) |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p, g = r["configs"]["plain"], r["configs"]["x0"]
        key = "cuda_peak" if dev == "cuda" else "rss_peak"
        md.append(f"| {VAE_LABEL[r['vae']]} | {r['size']} | {r['frames']} ({r['latent_shape'][2]}) | "
                  f"{p['s_per_step']:.3f} | {g['s_per_step']:.3f} | {g['s_per_step'] / p['s_per_step']:.2f}x | "
                  f"{(g['s_per_step'] - p['s_per_step']) / r['frames']:.4f} | {C.mib(p[key])} / {C.mib(g[key])} | "
                  f"{C.mib(p['rss_growth'])} / {C.mib(g['rss_growth'])} |")
    slopes = []
    for r in rows:  # the marginal cost of a frame: two frame counts, same decoder and size
        for s in rows:
            if (s["vae"], s["size"]) == (r["vae"], r["size"]) and s["frames"] > r["frames"]:
                d = [(x["configs"]["x0"]["s_per_step"] - x["configs"]["plain"]["s_per_step"]) for x in (r, s)]
                slopes.append(f"- {VAE_LABEL[r['vae']]}, {r['size']}: guidance extra {d[0]:.3f} -> {d[1]:.3f} s/step "
                              f"from {r['frames']} to {s['frames']} frames, {(d[1] - d[0]) / (s['frames'] - r['frames']):.4f} "
                              f"s/step per added frame")
    if slopes:
        md += ["", "Marginal cost of a frame (guided - plain, per step):", "", *slopes]
    if skipped:
        md += ["", "Skipped (deadline or failure): " + ", ".join(skipped)]
    md += ["", "Stand-ins: the Wan model is ~0.9M parameters (width 128, one block) and the loss networks are the "
           "tests' tiny VGG19/open_clip, so plain is nearly free and the ratios overstate a real model's; "
           "lighttaew2_1 is at its real configuration (9.8M decoder parameters), the Wan VAE at width 16 (real: 96). "
           "RSS growth is the timed run's peak over the RSS at its start (plain runs first). One run per cell on a "
           "shared machine: differences of a few tenths of a second are noise."]
    if flops:
        import _video_flops as V

        md += ["", *V.markdown(flops)]
        md += ["", f"Counted in {flops['seconds']:.0f} s on shapes only (FakeTensorMode). Matmul/conv/attention FLOPs; "
               "backward is to the input only (weights frozen). Floor ratio = (plain + extra) / plain per guided "
               "evaluation; x0 mode takes no model backward. Saved activations: the distinct storages the decoder's "
               "forward saves for its backward (bf16), held until the gradient is taken: chunked decoding keeps one "
               "chunk's worth at a time."]
    return "\n".join(md) + "\n"


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    if a.child:
        if a.child == "flops":
            res = flops_child(a)
        else:
            vae, size, frames = a.child.split(":")
            res = cell(a, vae, size, int(frames))
        print("RESULT " + json.dumps(res), flush=True)
        return 0
    t0 = C.now()
    rows, skipped = [], []
    # Size outermost: a deadline then drops the largest size first, not one decoder entirely.
    for size in a.sizes.split(","):
        for vae in a.vaes.split(","):
            for frames in (int(f) for f in a.frames.split(",")):
                spec = f"{vae}:{size}:{frames}"
                if a.deadline_s and C.now() - t0 > a.deadline_s:
                    skipped.append(spec + " (deadline)")
                    continue
                C.log(WHO, f"{spec}: running in a child process ({C.now() - t0:.0f} s in)")
                r = _run_child(a, spec)
                (rows.append(r) if r else skipped.append(spec + " (failed)"))
    flops = None
    if not a.no_flops:
        C.log(WHO, f"FLOP accounting at {a.flops_size} ({C.now() - t0:.0f} s in)")
        flops = _run_child(a, "flops")
    text = markdown(a, rows, skipped, flops)
    print(text)
    if not a.no_write:
        result = {"args": vars(a), "rows": rows, "skipped": skipped, "flops": flops,
                  "command": C.command_line(__file__, argv)}
        default = C.RESULTS_DIR / ("cuda_video" if a.gpu else "cpu_video")
        C.write_results(result, text, a.out, default, lambda t: C.log(WHO, t))
    failed = any(s.endswith("(failed)") for s in skipped) or (not a.no_flops and flops is None)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
