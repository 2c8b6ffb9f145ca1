"""A picture of a guided run: every loss term's value and its effect (the progress of its own loss the
step made, on the scale of a share; its share of the direction where the run's events have no
effect), step by step, and the weights and scale each step used (their schedules: constant,
linear, cosine, typed values).

Needs matplotlib (the pack's optional ``plots`` extra in pyproject.toml); without it
:func:`plot_steps` returns None and the runner writes the events as JSON only.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict

from .protocol import current_term_name


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def step_positions(events: list[dict]) -> list[float]:
    """x position of each event: its step, with repeated evaluations of one step spread over it."""
    count: dict[tuple, int] = defaultdict(int)
    for e in events:
        count[(e.get("node"), e.get("step"))] += 1
    seen: dict[tuple, int] = defaultdict(int)
    xs = []
    for i, e in enumerate(events):
        key = (e.get("node"), e.get("step"))
        step = e.get("step")
        base = float(step) if isinstance(step, (int, float)) and not isinstance(step, bool) else float(i)
        xs.append(base + seen[key] / count[key])
        seen[key] += 1
    return xs


def _number(y) -> bool:
    return isinstance(y, (int, float)) and not isinstance(y, bool) and math.isfinite(y)


def series(events: list[dict]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """{"value"|"share"|"effect"|"weight": {label: [(x, y), ...]}} with one label per term (per node when several),
    and "scale": {label: ...} with one label per sampler node (events that carry the scale used)."""
    nodes = {e.get("node") for e in events}
    out: dict[str, dict[str, list[tuple[float, float]]]] = {
        k: defaultdict(list) for k in ("value", "share", "effect", "weight", "scale")}
    for x, e in zip(step_positions(events), events, strict=True):
        if _number(e.get("scale")):
            out["scale"]["scale" if len(nodes) == 1 else f"{e.get('node')}: scale"].append((x, float(e["scale"])))
        terms = e.get("terms") if isinstance(e.get("terms"), dict) else {}
        for name, t in terms.items():
            name = current_term_name(name)  # an old run's kinds read as today's
            label = f"{e.get('node')}: {name}" if len(nodes) > 1 else str(name)
            w = t.get("weight") if isinstance(t, dict) else None
            away = _number(w) and w < 0
            if away:  # a negative weight: its share is drawn below zero, pointing away from its reference
                label += " (negative weight: away)"
            for what in ("value", "share", "effect", "weight"):
                y = t.get(what) if isinstance(t, dict) else None
                if _number(y):
                    out[what][label].append((x, -float(y) if what == "share" and away else float(y)))
    return out


def plot_steps(events: list[dict], title: str) -> bytes | None:
    """PNG bytes of the plot (None without matplotlib or without events)."""
    if not events or not matplotlib_available():
        return None
    try:  # the optional 'plots' extra
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None

    data = series(events)
    fig = Figure(figsize=(8, 8.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom, curves = fig.subplots(3, 1, sharex=True, height_ratios=(3, 3, 2))
    for label, pts in sorted(data["value"].items()):
        pts = [(x, y) for x, y in pts if y > 0]  # log scale: zero and negative values cannot be drawn
        if pts:
            top.plot(*zip(*pts, strict=True), marker=".", label=label)
    top.set_yscale("log")
    top.set_ylabel("term value (unweighted, log)")
    top.set_title(title.replace("$", r"\$"))  # a file name is text, never mathtext ('cost$__$x')
    # The effect: how much of its own progress each term kept (a share of the step where nothing conflicts; below
    # its share, other terms pull against it; below 0, the step worsened it). Older runs' events carry shares only.
    middle = "effect" if data["effect"] else "share"
    for label, pts in sorted(data[middle].items()):
        bottom.plot(*zip(*pts, strict=True), marker=".", label=label)
    bottom.set_ylabel("effect on its own loss (< 0: worsened)" if middle == "effect"
                      else "share of the guidance (< 0: away)")
    bottom.axhline(0.0, color="grey", linewidth=0.8)
    bottom.set_ylim(bottom=min(0.0, bottom.get_ylim()[0]))
    # The schedules the run used: each term's weight (solid) and the guidance scale (dashed, right axis).
    for label, pts in sorted(data["weight"].items()):
        curves.plot(*zip(*pts, strict=True), marker=".", label=f"{label} weight")
    curves.set_ylabel("weight used")
    curves.set_xlabel("sampling step")
    if data["scale"]:
        right = curves.twinx()
        for label, pts in sorted(data["scale"].items()):
            right.plot(*zip(*pts, strict=True), linestyle="--", color="black", marker="x", label=label)
        right.set_ylabel("scale used (dashed)")
        right.set_ylim(bottom=0.0)
        right.legend(fontsize="small", loc="upper right")
    for ax in (top, bottom, curves):
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="best")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
