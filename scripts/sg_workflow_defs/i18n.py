"""The shipped workflows in other languages: their node titles, group titles and notes.

ComfyUI translates a node's own name, never the titles and notes a workflow carries, so a
zh-TW user would read the shipped workflows half in English. ``scripts/translations/workflows.<lang>.json``
is a translation memory {English: translation} of every title and of every note *segment* (a
heading, a paragraph or a list item; notes are split so that an edit to one paragraph costs one
translation); ``scripts/workflows.py build`` writes ``web/workflow_i18n/<lang>.json`` from it,
{"titles": {English: translation}, "notes": {whole English note: whole translation}}, which
``web/js/workflow_i18n.js`` applies when the editor's language is one of them and a workflow of
this pack is opened. ``tests/test_workflow_i18n.py`` fails, naming the text, when a title or a
segment has no translation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MEMORIES = ROOT / "scripts" / "translations"
WEB = ROOT / "web" / "workflow_i18n"
LANGUAGES = ("zh-TW",)
NOTE_TYPES = {"MarkdownNote", "Note"}


def memory(lang: str) -> dict[str, str]:
    return json.loads((MEMORIES / f"workflows.{lang}.json").read_text(encoding="utf-8"))


def paragraphs(text: str) -> list[list[str]]:
    """A note as paragraphs of segments: a heading line, a list item or a run of other lines, unwrapped."""
    out = []
    for para in re.split(r"\n\s*\n", text.strip()):
        segs: list[str] = []
        for line in para.splitlines():
            line = line.strip()
            if line.startswith(("#", "- ")) or not segs or segs[-1].startswith("#"):
                segs.append(line)
            else:
                segs[-1] += " " + line
        out.append(segs)
    return out


def needs_translation(segment: str) -> bool:
    """Prose outside code spans, links and parentheses (a bare file path needs none)."""
    bare = re.sub(r"`[^`]*`|\([^)]*\)|\S+\.(?:md|py|json|org|co|com)\S*", " ", segment)
    return bool(re.search(r"[A-Za-z]{3,}", bare))


def texts(workflow: dict) -> tuple[set[str], list[str]]:
    """(titles, notes) of a workflow: node and group titles, and the notes' texts."""
    titles = {n["title"] for n in workflow["nodes"] if n.get("title")}
    titles |= {g["title"] for g in workflow.get("groups", [])}
    notes = [n["widgets_values"][0] for n in workflow["nodes"] if n["type"] in NOTE_TYPES]
    return titles, notes


def translate_note(text: str, mem: dict[str, str]) -> tuple[str, list[str]]:
    """The note in the memory's language, and the segments it lacks (left in English)."""
    missing, out = [], []
    for segs in paragraphs(text):
        done = []
        for seg in segs:
            if needs_translation(seg) and seg not in mem:
                missing.append(seg)
            done.append(mem.get(seg, seg))
        out.append("\n".join(done))
    return "\n\n".join(out), missing


def table(workflows: list[dict], lang: str) -> tuple[dict, list[str]]:
    """``web/workflow_i18n/<lang>.json`` for these workflows, and every text the memory lacks."""
    mem = memory(lang)
    titles, notes, missing = {}, {}, []
    for wf in workflows:
        wf_titles, wf_notes = texts(wf)
        for title in sorted(wf_titles):
            if title in mem:
                titles[title] = mem[title]
            elif needs_translation(title):
                missing.append(title)
        for note in wf_notes:
            notes[note], lacking = translate_note(note, mem)
            missing += lacking
    return {"titles": titles, "notes": notes}, sorted(set(missing))
