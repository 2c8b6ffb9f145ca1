"""Plots of each loss term over the steps of a guided run, for the help pages and the README.

    .venv/bin/python scripts/gen_doc_pictures.py --run               # make the stand-in runs, then plot
    .venv/bin/python scripts/gen_doc_pictures.py RUN.steps.json      # plot a run the runner already made

A run's per-step record is what the headless runner writes next to each result,
``<name>.steps.json``: ``{"event": "style_guidance.step", "events": [...]}``, one event per
guided model evaluation, as the guidance engine emits it (``sampler.engine.StepReport.as_event``)::

    {"node": "17", "step": 3, "fraction": 0.15, "sigma": 4.2, "total": 0.81,
     "terms": {"pixel_mse_content": {"value": 0.021, "weight": 1.0, "share": 0.2}, ...},
     "zero_gradient": ["range"]}

(a bare list of events works too). For every term whose kind has a node (``TERM_NODES``) this
writes ``web/docs/<NodeId>/steps.svg``: the term's unweighted value (left axis) and its share of
the guidance direction (right axis) over the fraction of the sampling steps done.
``scripts/gen_docs.py`` then shows the plot on that node's help pages. The SVG is drawn here,
without a plotting library, so the script runs wherever the pack does.

``--run`` makes the runs the committed pictures come from, on the random-weight stand-in models
(``headless.testbed.standins``), 128 px, 20 steps: ``style_transfer_fast`` as shipped (its steps,
drawn by the runner's own plot as in ``<name>.steps.png``, become
``docs/steps_style_transfer_fast.png`` for the README), the same chain with every other loss node added (Range, the model-feature ZeCon and
Attention Distillation), whose ``.steps.json`` gives every picture loss node its plot, and ``style_transfer_wan``
on the Wan 2.1 stand-in (the shipped clip, 5 frames at 64 px), for Temporal Consistency, which needs frames.
``--only RUN`` makes one of them. Stand-ins show the
mechanics (each term's value and share over the steps), not the figures of a real picture;
the pictures say so.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "web" / "docs"
README_PLOT = ROOT / "docs" / "steps_style_transfer_fast.png"

sys.path.insert(0, str(ROOT))
from headless.protocol import TERM_KINDS, current_term_name  # noqa: E402  (the runner's copy of protocol.py)

# Loss kind (the term's name before any '#n') -> the node that makes that term (one table: protocol.py).
TERM_NODES = {kind: node for kind, (node, _label) in TERM_KINDS.items()}
STAND_IN_NOTE = "random-weight stand-in models: the mechanics, not a real picture's figures"
W, H = 640, 330
LEFT, RIGHT, TOP, BOTTOM = 70, 60, 56, 62
VALUE_COLOUR, SHARE_COLOUR = "#7b3fbf", "#e0762b"


def load_run(path: Path) -> list[dict]:
    """The events of a runner's ``.steps.json`` (or a bare list of events), in order."""
    data = json.loads(path.read_text(encoding="utf-8"))
    events = data if isinstance(data, list) else data.get("events", [])
    if not events:
        raise ValueError(f"{path}: no step events")
    for i, e in enumerate(events):
        terms = e.get("terms") if isinstance(e, dict) else None
        if isinstance(terms, dict):  # an old run's kinds (protocol.LEGACY_TERM_KINDS) read as today's
            e["terms"] = terms = {current_term_name(k): v for k, v in terms.items()}
        if "fraction" not in e or not isinstance(terms, dict) or \
                not all(isinstance(t, dict) and "value" in t for t in terms.values()):
            raise ValueError(f"{path}: event {i} needs 'fraction' and 'terms' {{name: {{value, weight, share}}}} "
                             "(the format of sampler.engine.StepReport.as_event)")
    return events


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [lo, hi]."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    if ticks[-1] < hi:
        ticks.append(ticks[-1] + step)
    return ticks


def _fmt(v: float) -> str:
    return f"{v:.3g}" if v != 0 else "0"


def _points(events: list[dict], name: str, what: str) -> list[tuple[float, float]]:
    out = []
    for e in events:
        t = e["terms"].get(name)
        y = t.get(what) if isinstance(t, dict) else None
        if isinstance(y, (int, float)) and not isinstance(y, bool) and math.isfinite(y):
            out.append((float(e["fraction"]), float(y)))
    return sorted(out)


def plot_term(name: str, events: list[dict], title: str = "") -> str:
    """An SVG line chart of one term over the steps: its value and its share of the guidance."""
    points = _points(events, name, "value")
    if not points:
        raise ValueError(f"no finite values for {name}")
    shares = _points(events, name, "share")
    ys = [y for _, y in points]
    ticks = nice_ticks(min(0.0, min(ys)), max(ys))
    y0, y1 = ticks[0], ticks[-1]
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + x * pw

    def py(y: float, lo: float = y0, hi: float = y1) -> float:
        return TOP + ph - (y - lo) / ((hi - lo) or 1.0) * ph

    heading = f"{name} over the steps" + (f" — {title}" if title else "")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="Helvetica, Arial, sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="#ffffff"/>',
           f'<text x="{LEFT}" y="22" font-size="14" font-weight="bold">{escape(heading)}</text>']
    for t in ticks:
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{LEFT - 6}" y="{py(t) + 4:.1f}" text-anchor="end" fill="{VALUE_COLOUR}">{_fmt(t)}</text>')
    for i in range(6):
        x = i / 5
        out.append(f'<text x="{px(x):.1f}" y="{TOP + ph + 16}" text-anchor="middle">{x:.0%}</text>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{TOP + ph + 34}" text-anchor="middle">fraction of the sampling steps done'
               '</text>')
    out.append(f'<text x="{LEFT}" y="{H - 8}" font-style="italic" fill="#555">{escape("From " + STAND_IN_NOTE + ".")}'
               '</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    line = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
    out.append(f'<polyline class="value" points="{line}" fill="none" stroke="{VALUE_COLOUR}" stroke-width="2.5"/>')
    legend = [(VALUE_COLOUR, f"{name} (unweighted value, left)", "")]
    if shares:
        for t in (0.0, 0.5, 1.0):
            out.append(f'<text x="{W - RIGHT + 6}" y="{py(t, 0, 1) + 4:.1f}" fill="{SHARE_COLOUR}">{t:.0%}</text>')
        line = " ".join(f"{px(x):.1f},{py(min(max(v, 0.0), 1.0), 0, 1):.1f}" for x, v in shares)
        out.append(f'<polyline class="share" points="{line}" fill="none" stroke="{SHARE_COLOUR}" '
                   'stroke-width="2" stroke-dasharray="6 4"/>')
        legend.append((SHARE_COLOUR, "share of the guidance direction (right)", 'stroke-dasharray="6 4"'))
    x = LEFT
    for colour, label, dash in legend:  # one row between the title and the plot
        y = TOP - 12
        out.append(f'<line x1="{x}" x2="{x + 24}" y1="{y - 4}" y2="{y - 4}" stroke="{colour}" stroke-width="2.5" {dash}/>')
        out.append(f'<text x="{x + 30}" y="{y}">{escape(label)}</text>')
        x += 50 + 6.2 * len(label)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_plots(run: Path, out: Path = DOCS, title: str = "", nodes: set[str] | None = None) -> list[Path]:
    """One ``<NodeId>/steps.svg`` under ``out`` per loss node with a term in the run (of ``nodes`` if given)."""
    events = load_run(run)
    names = []
    for e in events:  # chain order, as the engine reports the terms
        names += [k for k in e["terms"] if k not in names]
    written = []
    for name in names:
        node = TERM_NODES.get(name.split("#")[0])
        if node is None:
            print(f"note: no node for term {name!r} (add its kind to TERM_NODES)")
            continue
        if nodes is not None and node not in nodes:
            continue
        # One picture per node: the chain's first term of that kind.
        dest = out / node / "steps.svg"
        if dest in written:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(plot_term(name, events, title), encoding="utf-8")
        written.append(dest)
    return written


# ------------------------------------------------------------------ the stand-in runs
RUN_SIZE, RUN_STEPS = 128, 20
CONTENT = ROOT / "workflows" / "images" / "style_guidance_content.jpg"
CLIP = ROOT / "workflows" / "images" / "style_guidance_content_clip.mp4"
# The video run (style_transfer_wan, for the terms only video has): 5 frames at 64 px, as the runner's tiny mode.
VIDEO_RUN, VIDEO_STEPS = "style_transfer_wan", 12
RUNS = ("style_transfer_fast", "every_loss_node", VIDEO_RUN)
STYLE = ROOT / "workflows" / "images" / "style_guidance_style.jpg"


def _link(node: str, index: int = 0) -> list:
    return [node, index]


def _node(cls: str, title: str, **inputs) -> dict:
    return {"inputs": inputs, "class_type": cls, "_meta": {"title": title}}


def every_loss_node(api: dict) -> dict:
    """``style_transfer_fast``'s prompt with the loss nodes it lacks appended to its chain.

    Range after the chain's last term, then ZeCon on the UNet encoder (content latent) and
    Attention Distillation (the style image, VAE-encoded): every loss node in one run, so each
    node's plot shows its term among all the others.
    """
    api = copy.deepcopy(api)
    by_class = {n["class_type"]: nid for nid, n in api.items()}
    sampler, measure = by_class["StyleGuidanceSampler"], by_class["StyleGuidanceMeasure"]
    ckpt, positive = api[sampler]["inputs"]["model"][0], api[sampler]["inputs"]["positive"]
    content_latent = api[sampler]["inputs"]["latent_image"]
    style_image = next(nid for nid, n in api.items() if n["_meta"]["title"].strip().lower() == "style image")
    last = api[sampler]["inputs"]["losses"]
    new = {
        "100": _node("StyleGuidanceRange", "Range", weight=0.5, losses=last),
        "101": _node("StyleGuidanceModelZeCon", "ZeCon (model features)", content=content_latent, weight=1.0,
                     layers="all levels (ZeCon: input blocks 0,2,5,8,11 on SD1.5)", num_patches=256, tau=0.07,
                     seed=0, losses=_link("100")),
        "102": _node("ImageScale", "Style at generation size", image=_link(style_image), upscale_method="lanczos",
                     width=RUN_SIZE, height=RUN_SIZE, crop="center"),
        "103": _node("VAEEncode", "Style latent", pixels=_link("102"), vae=_link(ckpt, 2)),
        "104": _node("StyleGuidanceAttentionDistillation", "Attention Distillation", style=_link("103"), weight=1.0,
                     layers="decoder, last 6 self-attentions (paper)", seed=0, losses=_link("101")),
    }
    api.update(new)
    api[sampler]["inputs"]["losses"] = _link("104")
    api[measure]["inputs"].update(losses=_link("104"), model=_link(ckpt), positive=positive, latent=_link(sampler))
    return api


def make_runs(work: Path, names: tuple[str, ...] = RUNS) -> dict[str, Path]:
    """Run the stand-in prompts ``names`` through the headless runner; {run name: its .steps.json}."""
    from headless.locate import locate_comfyui
    from headless.testbed import base as comfy_host
    from headless.testbed.standins import install as tm

    # Building the TAESD stand-ins needs ComfyUI's modules (CPU settings, a private base folder).
    comfy_host.configure_comfy(locate_comfyui(), work / "comfy_base")

    fast = json.loads((ROOT / "workflows" / "api" / "style_transfer_fast.json").read_text(encoding="utf-8"))
    video = json.loads((ROOT / "workflows" / "api" / f"{VIDEO_RUN}.json").read_text(encoding="utf-8"))
    prompts = {"style_transfer_fast": fast, "every_loss_node": every_loss_node(fast), VIDEO_RUN: video}
    models = work / "models"
    found = {}
    for name in names:
        api = prompts[name]
        # The runner's tiny mode caps sampling at 4 steps; here the same stand-ins and shrink, more steps.
        steps = VIDEO_STEPS if name == VIDEO_RUN else RUN_STEPS
        for nid, changes in tm.tiny_overrides(api, size=RUN_SIZE, steps=steps).items():
            api[nid]["inputs"].update(changes)
        if name != VIDEO_RUN:  # tiny mode installs its own
            tm.install_for_workflow(models, api)
        prompt = work / f"{name}.json"
        prompt.write_text(json.dumps(api, indent=1), encoding="utf-8")
        out = work / "out" / name
        if name == VIDEO_RUN:  # umT5 has no small file: tiny mode's seeded conditioning, and its stand-ins
            cmd = [sys.executable, "-m", "headless", str(prompt), "--content", str(CLIP), "--style", str(STYLE),
                   "--tiny", "--output", str(out)]
        else:
            cmd = [sys.executable, "-m", "headless", str(prompt), "--content", str(CONTENT), "--style", str(STYLE),
                   "--models", str(models), "--real", "--output", str(out)]
        print("running:", " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "STYLE_GUIDANCE_TINY_STEPS": str(VIDEO_STEPS)})
        steps = sorted(out.glob("*.steps.json"))
        if len(steps) != 1:
            raise RuntimeError(f"{name}: expected one .steps.json in {out}, found {[p.name for p in steps]}")
        found[name] = steps[0]
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, nargs="?", help="a runner's <name>.steps.json")
    ap.add_argument("--run", dest="make", action="store_true",
                    help="make the stand-in runs first (style_transfer_fast, every loss node, style_transfer_wan; minutes on a CPU)")
    ap.add_argument("--keep", type=Path, help="with --run: keep the runs' files in this folder")
    ap.add_argument("--only", choices=RUNS, action="append",
                    help="with --run: make only this run (repeatable) and write only its pictures")
    ap.add_argument("--out", type=Path, default=DOCS, help="folder of the help pages (default web/docs)")
    ap.add_argument("--title", default="", help="a title for the plots")
    ap.add_argument("--node", action="append", help="only this node's plot (repeatable; default: every node in the run)")
    args = ap.parse_args()
    if args.make == (args.run is not None):
        ap.error("give a .steps.json or --run (not both)")
    if args.run is not None:
        for path in write_plots(args.run, args.out, args.title, set(args.node) if args.node else None):
            print("wrote", path)
    else:
        work = args.keep or Path(tempfile.mkdtemp(prefix="sg_doc_runs_"))
        work.mkdir(parents=True, exist_ok=True)
        try:
            runs = make_runs(work, tuple(args.only or RUNS))
            if "every_loss_node" in runs:
                title = f"stand-ins, {RUN_SIZE} px, {RUN_STEPS} steps"
                for path in write_plots(runs["every_loss_node"], args.out, title):
                    print("wrote", path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
            if VIDEO_RUN in runs:  # only the terms every_loss_node cannot show (a single picture has no frames)
                title = f"{VIDEO_RUN} on stand-ins, 5 frames, 64 px, {VIDEO_STEPS} steps"
                for path in write_plots(runs[VIDEO_RUN], args.out, title, {TERM_NODES["temporal_consistency"]}):
                    print("wrote", path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
            if "style_transfer_fast" in runs:
                # The runner's own plot (headless.plots), titled so the picture says what it comes from.
                from headless.plots import plot_steps

                png = plot_steps(load_run(runs["style_transfer_fast"]),
                                 f"style_transfer_fast on random-weight stand-ins ({RUN_SIZE} px, {RUN_STEPS} steps)")
                if png is None:
                    raise RuntimeError("the README plot needs matplotlib (pip install matplotlib)")
                README_PLOT.write_bytes(png)
                print("wrote", README_PLOT.relative_to(ROOT))
        finally:
            if args.keep is None:
                shutil.rmtree(work, ignore_errors=True)
    print("then: .venv/bin/python scripts/gen_docs.py   (shows the plots on the help pages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
