"""Quality you can compare: run workflows over content x style pairs, score them with the field's
protocol (ArtFID, FID, LPIPS, LPIPS grey, CFSD; evaluation/, docs/evaluation.md), and set the
pack's rows beside published ones.

Rows (each one runner invocation, ``python -m headless``, over every content x style pair):

- each workflow given with ``--workflows`` (default: style_transfer_fast), as shipped;
- ``plain``: the first workflow with every guidance scale at 0 (``--scale 0``): plain img2img at
  the same denoise, seed and steps;
- ``<loss> alone``: the first workflow with every other loss node's weight at 0 (``--rows``
  includes ``losses``).

Per row: seconds per image (median of the runner's per-pair times, the first pair excluded when
there are more: it pays the model loading) and the runner process's peak RSS, so guidance's cost
stands beside plain sampling on the same machine.

The protocol's images (20 MS-COCO contents x 40 WikiArt styles) are not shipped: StyleID's
repository has them in ``data/cnt`` and ``data/sty`` (https://github.com/jiwoogit/StyleID).

    .venv/bin/python benchmarks/bench_quality.py --content data/cnt --style data/sty --models /path/to/ComfyUI/models
    .venv/bin/python benchmarks/bench_quality.py --standins --content C --style S   # tiny stand-ins, this CPU

``--standins``: the runner's tiny random-weight models (``--tiny``) and seeded random metric
weights (evaluation/standins.py), evaluated at a 128 px shorter side: exercises the pipeline,
the numbers mean nothing. Writes results/quality_<tag>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _common import REPO_ROOT, RESULTS_DIR, command_line, log

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

WHO = "quality"
# Published rows on the same protocol (20 MS-COCO x 40 WikiArt, StyleID's evaluation code).
PUBLISHED = [
    {"method": "StyleID (Chung et al., CVPR 2024)", "ArtFID": 28.80, "FID": 18.13, "LPIPS": 0.5055, "CFSD": None,
     "source": "Chung, Hyun, Heo, 'Style Injection in Diffusion', CVPR 2024, Table 1 (arXiv:2312.09008); "
               "also quoted in the StyleID README"},
]
PUBLISHED_NOTE = (
    "Other methods' rows (e.g. the baselines in StyleID's Table 1) are not copied here: they could not be "
    "checked against the paper from this machine. Add them from the paper with the table number as the source."
)


def loss_nodes(api: dict) -> dict[str, str]:
    """Node id -> class of every Style Guidance loss node with a ``weight`` widget."""
    return {nid: n["class_type"] for nid, n in api.items()
            if n.get("class_type", "").startswith("StyleGuidance")
            and isinstance(n.get("inputs", {}).get("weight"), (int, float))}


def loss_alone_variants(workflow: str, folder: Path) -> list[tuple[str, Path]]:
    """One API workflow per loss node, every other loss's weight set to 0."""
    api_path = REPO_ROOT / "workflows" / "api" / f"{workflow}.json"
    if not api_path.is_file():
        raise SystemExit(f"--rows losses needs workflows/api/{workflow}.json (a shipped workflow name)")
    api = json.loads(api_path.read_text())
    out = []
    losses = loss_nodes(api)
    for keep, cls in losses.items():
        variant = json.loads(json.dumps(api))
        for nid in losses:
            if nid != keep:
                variant[nid]["inputs"]["weight"] = 0.0
        name = cls.removeprefix("StyleGuidance")
        path = folder / f"{workflow}__{name}_alone.json"
        path.write_text(json.dumps(variant))
        out.append((f"{name} alone", path))
    return out


def run_runner(workflow: str, args, out_dir: Path, extra: list[str]) -> dict:
    """One ``python -m headless`` run; its per-pair seconds, wall time and peak RSS (wait4)."""
    cmd = [sys.executable, "-m", "headless", workflow, "--content", args.content, "--style", args.style,
           "--output", str(out_dir), *extra]
    if args.standins:
        cmd.append("--tiny")
    for flag in ("models", "comfyui"):
        if getattr(args, flag):
            cmd += [f"--{flag}", getattr(args, flag)]
    if args.gpu:
        cmd.append("--gpu")
    log(WHO, " ".join(cmd[1:]))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    losses = out_dir / "losses.json"
    if proc.returncode not in (0, 1) or not losses.is_file():
        raise SystemExit(f"runner failed (exit {proc.returncode}):\n{output[-3000:]}")
    pairs = [p for p in json.loads(losses.read_text())["pairs"] if p["status"] == "ok"]
    secs = [p["seconds"] for p in pairs]
    steady = secs[1:] if len(secs) > 1 else secs
    return {"pairs": pairs, "wall_s": wall, "s_per_image": statistics.median(steady) if steady else None,
            "peak_rss_mib": usage.ru_maxrss / 1024, "exit": proc.returncode}


def collect_stylised(run: dict, dest: Path) -> int:
    """Copy each result as ``{content}_stylized_{style}.png`` (the protocol's names) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    n = 0
    for p in run["pairs"]:
        image = next(o for o in p["outputs"] if o.endswith(".png") and not o.endswith(".steps.png"))
        shutil.copyfile(image, dest / f"{Path(p['content']).stem}_stylized_{Path(p['style']).stem}.png")
        n += 1
    return n


def fmt(v, digits: int = 4) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def markdown(result: dict) -> str:
    """The results table: this pack's rows, then the published ones with their sources."""
    lines = [f"# Quality on the ArtFID/StyleID protocol ({result['tag']})", "",
             f"{result['when']} · `{result['command']}` · {result['pairs']} pairs "
             f"({result['contents']} contents x {result['styles']} styles)", ""]
    if result["standins"]:
        lines += ["**Stand-ins**: tiny random-weight diffusion models and random metric weights, evaluated at a "
                  f"{result['short_side']} px shorter side. The pipeline ran end to end; the numbers say nothing "
                  "about quality.", ""]
    lines += ["| row | ArtFID ↓ | FID ↓ | LPIPS ↓ | LPIPS grey ↓ | CFSD ↓ | s / image | peak RSS MiB |",
              "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        s = r["scores"]
        lines.append(f"| {r['row']} | {fmt(s['ArtFID'], 2)} | {fmt(s['FID'], 2)} | {fmt(s['LPIPS'])} | "
                     f"{fmt(s['LPIPS_grey'])} | {fmt(s['CFSD'])} | {fmt(r['s_per_image'], 2)} | "
                     f"{r['peak_rss_mib']:.0f} |")
    lines += ["", "Published (same protocol; not run here):", "",
              "| method | ArtFID ↓ | FID ↓ | LPIPS ↓ | CFSD ↓ | source |", "|---|---|---|---|---|---|"]
    for p in PUBLISHED:
        lines.append(f"| {p['method']} | {fmt(p['ArtFID'], 2)} | {fmt(p['FID'], 2)} | {fmt(p['LPIPS'])} | "
                     f"{fmt(p['CFSD'])} | {p['source']} |")
    lines += ["", PUBLISHED_NOTE, "", "Weights (SHA-256):", ""]
    lines += [f"- {w['role']}: `{Path(w['file']).name}` {w['sha256']}" for w in result["weights"].values()]
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--content", required=True, help="folder of content images (the protocol: StyleID data/cnt)")
    ap.add_argument("--style", required=True, help="folder of style images (the protocol: StyleID data/sty)")
    ap.add_argument("--workflows", nargs="+", default=["style_transfer_fast"], help="shipped workflow names")
    ap.add_argument("--rows", nargs="+", choices=("workflows", "plain", "losses"),
                    default=["workflows", "plain", "losses"], help="which rows to run (default: all)")
    ap.add_argument("--models", help="ComfyUI models folder (diffusion and metric weights)")
    ap.add_argument("--comfyui", help="ComfyUI install to run in-process")
    ap.add_argument("--gpu", action="store_true", help="let the runner and the metrics use the GPU")
    ap.add_argument("--standins", action="store_true", help="tiny stand-in models and metric weights (CPU)")
    ap.add_argument("--work", help="keep the runs' outputs here (default: a temporary folder, removed)")
    ap.add_argument("--out", help="output stem (default: results/quality_<tag>)")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from evaluation.protocol import evaluate_folders, load_networks
    from evaluation.standins import write_standins

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench_quality_"))
    work.mkdir(parents=True, exist_ok=True)
    device = "cuda" if args.gpu else "cpu"
    short_side = 128 if args.standins else 512
    try:
        if args.standins:
            metric_models = write_standins(work / "metric_models")
        else:
            from headless.locate import locate_comfyui

            metric_models = Path(args.models) if args.models else locate_comfyui(args.comfyui) / "models"
        nets = load_networks(metric_models, device)  # fails now, not after the runs, if a file is missing
        plan: list[tuple[str, str, list[str]]] = []
        if "workflows" in args.rows:
            plan += [(wf, wf, []) for wf in args.workflows]
        if "plain" in args.rows:
            plan.append((f"plain img2img ({args.workflows[0]}, scale 0)", args.workflows[0], ["--scale", "0"]))
        if "losses" in args.rows:
            variants = work / "variants"
            variants.mkdir(exist_ok=True)
            plan += [(name, str(path), []) for name, path in loss_alone_variants(args.workflows[0], variants)]
        rows = []
        for i, (row, wf, extra) in enumerate(plan):
            run = run_runner(wf, args, work / f"run{i}", extra)
            stylised = work / f"stylised{i}"
            collect_stylised(run, stylised)
            rep = evaluate_folders(stylised, Path(args.content), Path(args.style), metric_models, device,
                                   nets=nets, fid_method="svd" if args.standins else "sqrtm",
                                   short_side=short_side)
            rows.append({"row": row, "workflow": wf, "scores": rep.scores, "pairs": len(rep.pairs),
                         "s_per_image": run["s_per_image"], "wall_s": run["wall_s"],
                         "peak_rss_mib": run["peak_rss_mib"], "problems": rep.problems})
            log(WHO, f"{row}: " + ", ".join(f"{k} {v:.4g}" for k, v in rep.scores.items())
                + f"; {run['s_per_image']:.2f} s/image; peak RSS {run['peak_rss_mib']:.0f} MiB")
        n_c = len({p.stem for p in Path(args.content).iterdir() if p.is_file()})
        n_s = len({p.stem for p in Path(args.style).iterdir() if p.is_file()})
        tag = ("standins" if args.standins else device)
        result = {"tag": tag, "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                  "command": command_line(__file__, argv), "standins": args.standins, "short_side": short_side,
                  "contents": n_c, "styles": n_s, "pairs": rows[0]["pairs"] if rows else 0, "rows": rows,
                  "published": PUBLISHED, "weights": {k: {"role": w.role, "file": str(w.path), "sha256": w.sha256}
                                                      for k, w in nets.files.items()}}
        md = markdown(result)
        print(md)
        if not args.no_write:
            stem = Path(args.out) if args.out else RESULTS_DIR / f"quality_{tag}"
            stem.parent.mkdir(parents=True, exist_ok=True)
            stem.with_suffix(".md").write_text(md)
            stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
            log(WHO, f"wrote {stem.with_suffix('.md')} and {stem.with_suffix('.json')}")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
