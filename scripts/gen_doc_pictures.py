"""Plot each loss term's value over the steps of a guided run, for the loss nodes' help pages.

    .venv/bin/python scripts/gen_doc_pictures.py RUN.json [--out web/docs]

RUN.json holds the per-step values of one guided sampling run, as the guidance engine records
them (``sampler.engine.StepRecord``, one per guided model evaluation)::

    {"steps": [{"fraction": 0.05, "sigma": 12.1, "total": 3.2,
                "terms": {"content_mse": 0.021, "zecon": 4.81, "gram_style#2": 1e-06}}, ...],
     "weights": {"content_mse": 1.0, "zecon": 0.5, "gram_style#2": 1.0},      # optional
     "title": "style_transfer_fast, SD1.5, 20 steps"}                          # optional

(a bare list of steps works too). For every term whose kind has a node (``TERM_NODES``) it
writes ``web/docs/<NodeId>/steps.svg``: the term's unweighted value over the fraction of steps
done and, when the weights are known, its share of the weighted total. ``scripts/gen_docs.py``
then shows the plot on that node's help pages. The SVG is written here, without a plotting
library, so the script runs wherever the pack does.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "web" / "docs"

# Loss kind (the term's name before any '#n') -> the node that makes that term.
TERM_NODES = {
    "content_mse": "StyleGuidanceContentMSE",
    "vgg_content": "StyleGuidanceVGGContent",
    "zecon": "StyleGuidanceZeCon",
    "clip_style": "StyleGuidanceCLIPStyle",
    "gram_style": "StyleGuidanceGramStyle",
}
W, H = 640, 320
LEFT, RIGHT, TOP, BOTTOM = 70, 60, 56, 46
VALUE_COLOUR, SHARE_COLOUR = "#7b3fbf", "#e0762b"


def load_run(path: Path) -> tuple[list[dict], dict[str, float], str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    steps = data if isinstance(data, list) else data.get("steps", [])
    weights = {} if isinstance(data, list) else dict(data.get("weights") or {})
    title = "" if isinstance(data, list) else str(data.get("title") or "")
    if not steps:
        raise ValueError(f"{path}: no steps")
    for i, s in enumerate(steps):
        if not isinstance(s.get("terms"), dict) or "fraction" not in s:
            raise ValueError(f"{path}: step {i} needs 'fraction' and 'terms'")
    return sorted(steps, key=lambda s: s["fraction"]), weights, title


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


def plot_term(name: str, steps: list[dict], weights: dict[str, float], title: str) -> str:
    """An SVG line chart of one term over the steps (and its share of the total, if weighted)."""
    points = [(s["fraction"], float(s["terms"][name])) for s in steps if name in s["terms"]]
    points = [(x, y) for x, y in points if math.isfinite(y)]
    if not points:
        raise ValueError(f"no finite values for {name}")
    ys = [y for _, y in points]
    ticks = nice_ticks(min(0.0, min(ys)), max(ys))
    y0, y1 = ticks[0], ticks[-1]
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + x * pw

    def py(y: float, lo: float = y0, hi: float = y1) -> float:
        return TOP + ph - (y - lo) / ((hi - lo) or 1.0) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="Helvetica, Arial, sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="#ffffff"/>',
           f'<text x="{LEFT}" y="22" font-size="14" font-weight="bold">{escape(name)} over the steps'
           f'{escape(" — " + title) if title else ""}</text>']
    for t in ticks:
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{LEFT - 6}" y="{py(t) + 4:.1f}" text-anchor="end" fill="{VALUE_COLOUR}">{_fmt(t)}</text>')
    for i in range(6):
        x = i / 5
        out.append(f'<text x="{px(x):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{x:.0%}</text>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{H - 8}" text-anchor="middle">fraction of the sampling steps done</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    line = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
    out.append(f'<polyline class="value" points="{line}" fill="none" stroke="{VALUE_COLOUR}" stroke-width="2.5"/>')
    legend = [(VALUE_COLOUR, f"{name} (unweighted)", "")]

    if name in weights:
        shares = []
        for s in steps:
            total = sum(weights.get(k, 0.0) * float(v) for k, v in s["terms"].items())
            if name in s["terms"] and total:
                shares.append((s["fraction"], weights[name] * float(s["terms"][name]) / total))
        if shares:
            for t in (0.0, 0.5, 1.0):
                out.append(f'<text x="{W - RIGHT + 6}" y="{py(t, 0, 1) + 4:.1f}" fill="{SHARE_COLOUR}">{t:.0%}</text>')
            line = " ".join(f"{px(x):.1f},{py(min(max(v, 0.0), 1.0), 0, 1):.1f}" for x, v in shares)
            out.append(f'<polyline class="share" points="{line}" fill="none" stroke="{SHARE_COLOUR}" '
                       'stroke-width="2" stroke-dasharray="6 4"/>')
            legend.append((SHARE_COLOUR, "share of the weighted total (right axis)", 'stroke-dasharray="6 4"'))
    x = LEFT
    for colour, label, dash in legend:  # one row between the title and the plot
        y = TOP - 12
        out.append(f'<line x1="{x}" x2="{x + 24}" y1="{y - 4}" y2="{y - 4}" stroke="{colour}" stroke-width="2.5" {dash}/>')
        out.append(f'<text x="{x + 30}" y="{y}">{escape(label)}</text>')
        x += 50 + 6.5 * len(label)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_plots(run: Path, out: Path = DOCS) -> list[Path]:
    steps, weights, title = load_run(run)
    written = []
    names = sorted({k for s in steps for k in s["terms"]})
    for name in names:
        node = TERM_NODES.get(name.split("#")[0])
        if node is None:
            print(f"note: no node for term {name!r} (add its kind to TERM_NODES)")
            continue
        # One picture per node: the chain's first term of that kind.
        dest = out / node / "steps.svg"
        if dest in written:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(plot_term(name, steps, weights, title), encoding="utf-8")
        written.append(dest)
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="per-step values of a guided run (JSON)")
    ap.add_argument("--out", type=Path, default=DOCS, help="folder of the help pages (default web/docs)")
    args = ap.parse_args()
    for path in write_plots(args.run, args.out):
        print("wrote", path)
    print("then: .venv/bin/python scripts/gen_docs.py   (shows the plots on the help pages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
