"""The template browser's cards: every workflow has a title, a one-line description and its own card picture; the starter first."""

from __future__ import annotations

import json
import sys

from PIL import Image

from headless.testbed.base import REPO_ROOT

if str(REPO_ROOT / "scripts") not in sys.path:
    sys.path.append(str(REPO_ROOT / "scripts"))
from sg_workflow_defs import DEFINITIONS  # noqa: E402
from sg_workflow_defs.templates import STARTER, TEMPLATES, index  # noqa: E402

WORKFLOWS = REPO_ROOT / "workflows"


def test_every_workflow_has_a_title_and_a_one_line_description():
    shipped = {p.stem for p in WORKFLOWS.glob("*.json")}
    assert set(TEMPLATES) == shipped == set(DEFINITIONS)
    titles = [t for t, _d in TEMPLATES.values()]
    assert len(set(titles)) == len(titles), "two cards with one title"
    for name, (title, description) in TEMPLATES.items():
        assert 8 <= len(title) <= 45 and title != name.replace("_", " "), (name, title)
        assert 10 <= len(description) <= 70 and "\n" not in description, (name, description)


def test_the_starter_comes_first_and_says_so():
    assert next(iter(TEMPLATES)) == STARTER == "style_transfer_fast"
    assert TEMPLATES[STARTER][0].lower().startswith("start here")
    assert not any(t.lower().startswith("start here") for n, (t, _d) in TEMPLATES.items() if n != STARTER)


def test_the_editor_extension_reads_the_current_index():
    """web/templates.json (order, category names) is what scripts/workflows.py build writes today."""
    shipped = json.loads((REPO_ROOT / "web" / "templates.json").read_text(encoding="utf-8"))
    assert shipped == index(), "run: .venv/bin/python scripts/workflows.py build"
    assert shipped["order"][0] == STARTER and shipped["category"]["en"] == "Style Guidance"
    assert set(shipped["category"]) == {"en", "zh-TW"}


def test_each_card_is_its_own_picture_of_the_inputs():
    """Cards are drawn (scripts/gen_pictures.py), 640x480, and differ from each other (the title is on them)."""
    seen = {}
    for name in TEMPLATES:
        card = WORKFLOWS / f"{name}.jpg"
        assert card.is_file(), f"{card} missing: run scripts/gen_pictures.py --only {name}"
        img = Image.open(card)
        assert img.size == (640, 480), (name, img.size)
        seen[name] = img.convert("L").resize((64, 48)).tobytes()
    assert len(set(seen.values())) == len(seen), "two cards look the same"
    # the starter's card has the green "start here" strip along its top edge
    top = Image.open(WORKFLOWS / f"{STARTER}.jpg").convert("RGB").getpixel((320, 3))
    other = Image.open(WORKFLOWS / "style_transfer_sd15.jpg").convert("RGB").getpixel((320, 3))
    assert top[1] > top[0] + 40 and not other[1] > other[0] + 40, (top, other)
