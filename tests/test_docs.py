"""Help pages (web/docs), their pictures, workflow thumbnails and the README's pictures."""

from __future__ import annotations

import importlib.util
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"sg_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help_pages_are_written_complete_and_current(comfy_base):
    """Each node: an English page and a zh-TW page, with the method (formula) and tuning sections written
    by hand, a picture, and inputs/outputs that match the live definitions."""
    import nodes

    problems = _script("gen_docs").problems(nodes.NODE_CLASS_MAPPINGS)
    assert not problems, "\n".join(problems)


def test_help_pictures_are_small_pngs():
    pictures = sorted((ROOT / "web" / "docs").glob("*/graph.png"))
    assert len(pictures) >= 12
    for path in pictures:
        with Image.open(path) as img:
            assert img.format == "PNG" and img.width <= 900, f"{path}: {img.format} {img.size}"
        assert path.stat().st_size < 250_000, f"{path} is {path.stat().st_size // 1024} KB"


def test_every_workflow_has_its_template_thumbnail():
    """The template browser shows workflows/<name>.jpg for workflows/<name>.json."""
    for path in sorted((ROOT / "workflows").glob("*.json")):
        thumb = path.with_suffix(".jpg")
        assert thumb.is_file(), f"{thumb.name} is missing: run the browser test, then scripts/gen_pictures.py"
        with Image.open(thumb) as img:
            assert img.format == "JPEG" and img.width <= 640 and img.height <= 480, f"{thumb}: {img.size}"
        assert thumb.stat().st_size < 150_000


def test_readme_pictures_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", readme)
    assert any("editor_style_transfer_fast" in i for i in images), "the README shows no editor screenshot"
    for rel in images:
        if not rel.startswith("http"):
            assert (ROOT / rel).is_file(), f"README shows {rel}, which does not exist"


def test_step_plot_of_a_run(tmp_path):
    """scripts/gen_doc_pictures.py reads the runner's .steps.json: one SVG per loss node, a point per step."""
    def term(value, weight, share):
        return {"value": value, "weight": weight, "share": share}

    events = [{"node": "17", "step": i, "fraction": i / 10, "sigma": 10 - i, "total": 0.0,
               "terms": {"zecon": term(5.0 - 0.3 * i, 0.5, 0.5 if i < 5 else 1.0),
                         "gram_style": term(1e-3 * (10 - i), 0.5, 0.5 if i < 5 else 0.0),
                         "gram_style#2": term(1.0, 1.0, 0.0), "mystery": term(1.0, 1.0, 0.0)},
               "zero_gradient": []} for i in range(10)]
    run = tmp_path / "pair.steps.json"
    run.write_text(json.dumps({"event": "style_guidance.step", "events": events}))
    written = _script("gen_doc_pictures").write_plots(run, tmp_path / "docs")
    assert sorted(p.parent.name for p in written) == ["StyleGuidanceGramStyle", "StyleGuidanceZeCon"]
    svg = ET.parse(tmp_path / "docs" / "StyleGuidanceZeCon" / "steps.svg").getroot()
    lines = {p.get("class"): p.get("points").split() for p in svg.iter("{http://www.w3.org/2000/svg}polyline")}
    assert len(lines["value"]) == 10 and len(lines["share"]) == 10
    ys = [float(p.split(",")[1]) for p in lines["value"]]
    assert ys == sorted(ys), "a falling value must be drawn falling (SVG y grows downwards)"
    share_y = [float(p.split(",")[1]) for p in lines["share"]]
    assert share_y[5] < share_y[4], "the engine's share (0.5 -> 1.0) must be drawn rising"
    text = "".join(svg.itertext())
    assert "stand-in" in text, "the plot must say it comes from stand-in models"


def test_step_plot_refuses_other_formats(tmp_path):
    run = tmp_path / "old.json"
    run.write_text(json.dumps({"steps": [{"fraction": 0.0, "terms": {"zecon": 1.0}}]}))
    with pytest.raises(ValueError, match="no step events"):
        _script("gen_doc_pictures").load_run(run)
    run.write_text(json.dumps([{"fraction": 0.0, "terms": {"zecon": 1.0}}]))
    with pytest.raises(ValueError, match="StepReport.as_event"):
        _script("gen_doc_pictures").load_run(run)


def test_every_loss_node_in_the_doc_run():
    """The stand-in runs that make the plots contain every loss node gen_doc_pictures knows: the picture terms in
    every_loss_node, the video-only one (Temporal Consistency) in the style_transfer_wan run."""
    gdp = _script("gen_doc_pictures")

    def api(name: str) -> dict:
        return json.loads((ROOT / "workflows" / "api" / f"{name}.json").read_text(encoding="utf-8"))

    classes = {n["class_type"] for n in gdp.every_loss_node(api("style_transfer_fast")).values()}
    video = {n["class_type"] for n in api(gdp.VIDEO_RUN).values()}
    temporal = gdp.TERM_NODES["temporal_consistency"]
    assert temporal in video and temporal not in classes
    assert set(gdp.TERM_NODES.values()) <= classes | {temporal}, set(gdp.TERM_NODES.values()) - classes


def test_readme_shows_a_step_plot():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/steps_style_transfer_fast.png" in readme, "the README shows no per-step plot"


@pytest.mark.parametrize("lo,hi", [(0.0, 1e-6), (0.0, 4.8), (-2.0, 3.0), (5.0, 5.0)])
def test_plot_ticks_cover_the_values(lo, hi):
    ticks = _script("gen_doc_pictures").nice_ticks(lo, hi)
    assert ticks[0] <= lo and ticks[-1] >= hi and len(ticks) <= 12


@pytest.mark.parametrize("line,kind", [
    ("(`scripts/gen_doc_pictures.py --run`): *it shows the mechanics*", "a command line"),
    ("computed by the same code as `python -m headless evaluate`", "a command line"),
    ("see tests/test_balance.py for the figures", "a developer file path"),
    ("(under the old rule of one normalisation for the summed loss it held 0.00003 % of the direction)",
     "the history of an old rule"),
    ("（在舊的規則下只對加總後的損失正規化一次）", "the history of an old rule"),
])
def test_help_page_leak_check_catches_developer_and_history_text(line, kind):
    """Issue 21, item 6: a help page shows no command line, developer path or history of old rules."""
    gen_docs = _script("gen_docs")
    assert any(found.startswith(kind) for found in gen_docs.leaks(f"Intro.\n\n{line}\n")), gen_docs.leaks(line)
    assert not gen_docs.leaks(f"{gen_docs.MARKER}\nA VGG19 only used to compare pictures, at 512 px.\n")


def test_help_pages_link_the_readme_and_the_docs():
    gen_docs = _script("gen_docs")
    pages = sorted((ROOT / "web" / "docs").glob("*.md")) + sorted((ROOT / "web" / "docs").glob("*/zh-TW.md"))
    assert len(pages) >= 24
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert f"]({gen_docs.REPOSITORY}#readme)" in text and f"]({gen_docs.REPOSITORY}/tree/main/docs)" in text, page
        assert not gen_docs.leaks(text), (page, gen_docs.leaks(text))
