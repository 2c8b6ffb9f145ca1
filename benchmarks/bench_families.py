"""Step time and peak memory of guidance per model family, on the tiny stand-ins (CPU).

    .venv/bin/python benchmarks/bench_families.py                          # every family, 64 px, 4 steps
    .venv/bin/python benchmarks/bench_families.py --families sd3,flux --size 128 --no-write
    .venv/bin/python benchmarks/bench_families.py --families z_image,flux2,chroma,lumina2,hidream \
        --out benchmarks/results/cpu_families_dit                          # the newer DiTs' tiny stand-ins
    .venv/bin/python benchmarks/bench_families.py --families hunyuan_image --repeats 2 --threads 2 \
        --out benchmarks/results/cpu_families_hunyuan_image

Each family runs in its own process (so its peak memory is its own): ComfyUI in-process with
this pack, the family's stand-in loaded by ComfyUI's own loader (headless.testbed.standins;
SD1.5 is headless.testbed.standins' UNet), its TAESD-family decoder, and the tests' cheap loss chain
(pixel MSE + Gram on VGG19 + CLIP on the tiny open_clip). Per family and configuration (plain
KSampler, guided x0, guided xt): seconds per sampling step (after a warm-up run that loads the
models) and the process's peak resident memory. Stand-in sizes are what ComfyUI's detection
forces (Flux: one 3072-wide double block, 404M parameters), not the real models': the figures
compare the families' overheads, they are not real-size memory needs (docs/families.md has the
real-size plan for a GPU).
Results: ``results/cpu_families.{md,json}`` (``--out`` to change, ``--no-write`` for stdout only).
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

WHO = "bench_families"
FAMILIES = ("sd15", "sd2v", "sdxl", "sd3", "flux")
# The newer DiTs (tiny, built through ComfyUI's classes; standin_dit_nodes.py says why): --families to run them.
DIT_FAMILIES = ("z_image", "flux2", "chroma", "lumina2", "hidream", "omnigen2", "hunyuan_image")
CONFIGS = ("plain", "x0", "xt")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", default=",".join(FAMILIES), help=f"comma list of {FAMILIES + DIT_FAMILIES}")
    p.add_argument("--size", type=int, default=64, help="image side in px (default 64)")
    p.add_argument("--steps", type=int, default=4, help="sampling steps (default 4)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per configuration (default 1)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    p.add_argument("--out", default="", help="results stem (default benchmarks/results/cpu_families)")
    p.add_argument("--no-write", action="store_true", help="print the table only")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)  # internal: run one family, print JSON
    a = p.parse_args(argv)
    unknown = set(a.families.split(",")) - set(FAMILIES + DIT_FAMILIES)
    if unknown:
        p.error(f"unknown families {sorted(unknown)}")
    return a


def _prompt(key: str, models: dict, config: str, size: int, steps: int, seed: int) -> dict:
    from headless.testbed import family_graphs as F
    from headless.testbed.graphs import link

    g = F.family_graph(key, models, size=size)
    samp = F.sampling(key, steps=steps, seed=seed)
    if config == "plain":
        g["out_latent"] = {"class_type": "KSampler", "inputs": {
            "model": link("model"), "positive": link("pos"), "negative": link("neg"), "latent_image": link("enc"), **samp}}
    else:
        g["out_latent"] = {"class_type": "StyleGuidanceSampler", "inputs": {
            "model": link("model"), "positive": link("pos"), "negative": link("neg"), "latent_image": link("enc"),
            "vae": link("vae"), "losses": link("l3"), **samp, **F.options(mode=config)}}
    g["dec"] = {"class_type": "VAEDecode", "inputs": {"samples": link("out_latent"), "vae": link("vae")}}
    g["out"] = {"class_type": "PreviewImage", "inputs": {"images": link("dec")}}
    return g


def child(a: argparse.Namespace) -> dict:
    """One family in this process: load, warm up, time each configuration."""
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    key = a.child

    def build(models_dir: Path) -> dict:
        from headless.testbed.standins import suite_models

        names = suite_models.build_all(models_dir)
        if key in DIT_FAMILIES:
            names.update(suite_models.build_dit_families(models_dir, keys=(key,)))
        else:
            names.update(suite_models.build_families(models_dir, keys=() if key == "sd15" else (key,)))
        return names

    base = Path(tempfile.mkdtemp(prefix="sg_bench_families_"))
    _root, models = C.setup_comfy(base, gpu=False, build_models=build, who=WHO)
    comfy = C.make_executor()
    out: dict = {"family": key, "configs": {}}
    for i, config in enumerate(CONFIGS):
        with C.PeakRSS() as first_mem:
            t0 = C.now()
            comfy.run(_prompt(key, models, config, a.size, a.steps, seed=100 + i))  # loads what it needs
            first = C.now() - t0
        runs = [C.timed_run(comfy, _prompt(key, models, config, a.size, a.steps, seed=200 + 10 * i + r), cuda=False)
                for r in range(a.repeats)]
        best = min(r["wall_s"] for r in runs)
        out["configs"][config] = {"first_run_s": first, "s_per_step": best / a.steps,
                                  "peak_rss": max([first_mem.peak] + [r["rss_peak"] for r in runs])}
    patcher = comfy.output("model")
    out["params"] = sum(p.numel() for p in patcher.model.diffusion_model.parameters())
    out["comfy_class"] = type(patcher.model.model_config).__name__
    shutil.rmtree(base, ignore_errors=True)  # links to the cached stand-ins only; the cache stays
    return out


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    if a.child:
        print("RESULT " + json.dumps(child(a)), flush=True)
        return 0
    rows = []
    for key in a.families.split(","):
        C.log(WHO, f"{key}: running in a child process")
        cmd = [sys.executable, __file__, "--child", key, "--size", str(a.size), "--steps", str(a.steps),
               "--repeats", str(a.repeats), "--threads", str(a.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            sys.stderr.write(proc.stderr[-4000:])
            C.log(WHO, f"{key}: failed (exit {proc.returncode})")
            return 1
        rows.append(json.loads(line[len("RESULT "):]))
    md = [f"# Guidance per model family, tiny stand-ins, CPU ({a.size} px, {a.steps} steps, cheap loss chain)", "",
          "| family | ComfyUI class | params | plain s/step | x0 s/step | xt s/step | peak RSS plain / x0 / xt (MiB) |",
          "|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r["configs"]
        md.append(f"| {r['family']} | {r['comfy_class']} | {r['params'] / 1e6:.1f}M | "
                  + " | ".join(f"{c[k]['s_per_step']:.2f}" for k in CONFIGS) + " | "
                  + " / ".join(C.mib(c[k]["peak_rss"]) for k in CONFIGS) + " |")
    md += ["", "Peak RSS is the whole process (ComfyUI, the loss networks, the model in fp32). Step time is the best "
           "of --repeats runs after a warm-up run; x0/xt include the decoder and the loss networks' forward+backward."]
    text = "\n".join(md) + "\n"
    print(text)
    if not a.no_write:
        result = {"args": vars(a), "rows": rows, "command": C.command_line(__file__, argv)}
        C.write_results(result, text, a.out, C.RESULTS_DIR / "cpu_families", lambda t: C.log(WHO, t))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
