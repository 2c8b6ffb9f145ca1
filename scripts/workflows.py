"""The shipped workflows: write the editor files, generate their API twins, check the twins.

    .venv/bin/python scripts/workflows.py export   # workflows/api/<name>.json from workflows/<name>.json
    .venv/bin/python scripts/workflows.py check    # exit 1 if a twin is missing or stale
    .venv/bin/python scripts/workflows.py build    # rewrite the editor files from sg_workflow_defs/, then export

The editor files (``workflows/*.json``) are what users open and what ComfyUI's template
browser lists. Edit them in the editor and run ``export``, or edit the definitions in
``scripts/sg_workflow_defs/`` and run ``build``. The API twins are what "Export (API)" writes; they are generated here by
:func:`headless.workflow.ui_to_api` from ComfyUI's own node definitions, never by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # appended: ComfyUI's own top-level `nodes` must win

if str(ROOT / "scripts") not in sys.path:
    sys.path.append(str(ROOT / "scripts"))
from sg_workflow_defs import DEFINITIONS, i18n  # noqa: E402
from sg_workflow_defs.templates import index as template_index  # noqa: E402

from headless.workflow import NodeDef, UIGraph, ui_to_api  # noqa: E402

WORKFLOWS = ROOT / "workflows"
API_DIR = WORKFLOWS / "api"
TEMPLATE_INDEX = ROOT / "web" / "templates.json"  # the template browser's order (web/js/templates.js)

# Node-pack properties the editor records on each node of a saved workflow (what ComfyUI-Manager
# and the template browser read to say which pack, at which version, a node needs): the
# registry id and version of this pack (pyproject.toml), and "comfy-core" at the ComfyUI
# release the workflows are built and tested with.
PACK_ID = re.search(r'^name = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)
PACK_VERSION = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)
CORE_ID, CORE_VERSION = "comfy-core", "0.3.75"


def with_pack_properties(data: dict, defs: dict[str, NodeDef]) -> dict:
    """Add ``cnr_id``/``ver`` to every node that comes from a node pack (frontend-only nodes, e.g. Note, get none)."""
    for node in data["nodes"]:
        if node["type"].startswith("StyleGuidance"):
            pack = {"cnr_id": PACK_ID, "ver": PACK_VERSION}
        elif node["type"] in defs:
            pack = {"cnr_id": CORE_ID, "ver": CORE_VERSION}
        else:
            continue
        node["properties"] = {**pack, **node["properties"]}
    return data


# This pack's node names end in "(Style Guidance)": its nodes are drawn wider so the editor
# shows the whole name, and the columns are spaced for them.
COLUMN_WIDTH, PACK_NODE_WIDTH = 420, 370


def widen_pack_nodes(data: dict) -> dict:
    for node in data["nodes"]:
        if node["type"].startswith("StyleGuidance"):
            node["size"] = [max(node["size"][0], PACK_NODE_WIDTH), node["size"][1]]
    return data


def build(name: str, defs: dict[str, NodeDef]) -> str:
    """The editor file text of one definition."""
    g = UIGraph(defs)
    g.COLUMN_WIDTH = COLUMN_WIDTH
    DEFINITIONS[name](g)
    return render(widen_pack_nodes(with_pack_properties(g.to_json(), defs)))


def ui_files() -> list[Path]:
    """The editor-format workflows shipped in ``workflows/``."""
    return sorted(p for p in WORKFLOWS.glob("*.json"))


def twin_path(ui_file: Path) -> Path:
    return API_DIR / ui_file.name


def render(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def export(defs: dict[str, NodeDef]) -> dict[Path, str]:
    """The API twin text of every shipped editor file."""
    return {twin_path(f): render(ui_to_api(json.loads(f.read_text()), defs)) for f in ui_files()}


def stale_twins(defs: dict[str, NodeDef]) -> list[str]:
    """Twins that are missing or differ from what :func:`export` generates now."""
    problems = [f"{p.relative_to(ROOT)} is out of date" for p, text in export(defs).items()
                if not p.is_file() or p.read_text() != text]
    expected = {twin_path(f) for f in ui_files()}
    problems += [f"{p.relative_to(ROOT)} has no editor file" for p in API_DIR.glob("*.json") if p not in expected]
    return problems


def load_defs() -> dict[str, NodeDef]:
    """Node definitions from a real ComfyUI with this pack loaded (in this process)."""
    from headless.locate import locate_comfyui
    from headless.testbed import base as hc
    from headless.workflow import defs_in_process

    base = hc.make_base(Path(tempfile.mkdtemp(prefix="sg_workflows_")), standin_nodes=False)
    hc.configure_comfy(locate_comfyui(), base)
    hc.init_nodes()
    return defs_in_process()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["export", "check", "build"])
    args = ap.parse_args()
    defs = load_defs()
    if args.command == "build":
        for name in DEFINITIONS:
            (WORKFLOWS / f"{name}.json").write_text(build(name, defs))
            print(f"wrote workflows/{name}.json")
        TEMPLATE_INDEX.write_text(render(template_index()))
        print(f"wrote {TEMPLATE_INDEX.relative_to(ROOT)}")
        shipped = [json.loads(f.read_text()) for f in ui_files()]
        i18n.WEB.mkdir(exist_ok=True)
        for lang in i18n.LANGUAGES:
            table, missing = i18n.table(shipped, lang)
            (i18n.WEB / f"{lang}.json").write_text(render(table))
            print(f"wrote web/workflow_i18n/{lang}.json" + (f" ({len(missing)} texts untranslated: see "
                                                             f"scripts/translations/workflows.{lang}.json)" if missing else ""))
    if args.command in ("build", "export"):
        API_DIR.mkdir(exist_ok=True)
        for path, text in export(defs).items():
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    problems = stale_twins(defs)
    for p in problems:
        print(p)
    print("API twins are current" if not problems else "run: .venv/bin/python scripts/workflows.py export")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
