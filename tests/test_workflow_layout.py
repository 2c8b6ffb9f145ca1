"""The shipped workflows read at 100 %: coloured groups, links clear of other groups' nodes, a legible fit-to-view.

Geometry as the editor draws it (scripts/sg_workflow_defs/geometry.py); the browser test
measures the real editor's fit-to-view zoom (tests/test_browser.py, MIN_FIT_VIEW_ZOOM).
"""

from __future__ import annotations

import json
import sys

import pytest

from headless.testbed.base import REPO_ROOT

if str(REPO_ROOT / "scripts") not in sys.path:
    sys.path.append(str(REPO_ROOT / "scripts"))
from sg_workflow_defs import geometry  # noqa: E402

WORKFLOWS = sorted((REPO_ROOT / "workflows").glob("*.json"))
# The zoom of the editor's Fit view (1920x1200 window) every workflow must reach: the editor
# draws text at 14 px x zoom, and under 7 px it cannot be read.
MIN_FIT_VIEW_ZOOM = 0.5
UNGROUPED = {"MarkdownNote", "Note", "Reroute"}


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_fit_to_view_is_legible(path):
    zoom = geometry.fit_view_zoom(_load(path))
    assert zoom >= MIN_FIT_VIEW_ZOOM, f"{path.stem}: Fit view lands at {zoom:.0%} (< {MIN_FIT_VIEW_ZOOM:.0%})"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_groups_frame_every_node_and_links_stay_clear(path):
    wf = _load(path)
    titles = [g["title"] for g in wf["groups"]]
    assert len(titles) >= 4 and len(set(g["color"] for g in wf["groups"])) >= 4, titles
    assert {"Inputs", "Model, prompts and start latent"} <= set(titles), titles
    loose = [f"{n['type']} #{n['id']}" for n in wf["nodes"]
             if n["type"] not in UNGROUPED and geometry.group_of(wf, n) is None]
    assert not loose, f"{path.stem}: nodes in no group: {loose}"
    assert geometry.overlapping(wf) == []
    behind = geometry.links_behind_nodes(wf)
    assert not behind, f"{path.stem}: links behind another group's nodes:\n" + "\n".join(behind)


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_samplers_are_titled_and_loaders_sit_left_of_their_losses(path):
    wf = _load(path)
    samplers = [n for n in wf["nodes"] if n["type"] in ("StyleGuidanceSampler", "KSampler", "SamplerCustomAdvanced")]
    titles = [n.get("title") for n in samplers if n["type"] != "SamplerCustomAdvanced"]
    assert all(titles) and len(set(titles)) == len(titles), f"{path.stem}: samplers {titles}"
    by_id = {n["id"]: n for n in wf["nodes"]}
    for link in wf["links"]:  # every link runs left to right (a Reroute hands on from the right edge)
        src, dst = by_id[link[1]], by_id[link[3]]
        assert src["pos"][0] + src["size"][0] <= dst["pos"][0] or src["pos"][0] == dst["pos"][0], (
            f"{path.stem}: {src['type']} #{src['id']} -> {dst['type']} #{dst['id']} runs right to left")


def test_the_checks_can_fail():
    """A loader moved under the pictures (the old layout's fault) is caught; so is a spread-out graph."""
    wf = _load(REPO_ROOT / "workflows" / "style_transfer_fast.json")
    assert not geometry.links_behind_nodes(wf)
    ckpt = next(n for n in wf["nodes"] if n["type"] == "CheckpointLoaderSimple")
    style = next(n for n in wf["nodes"] if n.get("title") == "Style image")
    ckpt["pos"] = [style["pos"][0], style["pos"][1] + style["size"][1] + 60]
    behind = geometry.links_behind_nodes(wf)
    assert any("CheckpointLoaderSimple" in b and "Content at generation size" in b for b in behind), behind
    wf["nodes"][0]["pos"] = [9000, 9000]
    assert geometry.fit_view_zoom(wf) < MIN_FIT_VIEW_ZOOM


def test_ablation_samplers_are_titled_by_their_term():
    for name in ("ablation_content_terms", "ablation_style_terms"):
        wf = _load(REPO_ROOT / "workflows" / f"{name}.json")
        by_id = {n["id"]: n for n in wf["nodes"]}
        links = {link[0]: link for link in wf["links"]}
        for sampler in (n for n in wf["nodes"] if n["type"] == "StyleGuidanceSampler"):
            term = by_id[links[next(i for i in sampler["inputs"] if i["name"] == "losses")["link"]][1]]
            assert term["title"].replace(" (alone)", "") in sampler["title"], (sampler["title"], term["title"])
