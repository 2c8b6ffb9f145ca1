"""The runner's workflow: load and check a file, find the nodes it changes, make each pair's prompt.

Loading checks everything that needs no node definitions (JSON, finite numbers, the editor or
API shape, links, model file names), so a broken file ends the run before ComfyUI starts.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backend import SetupError
from .workflow import NodeDef, WorkflowError, check_api, check_api_outputs, check_ui, ui_to_api

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS_DIR = REPO_ROOT / "workflows"
CONTENT_TITLE, STYLE_TITLE = "content image", "style image"
VIDEO_CONTENT_TITLE = "content video"  # a video workflow's content: a Load Video node of this title
CONTENT_INPUT = {"LoadImage": "image", "LoadVideo": "file"}  # the input that names the content's file
MEASURE_CLASS = "StyleGuidanceMeasure"
TAP_CLASS = "PreviewAny"  # core node that shows any value as text in its ui output
TAP_PREFIX = "sg_runner_json_"


@dataclass
class Workflow:
    name: str
    path: Path
    ui: dict | None  # editor-format graph (embedded in the PNGs), None for API-format files
    api: dict | None = None  # filled once node definitions are known
    defs: dict[str, NodeDef] | None = None


def shipped_workflows() -> list[str]:
    return sorted(p.stem for p in WORKFLOWS_DIR.glob("*.json"))


def _first_non_finite(value: Any, where: str) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return where
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for k, v in items:
        found = _first_non_finite(v, f"{where}[{k!r}]" if isinstance(k, str) else f"{where}[{k}]")
        if found:
            return found
    return None


def load_workflow(arg: str) -> Workflow:
    """Read a workflow file (or a shipped workflow's name) and check all that needs no ComfyUI."""
    path = Path(arg).expanduser()
    if not path.is_file():
        shipped = WORKFLOWS_DIR / (arg if arg.endswith(".json") else arg + ".json")
        if "/" not in arg and shipped.is_file():
            path = shipped
        else:
            raise SetupError(f"workflow {arg!r}: no such file, and not a shipped workflow "
                             f"(shipped: {', '.join(shipped_workflows())})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise SetupError(f"workflow {path}: not readable JSON ({e})") from e
    if not isinstance(data, dict):
        raise SetupError(f"workflow {path}: expected a JSON object")
    bad = _first_non_finite(data, "")
    if bad:
        raise SetupError(f"workflow {path}: the value at {bad} is NaN or infinite (not valid JSON); "
                         "set a finite number there")
    try:
        if "nodes" in data:
            check_ui(data)
            return Workflow(path.stem, path.resolve(), data)
        if isinstance(data.get("prompt"), dict):  # {"prompt": {...}} as /prompt takes it
            data = data["prompt"]
        bad_entries = [k for k, v in data.items() if not (isinstance(v, dict) and "class_type" in v)]
        if bad_entries or not data:
            raise SetupError(f"workflow {path}: neither an editor-format workflow (no 'nodes') nor an API-format "
                             f"prompt (entries without class_type: {', '.join(map(str, bad_entries[:5])) or 'none'})")
        check_api(data)
    except WorkflowError as e:
        raise SetupError(f"workflow {path}: {e}") from e
    wf = Workflow(path.stem, path.resolve(), None, data)
    check_model_names(wf)
    return wf


def convert(wf: Workflow, defs: dict[str, NodeDef]) -> None:
    """Fill ``wf.api`` (editor format -> API format with the node definitions) and check it."""
    wf.defs = defs
    try:
        if wf.ui is not None:
            wf.api = ui_to_api(wf.ui, defs)
            check_api(wf.api)
        else:
            missing = sorted({n["class_type"] for n in wf.api.values() if n["class_type"] not in defs})
            if missing:
                raise SetupError(f"workflow {wf.path}: node types not installed: {', '.join(missing)} (install "
                                 "the custom nodes that provide them)", show_log=True)
        check_api_outputs(wf.api, defs)
    except WorkflowError as e:
        raise SetupError(f"workflow {wf.path}: {e}", show_log="not installed" in str(e)) from e
    check_model_names(wf)
    image_nodes(wf.api)  # fail now, not once per pair


def check_model_names(wf: Workflow) -> None:
    """Refuse model file names that would reach outside their models folder (absolute, '..')."""
    from .testbed.standins.names import model_files, unsafe_model_name

    bad = [(nid, inp, name) for nid, inp, name, _folder in model_files(wf.api) if unsafe_model_name(name)]
    if bad:
        lines = "; ".join(f"node {nid} input '{inp}': {name!r}" for nid, inp, name in bad)
        raise SetupError(f"workflow {wf.path}: model file names must be relative paths inside their models "
                         f"folder (no absolute paths, no '..'): {lines}")


def title(node: dict) -> str:
    return str((node.get("_meta") or {}).get("title") or node.get("class_type"))


def content_is_video(wf: Workflow) -> bool:
    """Whether the workflow's content is a clip: a LoadVideo node titled 'Content video' (checked before conversion)."""
    if wf.ui is not None:
        nodes = [(n.get("type"), n.get("title") or n.get("type")) for n in wf.ui.get("nodes", []) if isinstance(n, dict)]
    else:
        nodes = [(n.get("class_type"), title(n)) for n in (wf.api or {}).values()]
    return any(kind == "LoadVideo" and str(name).strip().lower() == VIDEO_CONTENT_TITLE for kind, name in nodes)


def image_nodes(api: dict) -> tuple[str, str]:
    """The node ids that take the content (LoadImage, or a video workflow's LoadVideo) and the style image (by title)."""
    loads = {nid: n for nid, n in api.items() if n.get("class_type") == "LoadImage"}
    videos = {nid: n for nid, n in api.items() if n.get("class_type") == "LoadVideo"
              and title(n).strip().lower() == VIDEO_CONTENT_TITLE}
    found = {}
    for role in (CONTENT_TITLE, STYLE_TITLE):
        ids = [nid for nid, n in loads.items() if title(n).strip().lower() == role]
        if role == CONTENT_TITLE and videos:
            ids += list(videos)
        if len(ids) != 1:
            raise SetupError(
                f"the workflow needs exactly one LoadImage node titled '{role.capitalize()}' (found {len(ids)}; "
                f"LoadImage nodes: {', '.join(f'{k} {title(v)!r}' for k, v in loads.items()) or 'none'}; a video "
                f"workflow's content is one LoadVideo node titled 'Content video'). "
                "Rename the nodes in the editor (right click > Title), or give API files a _meta.title.")
        found[role] = ids[0]
    return found[CONTENT_TITLE], found[STYLE_TITLE]


def _is_value(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def seed_inputs(api: dict) -> list[tuple[str, str]]:
    """(node id, input) of every sampler seed: 'noise_seed' anywhere, 'seed' on *Sampler* nodes."""
    out = []
    for nid, node in api.items():
        inputs = node.get("inputs", {})
        for name in ("seed", "noise_seed"):
            if name in inputs and _is_value(inputs[name]) and (
                    name == "noise_seed" or "sampler" in node.get("class_type", "").lower()):
                out.append((nid, name))
    return out


def scale_inputs(api: dict) -> list[tuple[str, str]]:
    """(node id, 'scale') of every Style Guidance node with a guidance scale widget."""
    return [(nid, "scale") for nid, n in api.items()
            if n.get("class_type", "").startswith("StyleGuidance") and _is_value(n.get("inputs", {}).get("scale"))]


def id_key(nid: str) -> tuple:
    """Sort key for node ids: numbers in numeric order, then the others."""
    return (0, int(nid), "") if str(nid).isdigit() else (1, 0, str(nid))


def measure_nodes(api: dict) -> dict[str, str]:
    """{node id: title} of every StyleGuidanceMeasure node, in id order."""
    ids = sorted((nid for nid, n in api.items() if n.get("class_type") == MEASURE_CLASS), key=id_key)
    return {nid: title(api[nid]) for nid in ids}


def json_output_index(defs: dict[str, NodeDef]) -> int:
    """Which output of the Measure node carries its JSON (by name; 1 in every version so far)."""
    d = defs.get(MEASURE_CLASS)
    names = [n.lower() for n in d.output_names] if d else []
    return names.index("json") if "json" in names else 1


def measure_taps(api: dict, defs: dict[str, NodeDef]) -> dict[str, dict]:
    """Extra nodes that show each Measure node's JSON output in /history (for server mode)."""
    if TAP_CLASS not in defs:
        return {}
    index = json_output_index(defs)
    return {f"{TAP_PREFIX}{nid}": {"class_type": TAP_CLASS, "inputs": {"source": [nid, index]},
                                    "_meta": {"title": f"runner: loss terms of node {nid} as JSON"}}
            for nid in measure_nodes(api)}


def merge(*changes: dict) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for ch in changes:
        for nid, values in ch.items():
            out.setdefault(str(nid), {}).update(values)
    return out


def apply_api(api: dict, changes: dict) -> dict:
    """A copy of ``api`` with ``{node id: {input: value}}`` set (links are never replaced)."""
    new = copy.deepcopy(api)
    for nid, values in changes.items():
        if nid in new:
            for k, v in values.items():
                if not isinstance(new[nid]["inputs"].get(k), list):
                    new[nid]["inputs"][k] = v
    return new


def effective(api: dict, where: list[tuple[str, str]]) -> Any:
    """The one value these inputs share, or {node id: value} when they differ (None if none)."""
    values = {nid: api[nid]["inputs"][k] for nid, k in where}
    distinct = set(values.values())
    return next(iter(distinct)) if len(distinct) == 1 else (values or None)
