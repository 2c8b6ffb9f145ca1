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
    """scripts/gen_doc_pictures.py: one SVG per loss node, a point per step, the share when weighted."""
    steps = [{"fraction": i / 10, "sigma": 10 - i, "total": 0.0,
              "terms": {"zecon": 5.0 - 0.3 * i, "gram_style": 1e-3 * (10 - i), "gram_style#2": 1.0, "range": 0.0}}
             for i in range(10)]
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"steps": steps, "weights": {"zecon": 0.5, "gram_style": 100.0}, "title": "t"}))
    written = _script("gen_doc_pictures").write_plots(run, tmp_path / "docs")
    assert sorted(p.parent.name for p in written) == ["StyleGuidanceGramStyle", "StyleGuidanceZeCon"]
    svg = ET.parse(tmp_path / "docs" / "StyleGuidanceZeCon" / "steps.svg").getroot()
    lines = {p.get("class"): p.get("points").split() for p in svg.iter("{http://www.w3.org/2000/svg}polyline")}
    assert len(lines["value"]) == 10 and len(lines["share"]) == 10
    ys = [float(p.split(",")[1]) for p in lines["value"]]
    assert ys == sorted(ys), "a falling value must be drawn falling (SVG y grows downwards)"


@pytest.mark.parametrize("lo,hi", [(0.0, 1e-6), (0.0, 4.8), (-2.0, 3.0), (5.0, 5.0)])
def test_plot_ticks_cover_the_values(lo, hi):
    ticks = _script("gen_doc_pictures").nice_ticks(lo, hi)
    assert ticks[0] <= lo and ticks[-1] >= hi and len(ticks) <= 12
