"""How the editor draws a saved workflow: its fit-to-view zoom and where its links run.

The figures follow ComfyUI's frontend (1.32, litegraph): node title bars are 30 px above
``pos``, slots are 20 px apart, a link is a cubic spline whose control points stand
``max(30, length / 4)`` px right of its output and left of its input, and "Fit view"
zooms to ``0.75 x min(canvas width / bounds width, canvas height / bounds height)`` of every
node and group. ``tests/test_workflow_layout.py`` checks the shipped workflows with them;
``tests/test_browser.py`` measures the real editor's zoom.
"""

from __future__ import annotations

TITLE_HEIGHT = 30
SLOT_HEIGHT = 20
# The editor's canvas in the browser test's 1920x1200 window (top menu and tab bar take 12 px).
CANVAS = (1920, 1188)
VIRTUAL = {"MarkdownNote", "Note"}


def bounds(workflow: dict) -> tuple[float, float, float, float]:
    """x0, y0, x1, y1 of every node (title bar included) and group."""
    boxes = [(n["pos"][0], n["pos"][1] - TITLE_HEIGHT, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
             for n in workflow["nodes"]]
    boxes += [(g["bounding"][0], g["bounding"][1], g["bounding"][0] + g["bounding"][2], g["bounding"][1] + g["bounding"][3])
              for g in workflow.get("groups", [])]
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def fit_view_zoom(workflow: dict, canvas: tuple[int, int] = CANVAS) -> float:
    x0, y0, x1, y1 = bounds(workflow)
    return 0.75 * min(canvas[0] / max(x1 - x0, 300), canvas[1] / max(y1 - y0, 300))


def _slot_y(node: dict, index: int) -> float:
    return node["pos"][1] + (index + 0.7) * SLOT_HEIGHT


def link_points(workflow: dict, link: list, samples: int = 48) -> list[tuple[float, float]]:
    """Points along the editor's spline of one link ``[id, from, from_slot, to, to_slot, type]``."""
    nodes = {n["id"]: n for n in workflow["nodes"]}
    src, dst = nodes[link[1]], nodes[link[3]]
    # Inputs bound to a widget sit at that widget's row; the shipped workflows link none of them.
    ax, ay = src["pos"][0] + src["size"][0], _slot_y(src, link[2])
    bx, by = dst["pos"][0], _slot_y(dst, link[4])
    d = max(30.0, ((bx - ax) ** 2 + (by - ay) ** 2) ** 0.5 * 0.25)
    p = [(ax, ay), (ax + d, ay), (bx - d, by), (bx, by)]
    out = []
    for i in range(samples + 1):
        t = i / samples
        c = ((1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3)
        out.append((sum(k * q[0] for k, q in zip(c, p, strict=True)), sum(k * q[1] for k, q in zip(c, p, strict=True))))
    return out


def group_of(workflow: dict, node: dict) -> str | None:
    """The title of the group whose frame holds the node's centre (None: in no group)."""
    cx, cy = node["pos"][0] + node["size"][0] / 2, node["pos"][1] + node["size"][1] / 2
    for g in workflow.get("groups", []):
        x, y, w, h = g["bounding"]
        if x <= cx <= x + w and y <= cy <= y + h:
            return g["title"]
    return None


def links_behind_nodes(workflow: dict, margin: float = 40.0) -> list[str]:
    """Each link that runs behind a node of a third group: one that neither of its ends belongs to.

    A link may cross the nodes of the groups it connects (a loss network's link across the loss
    column), never another group's (a loader's link behind the input pictures) nor a node in no
    group (the note). ``margin`` px of a node's edge are spared: a link that only grazes a
    corner stays readable.
    """
    label = {n["id"]: f"{n.get('title') or n['type']} #{n['id']}" for n in workflow["nodes"]}
    groups = {n["id"]: group_of(workflow, n) for n in workflow["nodes"]}
    found = []
    for link in workflow["links"]:
        points = link_points(workflow, link)
        ends = {groups[link[1]], groups[link[3]]} - {None}
        for n in workflow["nodes"]:
            if n["id"] in (link[1], link[3]) or (groups[n["id"]] is not None and groups[n["id"]] in ends):
                continue
            x0, y0 = n["pos"][0] + margin, n["pos"][1] - TITLE_HEIGHT + margin
            x1, y1 = n["pos"][0] + n["size"][0] - margin, n["pos"][1] + n["size"][1] - margin
            if any(x0 < x < x1 and y0 < y < y1 for x, y in points):
                found.append(f"{label[link[1]]} -> {label[link[3]]} ({link[5]}) runs behind {label[n['id']]}")
    return found


def overlapping(workflow: dict) -> list[str]:
    """Pairs of nodes, and pairs of groups, whose boxes overlap."""
    found = []
    nodes = workflow["nodes"]
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            if (a["pos"][0] < b["pos"][0] + b["size"][0] and b["pos"][0] < a["pos"][0] + a["size"][0]
                    and a["pos"][1] - TITLE_HEIGHT < b["pos"][1] + b["size"][1]
                    and b["pos"][1] - TITLE_HEIGHT < a["pos"][1] + a["size"][1]):
                found.append(f"nodes #{a['id']} and #{b['id']}")
    groups = workflow.get("groups", [])
    for i, a in enumerate(groups):
        for b in groups[i + 1:]:
            (ax, ay, aw, ah), (bx, by, bw, bh) = a["bounding"], b["bounding"]
            if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                found.append(f"groups {a['title']!r} and {b['title']!r}")
    return found
