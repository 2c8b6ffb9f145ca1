"""zh-TW users read the shipped workflows in one language: every title and note segment has a translation."""

from __future__ import annotations

import json
import re
import sys

import pytest

from headless.testbed.base import REPO_ROOT

if str(REPO_ROOT / "scripts") not in sys.path:
    sys.path.append(str(REPO_ROOT / "scripts"))
from sg_workflow_defs import i18n  # noqa: E402

SHIPPED = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((REPO_ROOT / "workflows").glob("*.json"))]


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_every_title_and_note_is_translated(lang):
    table, missing = i18n.table(SHIPPED, lang)
    assert not missing, (f"{len(missing)} texts of the workflows have no {lang} translation; add them to "
                         f"scripts/translations/workflows.{lang}.json:\n" + "\n".join(missing))
    committed = json.loads((i18n.WEB / f"{lang}.json").read_text(encoding="utf-8"))
    assert committed == table, "run: .venv/bin/python scripts/workflows.py build"


def _english_words(text: str) -> list[str]:
    """Words of English prose left in a translated text (code, file names, model names aside)."""
    bare = re.sub(r"`[^`]*`", " ", text)  # code first: an asterisk inside must not pair with one outside
    bare = re.sub(r"\*\*", " ", bare)  # bold marks, then *input names*, brackets, paths, identifiers
    bare = re.sub(r"\*[^*\n]+\*|\([^)]*\)|（[^）]*）|\S+\.(?:md|py|json|org|co|com)\S*|\w*_\w*", " ", bare)
    return [w for w in re.findall(r"[A-Za-z]{4,}", bare) if w in {
        "the", "with", "from", "that", "this", "when", "each", "what", "your", "them", "there", "runs",
        "guidance", "content", "style", "image", "loss", "losses", "steps", "decoder", "result", "model"}]


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_a_translated_workflow_reads_in_one_language(lang):
    table, _ = i18n.table(SHIPPED, lang)
    for wf in SHIPPED:
        titles, notes = i18n.texts(wf)
        for title in titles:
            assert not _english_words(table["titles"].get(title, title)), title
        for note in notes:
            left = _english_words(table["notes"][note])
            assert not left, f"English left in a {lang} note: {left}"


def test_a_new_english_text_is_reported():
    wf = json.loads(json.dumps(SHIPPED[0]))
    note = next(n for n in wf["nodes"] if n["type"] in i18n.NOTE_TYPES)
    note["widgets_values"][0] += "\n\nA paragraph nobody has translated yet."
    wf["nodes"][1]["title"] = "A title nobody has translated"
    _, missing = i18n.table([wf], "zh-TW")
    assert missing == ["A paragraph nobody has translated yet.", "A title nobody has translated"]
    assert _english_words("Guidance decodes the result with the content")  # the detector detects
