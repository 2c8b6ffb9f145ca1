"""Where the shipped workflows' nodes go: columns, bands and coloured groups, readable at 100 %.

Every workflow reads left to right in the same groups: **Inputs** (the two pictures), **Loss
networks** (the content picture at its size, VGG, open_clip), **Loss terms**, **Model** (loaders,
prompts, encoder), **Sampling** and **Results**. Sources stand left of what they feed and at
about its height, so a link runs across the gap between two columns instead of behind a third
node; ``geometry.links_behind_nodes`` checks that, and ``geometry.fit_view_zoom`` that the
editor's Fit view stays readable (tests/test_workflow_layout.py).
"""

from __future__ import annotations

from headless.workflow import UIGraph, UINode

# Column x positions: the note's column is 400 px wide, the others 370 px with 90 px gaps
# (a link between neighbouring columns then stays in the gap).
X = [40, 500, 960, 1420, 1880, 2340, 2800]
GAP = 40  # between nodes of a column
GROUP_GAP = 120  # between groups stacked in a column (room for a group's title bar above a node's)
GROUP_TITLE = 80  # a group's frame starts this far above its first node (its title, then the node's)

# The editor's group colours (LGraphCanvas.node_colors' groupcolor).
INPUTS, NETWORKS, LOSSES, MODEL, SAMPLING, RESULTS = "#3f789e", "#8AA", "#a1309b", "#88A", "#8A8", "#b58b2a"


def stack(column: int, nodes: list[UINode | None], y: float = 90.0, gap: float = GAP) -> float:
    """Put ``nodes`` one under the other in ``column`` from ``y``, ``gap`` apart; return the y under the last one."""
    for node in nodes:
        if node is None:
            continue
        right = node.type == "Reroute"  # at the column's right edge: its link leaves through the gap
        node.pos = [float(X[column] + (370 - node.size[0] if right else 0)), float(y)]
        y += node.size[1] + gap
    return y


def bottom(nodes: list[UINode]) -> float:
    return max(n.pos[1] + n.size[1] for n in nodes)


def group(g: UIGraph, title: str, color: str, nodes: list[UINode | None]) -> None:
    """A coloured frame around ``nodes`` with its title above the first node's title bar."""
    members = [n for n in nodes if n is not None]
    x0, y0 = min(n.pos[0] for n in members) - 20, min(n.pos[1] for n in members) - GROUP_TITLE
    x1, y1 = max(n.pos[0] + n.size[0] for n in members) + 20, max(n.pos[1] + n.size[1] for n in members) + 20
    g.groups.append({"title": title, "bounding": [x0, y0, x1 - x0, y1 - y0], "color": color, "font_size": 24})


def reroute(g: UIGraph, source: tuple[UINode, int]) -> UINode:
    """A Reroute node (the editor's own) carrying ``source``; place it, then link from ``node[0]``."""
    origin, slot = source
    out_type = origin.outputs[slot]["type"]
    node = UINode(len(g.nodes) + 1, "Reroute", None, [0.0, 0.0], [75, 26])
    node.inputs.append({"name": "", "type": "*", "link": None})
    node.outputs.append({"name": "", "type": out_type, "links": [], "slot_index": 0})
    g.nodes.append(node)
    link_id = len(g.links) + 1
    node.inputs[0]["link"] = link_id
    origin.outputs[slot]["links"].append(link_id)
    g.links.append([link_id, origin.id, slot, node.id, 0, out_type])
    return node


def arrange(g: UIGraph, note: UINode, inputs: list, model: list[list], networks: list, losses: list[list],
            sampling: list, results: list, results_y: dict | None = None, sampling_y: float = 90.0) -> None:
    """The standard layout (see the module docstring) of a style-transfer workflow.

    ``model``: up to three columns of loaders, prompts and encoders (the top band of columns
    1-3); ``networks`` (the content picture at its size, VGG, open_clip) and ``losses`` (one or
    two columns of loss nodes) fill the band below; ``sampling`` and ``results`` the columns
    4 and 5 (results: in column 4 under sampling when ``results`` is empty there).
    ``results_y``: a node id of ``results`` -> the y it starts at (to keep a link under the sampler);
    ``sampling_y``: where the sampling column starts (lower: links to the results pass above it).
    """
    note.pos, note.size = [float(X[0]), 90.0], [400, note.size[1]]
    top = max((stack(1 + i, col) for i, col in enumerate(model)), default=60.0)
    band = top - GAP + GROUP_GAP
    y = stack(0, inputs, note.pos[1] + note.size[1] + GROUP_GAP)
    stack(1, networks, band)
    for i, col in enumerate(losses):
        stack(2 + i, col, band)
    stack(4, sampling, sampling_y)
    y = 90.0
    for node in results:
        y = max(y, (results_y or {}).get(node.id, y))
        node.pos = [float(X[5]), y]
        y += node.size[1] + GAP
    group(g, "Inputs", INPUTS, inputs)
    group(g, "Model, prompts and start latent", MODEL, [n for col in model for n in col])
    group(g, "Loss terms (with the networks they use)", LOSSES, [*networks, *(n for col in losses for n in col)])
    group(g, "Sampling", SAMPLING, sampling)
    group(g, "Results", RESULTS, results)


def arrange_variants(g: UIGraph, note: UINode, inputs: list, model: list[list], networks: list, losses: list,
                     variants: list[list]) -> None:
    """An ablation: the standard left part, then one column per variant (columns 3-5).

    ``variants``: per column [sampler, decoder, save, measure, shown scores], one group for all:
    each loss term's link may cross the other variants' columns on its way to its sampler.
    """
    note.pos, note.size = [float(X[0]), 90.0], [400, note.size[1]]
    top = max(stack(1 + i, col) for i, col in enumerate(model))
    band = top - GAP + GROUP_GAP
    stack(0, inputs, note.pos[1] + note.size[1] + GROUP_GAP)
    stack(1, networks, band)
    stack(2, losses, band)
    for i, v in enumerate(variants):
        # five nodes a column, the Measure node one output row per term: a tighter gap keeps Fit view legible
        stack(3 + i, v, gap=GAP - 10)
    group(g, "Inputs", INPUTS, inputs)
    group(g, "Model, prompts and start latent", MODEL, [n for col in model for n in col])
    group(g, "Loss terms (with the networks they use)", LOSSES, [*networks, *losses])
    group(g, "One sampler per loss term, its result and its scores", SAMPLING, [n for v in variants for n in v])
