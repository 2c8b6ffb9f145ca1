"""Guidance at the step counts of distilled models (4 and 8 steps), twin-scored, on the tiny stand-ins (CPU).

    .venv/bin/python benchmarks/bench_few_step.py                        # flux and sd3, 4 and 8 steps, 2 seeds
    .venv/bin/python benchmarks/bench_few_step.py --families flux --seeds 1 --no-write
    .venv/bin/python benchmarks/bench_few_step.py --families z_image --sampler res_multistep --out benchmarks/results/cpu_few_step_z_image_res_multistep

Few-step models (Z-Image Turbo about 8 steps at cfg 1, Flux.2 Klein and Lightning LoRAs 4) give
guidance very few evaluations: with the shipped window (the first 70 % of the steps) a 4-step run
is guided at steps 0, 1 and 2 only. For each family and step count, the same seed runs plain and
guided under several settings; each result is scored by the twin networks (same architectures,
other seeds: not the networks that guided) and by pixel MSE, and the table gives guided / plain
for the weighted total and for each term (below 1: guidance moved the result toward the targets).
Settings: the shipped window 0-0.7, the whole schedule 0-1, recurrence 2 over the first half, and
a doubled scale. The stand-ins are not distilled models: the figures compare the settings'
mechanics at these step counts, not picture quality.
Results: ``results/cpu_few_step.{md,json}`` (``--out`` to change, ``--no-write`` for stdout only).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import _common as C

WHO = "bench_few_step"
FAMILIES = ("flux", "sd3")
SETTINGS: dict[str, dict] = {
    "window 0-0.7": {"end_percent": 0.7},
    "window 0-1": {"end_percent": 1.0},
    "0-0.7 + recurrence 2 in 0-0.5": {"end_percent": 0.7, "recurrence": 2, "recurrence_start_percent": 0.0,
                                      "recurrence_end_percent": 0.5},
    "0-0.7, scale x2": {"end_percent": 0.7, "scale_factor": 2.0},
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", default=",".join(FAMILIES), help="comma list of stand-in family keys")
    p.add_argument("--steps", default="4,8", help="step counts (default 4,8)")
    p.add_argument("--seeds", type=int, default=2, help="seeds per cell (default 2)")
    p.add_argument("--sampler", default="euler", help="sampler name (default euler; Z-Image Turbo's template: res_multistep)")
    p.add_argument("--size", type=int, default=64, help="image side in px (default 64)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    p.add_argument("--out", default="", help="results stem (default benchmarks/results/cpu_few_step)")
    p.add_argument("--no-write", action="store_true", help="print the table only")
    return p.parse_args(argv)


def run_cell(comfy, models: dict, key: str, steps: int, setting: dict, seed: int, size: int,
             sampler: str = "euler") -> dict:
    """guided / plain twin scores of one run pair, and the guided evaluations it made."""
    from headless.testbed import family_graphs as F

    opts = {k: v for k, v in setting.items() if k != "scale_factor"}
    opts = F.options(**opts, scale=F.SCALE * setting.get("scale_factor", 1.0))
    g = F.family_graph(key, models, size=size)
    samp = F.sampling(key, steps=steps, seed=seed, denoise=1.0, sampler_name=sampler)
    F.add_plain_and_guided(g, "sampler", opts, samp)
    t0 = C.now()
    result = comfy.run(g)
    seconds = C.now() - t0
    plain, guided = F.scores(comfy, "plain"), F.scores(comfy, "guided")
    evaluations = sum(1 for event, data in result.messages if event == "style_guidance.step" and data["node"] == "guided")
    return {"ratios": {t: guided[t] / plain[t] for t in ("total", *F.TWIN_TERMS)}, "guided_evaluations": evaluations,
            "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    keys = a.families.split(",")
    step_counts = [int(s) for s in a.steps.split(",")]

    def build(models_dir: Path) -> dict:
        from headless.testbed.standins import suite_models

        names = suite_models.build_all(models_dir)
        names.update(suite_models.build_families(models_dir, keys=tuple(keys)))
        return names

    base = Path(tempfile.mkdtemp(prefix="sg_bench_few_step_"))
    _root, models = C.setup_comfy(base, gpu=False, build_models=build, who=WHO)
    comfy = C.make_executor()
    rows = []
    for key in keys:
        for steps in step_counts:
            for name, setting in SETTINGS.items():
                cells = [run_cell(comfy, models, key, steps, setting, 3 + 10 * s, a.size, a.sampler)
                         for s in range(a.seeds)]
                mean = {t: statistics.fmean(c["ratios"][t] for c in cells) for t in cells[0]["ratios"]}
                row = {"family": key, "steps": steps, "setting": name, "ratios": mean,
                       "guided_evaluations": cells[0]["guided_evaluations"],
                       "seconds_per_pair": statistics.fmean(c["seconds"] for c in cells), "cells": cells}
                rows.append(row)
                C.log(WHO, f"{key} {steps} steps {name:32s} total {mean['total']:.3f} "
                      + " ".join(f"{t} {v:.3f}" for t, v in mean.items() if t != "total")
                      + f" ({row['guided_evaluations']} guided evaluations)")
    terms = [t for t in rows[0]["ratios"] if t != "total"]
    md = [f"# Guidance at few steps, tiny stand-ins, CPU ({a.size} px, denoise 1, {a.sampler}, {a.seeds} seed(s) per cell)",
          "",
          "guided / plain, scored by the twin networks and pixel MSE (below 1: closer to the targets).", "",
          "| family | steps | setting | guided evaluations | total | " + " | ".join(terms) + " | s per plain+guided pair |",
          "|---|---:|---|---:|---:|" + "---:|" * len(terms) + "---:|"]
    for r in rows:
        md.append(f"| {r['family']} | {r['steps']} | {r['setting']} | {r['guided_evaluations']} | "
                  f"{r['ratios']['total']:.3f} | " + " | ".join(f"{r['ratios'][t]:.3f}" for t in terms)
                  + f" | {r['seconds_per_pair']:.1f} |")
    text = "\n".join(md) + "\n"
    print(text)
    if not a.no_write:
        result = {"args": vars(a), "rows": rows, "command": C.command_line(__file__, argv),
                  "machine": C.machine_info(_root, False)}
        C.write_results(result, text, a.out, C.RESULTS_DIR / "cpu_few_step", lambda t: C.log(WHO, t))
    return 0


if __name__ == "__main__":
    sys.exit(main())
