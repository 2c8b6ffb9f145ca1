"""Write the editor's translations of every node (locales/<lang>/main.json, nodeDefs.json).

    .venv/bin/python scripts/gen_locales.py          # regenerate locales/en and locales/zh-TW
    .venv/bin/python scripts/gen_locales.py --check  # exit 1 if they are stale or a translation is missing
    .venv/bin/python scripts/gen_locales.py --todo   # print the English strings that still need a translation

English comes from the live node definitions (display names, descriptions, input and output
names and tooltips, as ComfyUI loads them). The other languages come from hand-kept
translation memories, ``scripts/translations/<lang>.json``: {English text: translation}.
A string added or changed in a node has no translation until someone adds it there; the
files are then stale and ``tests/test_locales.py`` fails, naming the strings.

Format (ComfyUI frontend i18n for custom nodes): ``nodeDefs.json`` maps node id to
``display_name``, ``description``, ``inputs`` {id: {name, tooltip}} and ``outputs``
{index: {name, tooltip}}; ``main.json`` holds ``nodeCategories`` {category segment: label}
for the segments of this pack's categories that the core frontend does not name already.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # appended: ComfyUI's own top-level `nodes` must win

LOCALES = ROOT / "locales"
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
LANGUAGES = ("zh-TW",)  # besides English
NODE_PREFIX = "StyleGuidance"
# Category segments the core frontend translates itself: ours would override its labels for
# every pack, so they are left to it.
CORE_SEGMENTS = frozenset({"loaders", "sampling", "utils", "latent", "image", "conditioning", "advanced"})
# English labels for category segments that are not shown as written.
SEGMENT_LABELS = {"style_guidance": "Style Guidance"}


class MissingTranslations(Exception):
    """Strings with no entry in a translation memory: {language: [English text, ...]}."""

    def __init__(self, missing: dict[str, list[str]]) -> None:
        self.missing = missing
        super().__init__("; ".join(f"{lang}: {len(texts)} untranslated" for lang, texts in missing.items()))


def portable(text: str) -> str:
    """Tooltips name the user's model folders; the files name them relative to ComfyUI."""
    import folder_paths

    return text.replace(str(Path(folder_paths.base_path)), "ComfyUI")


def english(mappings: dict) -> dict[str, dict]:
    """{"main": ..., "nodeDefs": ...} in English from the node classes ComfyUI registered."""
    defs: dict[str, dict] = {}
    segments: dict[str, str] = {}
    for node_id, cls in sorted(mappings.items()):
        if not node_id.startswith(NODE_PREFIX):
            continue
        schema = cls.define_schema()
        entry: dict = {"display_name": schema.display_name or node_id}
        if schema.description:
            entry["description"] = portable(schema.description)
        entry["inputs"] = {}
        for inp in schema.inputs or []:
            entry["inputs"][inp.id] = {"name": inp.id, **({"tooltip": portable(inp.tooltip)} if inp.tooltip else {})}
        entry["outputs"] = {}
        for index, out in enumerate(schema.outputs or []):
            text = {}
            if out.display_name:
                text["name"] = out.display_name
            if out.tooltip:
                text["tooltip"] = portable(out.tooltip)
            if text:
                entry["outputs"][str(index)] = text
        defs[node_id] = entry
        for segment in (schema.category or "").split("/"):
            if segment and segment not in CORE_SEGMENTS:
                segments[segment] = SEGMENT_LABELS.get(segment, segment)
    return {"main": {"nodeCategories": dict(sorted(segments.items()))}, "nodeDefs": defs}


def load_memory(lang: str) -> dict[str, str]:
    path = TRANSLATIONS / f"{lang}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def strings(tree: object) -> list[str]:
    """Every translatable string in an English locale tree (input ids as names included)."""
    if isinstance(tree, str):
        return [tree]
    if isinstance(tree, dict):
        return [s for v in tree.values() for s in strings(v)]
    return []


def translate(tree: object, memory: dict[str, str], missing: set[str]) -> object:
    if isinstance(tree, str):
        if tree not in memory:
            missing.add(tree)
            return tree
        return memory[tree]
    if isinstance(tree, dict):
        return {k: translate(v, memory, missing) for k, v in tree.items()}
    return tree


def render_all(mappings: dict) -> dict[Path, str]:
    """The text of every locale file; raises MissingTranslations listing what has no translation."""
    en = english(mappings)
    files = {LOCALES / "en" / f"{name}.json": _json(tree) for name, tree in en.items()}
    missing: dict[str, list[str]] = {}
    for lang in LANGUAGES:
        memory, gaps = load_memory(lang), set()
        for name, tree in en.items():
            files[LOCALES / lang / f"{name}.json"] = _json(translate(tree, memory, gaps))
        if gaps:
            missing[lang] = sorted(gaps)
    if missing:
        raise MissingTranslations(missing)
    return files


def unused(mappings: dict) -> dict[str, list[str]]:
    """Translation-memory entries no node uses any more (safe to delete)."""
    used = set(strings(english(mappings)))
    return {lang: sorted(set(load_memory(lang)) - used) for lang in LANGUAGES}


def stale(mappings: dict) -> list[str]:
    """Locale files that are missing or differ from what :func:`render_all` makes now."""
    return [str(p.relative_to(ROOT)) for p, text in render_all(mappings).items()
            if not p.is_file() or p.read_text(encoding="utf-8") != text]


def _json(tree: object) -> str:
    return json.dumps(tree, indent=2, ensure_ascii=False) + "\n"


def live_mappings() -> dict:
    """ComfyUI's node classes with this pack loaded through its own loader (in this process)."""
    from headless.locate import locate_comfyui
    from headless.testbed import base as hc

    base = hc.make_base(Path(tempfile.mkdtemp(prefix="sg_locales_")), standin_nodes=False)
    hc.configure_comfy(locate_comfyui(), base)
    hc.init_nodes()
    import nodes

    return nodes.NODE_CLASS_MAPPINGS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="only report; exit 1 when anything is out of date")
    mode.add_argument("--todo", action="store_true", help="print untranslated strings as JSON to fill in")
    args = ap.parse_args()
    mappings = live_mappings()
    try:
        files = render_all(mappings)
    except MissingTranslations as e:
        if args.todo:
            print(json.dumps({lang: {t: "" for t in texts} for lang, texts in e.missing.items()}, indent=2, ensure_ascii=False))
            return 1
        for lang, texts in e.missing.items():
            print(f"{len(texts)} string(s) have no {lang} translation in scripts/translations/{lang}.json:")
            for t in texts:
                print(f"  {t!r}")
        print("run: .venv/bin/python scripts/gen_locales.py --todo   (a JSON skeleton to fill in)")
        return 1
    for lang, texts in unused(mappings).items():
        if texts:
            print(f"note: {len(texts)} {lang} translation(s) are no longer used (delete them): {texts[:5]}")
    if args.check or args.todo:
        problems = [str(p.relative_to(ROOT)) for p, text in files.items()
                    if not p.is_file() or p.read_text(encoding="utf-8") != text]
        print("\n".join(f"{p} is out of date" for p in problems) or "locale files are current")
        return 1 if problems else 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print("wrote", path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
