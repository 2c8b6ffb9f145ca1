"""Editor-format (UI) workflows: build them from Python, and convert them to API prompts.

The editor saves a graph as nodes with ``widgets_values`` (a flat list of widget values in
the order the node's inputs are declared, plus the extra values the editor adds, such as
the "control after generate" choice after a seed) and links by slot. ComfyUI's server
only accepts API prompts (``{id: {"class_type", "inputs"}}``), which the editor writes
with "Export (API)". :func:`ui_to_api` does that conversion from the node definitions, so
the runner can take the same files users share, and the repo can generate each shipped
workflow's API twin instead of writing it by hand. :class:`UIGraph` writes UI files.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# Editor-only nodes: never sent to the server.
VIRTUAL_TYPES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
MODE_ALWAYS, MODE_NEVER, MODE_BYPASS = 0, 2, 4
# Widgets the editor itself adds to some core nodes, after those of the node definition; it saves
# them in widgets_values and sends them with the prompt (the server ignores them).
EDITOR_WIDGETS: dict[str, tuple[tuple[str, Any], ...]] = {"PreviewAny": (("preview", ""),),
                                                          "LoadVideo": (("video-preview", ""),)}
# Nodes the editor draws an image or text inside: the layout leaves room for it (px).
# (a video preview is as wide as the node, so a landscape clip needs less height than a picture)
PREVIEW_HEIGHT = {"LoadImage": 300, "SaveImage": 300, "PreviewImage": 300, "PreviewAny": 150, "LoadVideo": 200,
                  "SaveVideo": 300}


class WorkflowError(ValueError):
    """A workflow file that cannot be converted; the message names the node and the input."""


@dataclass
class InputDef:
    name: str
    type: str
    options: dict
    widget: bool
    extra_defaults: tuple = ()  # values the editor stores after this widget's own (seed control, upload)

    @property
    def extra_values(self) -> int:
        return len(self.extra_defaults)


@dataclass
class NodeDef:
    """What the converter needs of a node class: its inputs in order and its outputs."""

    inputs: list[InputDef]
    outputs: list[str]
    output_names: list[str]

    @property
    def widgets(self) -> list[InputDef]:
        return [i for i in self.inputs if i.widget]


def _input_def(name: str, spec: Any) -> InputDef:
    kind = spec[0] if isinstance(spec, (list, tuple)) and spec else spec
    options = spec[1] if isinstance(spec, (list, tuple)) and len(spec) > 1 and isinstance(spec[1], dict) else {}
    type_name = "COMBO" if isinstance(kind, (list, tuple)) else str(kind)
    widget = type_name in WIDGET_TYPES and not options.get("forceInput", False)
    # an upload button saves "image" after the file's name, a video's too (as ComfyUI's own templates show)
    upload = options.get("image_upload") or options.get("video_upload")
    extra = (("fixed",) if has_control_widget(name, type_name, options) else ()) + (("image",) if upload else ())
    return InputDef(name, type_name, options, widget, extra if widget else ())


def has_control_widget(name: str, type_name: str, options: dict) -> bool:
    """Whether the editor adds a "control after generate" value after this widget's own.

    Declared by the node, or (when it does not say) any INT input named seed/noise_seed,
    which the editor treats as a seed.
    """
    declared = options.get("control_after_generate")
    if declared is not None:
        return bool(declared)
    return type_name == "INT" and name in ("seed", "noise_seed")


def node_def(input_types: dict, outputs: list | tuple, output_names: list | tuple | None) -> NodeDef:
    """A :class:`NodeDef` from ``INPUT_TYPES()`` (or object_info's "input") and the outputs."""
    inputs = [_input_def(n, s) for section in ("required", "optional") for n, s in (input_types.get(section) or {}).items()]
    outs = [str(getattr(o, "value", o)) if not isinstance(o, (list, tuple)) else "COMBO" for o in outputs]
    names = list(output_names) if output_names else outs
    return NodeDef(inputs, outs, [str(n) for n in names])


def widget_slots(d: NodeDef) -> Iterator[tuple[InputDef, int]]:
    """Each widget input of ``d`` with its index in an editor node's ``widgets_values``.

    The one place that knows the layout: a widget's own value, then the values the editor adds
    after it (seed control, upload button). The editor's own extra widgets of some core nodes
    (``EDITOR_WIDGETS``) follow the last one.
    """
    pos = 0
    for inp in d.widgets:
        yield inp, pos
        pos += 1 + inp.extra_values


def widget_count(d: NodeDef) -> int:
    """How many values an editor node of this definition saves before ``EDITOR_WIDGETS``."""
    return sum(1 + inp.extra_values for inp in d.widgets)


def defs_in_process() -> dict[str, NodeDef]:
    """Definitions of every node ComfyUI has loaded in this process (call after init_nodes)."""
    from .testbed.base import node_classes

    defs = {}
    for name, cls in node_classes().items():
        try:
            defs[name] = node_def(cls.INPUT_TYPES(), cls.RETURN_TYPES, getattr(cls, "RETURN_NAMES", None))
        except Exception:  # noqa: BLE001 - a broken third-party node must not stop the others
            continue
    return defs


def defs_from_object_info(info: dict) -> dict[str, NodeDef]:
    """Definitions from a server's ``GET /object_info`` answer."""
    return {name: node_def(d.get("input", {}), d.get("output", []), d.get("output_name")) for name, d in info.items()}


# --------------------------------------------------------------------------------------------
# UI -> API


def _node_label(node: dict) -> str:
    title = node.get("title")
    return f"node {node.get('id')} ({node.get('type')}{', ' + repr(title) if title else ''})"


def _link_tuple(link: Any) -> tuple | None:
    """(id, origin id, origin slot, target id, target slot) of a link entry, or None if malformed."""
    if isinstance(link, dict):  # the editor's newer link layout
        link = [link.get("id"), link.get("origin_id"), link.get("origin_slot"), link.get("target_id"),
                link.get("target_slot")]
    if not isinstance(link, (list, tuple)) or len(link) < 5:
        return None
    lid, origin, oslot, target, tslot = link[:5]
    if not (_is_int(lid) and _is_id(origin) and _is_int(oslot) and _is_id(target) and _is_int(tslot)):
        return None
    return lid, str(origin), oslot, str(target), tslot


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_id(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, str)) and str(v) != ""


def check_ui(workflow: Any) -> None:
    """Check the shape of an editor-format workflow (no node definitions needed).

    Raises :class:`WorkflowError` naming the node, input or link that is malformed or dangling,
    so a broken file is refused before ComfyUI starts instead of failing inside the conversion.
    """
    if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
        raise WorkflowError("not an editor-format workflow: no 'nodes' list")
    raw_links = workflow.get("links", [])
    if not isinstance(raw_links, list):
        raise WorkflowError("'links' is not a list")
    ids: set[str] = set()
    for i, node in enumerate(workflow["nodes"]):
        if not isinstance(node, dict):
            raise WorkflowError(f"nodes[{i}] is not an object")
        if not _is_id(node.get("id")):
            raise WorkflowError(f"nodes[{i}] has no usable 'id' (got {node.get('id')!r})")
        if not isinstance(node.get("type"), str) or not node["type"]:
            raise WorkflowError(f"node {node['id']} has no 'type'")
        if str(node["id"]) in ids:
            raise WorkflowError(f"node id {node['id']} is used twice")
        ids.add(str(node["id"]))
        if "mode" in node and not _is_int(node["mode"]):
            raise WorkflowError(f"{_node_label(node)}: 'mode' is not a number")
        if node.get("widgets_values") is not None and not isinstance(node["widgets_values"], (list, dict)):
            raise WorkflowError(f"{_node_label(node)}: 'widgets_values' is neither a list nor an object")
        inputs = node.get("inputs") or []
        if not isinstance(inputs, list) or not all(isinstance(x, dict) and isinstance(x.get("name"), str)
                                                   for x in inputs):
            raise WorkflowError(f"{_node_label(node)}: 'inputs' must be a list of {{name, link}} objects")
        if node["type"] == "Reroute" and inputs and inputs[0].get("link") is not None and not _is_int(inputs[0]["link"]):
            raise WorkflowError(f"{_node_label(node)}: its input link is not a link id")
    links = {}
    for i, raw in enumerate(raw_links):
        link = _link_tuple(raw)
        if link is None:
            raise WorkflowError(f"links[{i}] is malformed (expected [id, origin node, origin slot, target node, "
                                f"target slot, type]; got {str(raw)[:80]})")
        links[link[0]] = link
    for node in workflow["nodes"]:
        for inp in node.get("inputs") or []:
            lid = inp.get("link")
            if lid is None:
                continue
            where = f"{_node_label(node)} input '{inp['name']}'"
            if not _is_int(lid):
                raise WorkflowError(f"{where}: link {lid!r} is not a link id")
            if lid not in links:
                raise WorkflowError(f"{where}: link {lid} is not in the workflow's link list (a dangling link; "
                                    "reconnect the input in the editor)")
            if links[lid][1] not in ids:
                raise WorkflowError(f"{where}: link {lid} comes from node {links[lid][1]}, which is not in the "
                                    "workflow (a dangling link; reconnect the input in the editor)")


def check_api(prompt: Any) -> None:
    """Check the shape of an API-format prompt: every node has a class and inputs, every link a source.

    Raises :class:`WorkflowError` naming the node and input.
    """
    if not isinstance(prompt, dict) or not prompt:
        raise WorkflowError("an API-format prompt must be a non-empty object of nodes")
    for nid, node in prompt.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise WorkflowError(f"node {nid}: no 'class_type'")
        label = f"node {nid} ({node['class_type']})"
        if not isinstance(node.get("inputs"), dict):
            raise WorkflowError(f"{label}: no 'inputs' object (write \"inputs\": {{}} for a node without inputs)")
        for name, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and _is_id(value[0]) and not isinstance(value[0], bool):
                if str(value[0]) not in prompt:
                    raise WorkflowError(f"{label} input '{name}': linked to node {value[0]}, which is not in the "
                                        "prompt (a dangling link)")
                if not _is_int(value[1]) or value[1] < 0:
                    raise WorkflowError(f"{label} input '{name}': link {value} has no valid output slot")


def check_api_outputs(prompt: dict, defs: dict[str, NodeDef]) -> None:
    """Every link of an API prompt names an output slot its source node has (needs the definitions)."""
    for nid, node in prompt.items():
        for name, value in node["inputs"].items():
            if not (isinstance(value, list) and len(value) == 2 and str(value[0]) in prompt and _is_int(value[1])):
                continue
            src = prompt[str(value[0])]["class_type"]
            d = defs.get(src)
            if d is not None and value[1] >= len(d.outputs):
                raise WorkflowError(f"node {nid} ({node['class_type']}) input '{name}': node {value[0]} ({src}) has "
                                    f"{len(d.outputs)} output(s), no output slot {value[1]}")


def ui_to_api(workflow: dict, defs: dict[str, NodeDef]) -> dict[str, dict]:
    """Convert an editor-format workflow to an API prompt, as the editor's Export (API) does.

    The workflow's shape is checked first (:func:`check_ui`); any other malformed value still
    ends in a :class:`WorkflowError`, never a bare TypeError/KeyError.
    """
    check_ui(workflow)
    try:
        return _ui_to_api(workflow, defs)
    except WorkflowError:
        raise
    except (TypeError, KeyError, IndexError, ValueError, AttributeError) as e:
        raise WorkflowError(f"malformed editor workflow ({type(e).__name__}: {e})") from e


def _ui_to_api(workflow: dict, defs: dict[str, NodeDef]) -> dict[str, dict]:
    nodes_by_id = {str(n["id"]): n for n in workflow["nodes"]}
    links = {}
    for raw in workflow.get("links", []):
        lid, origin, oslot, _target, _tslot = _link_tuple(raw)
        links[lid] = (origin, oslot)

    missing = sorted({n["type"] for n in workflow["nodes"] if n["type"] not in VIRTUAL_TYPES and n["type"] not in defs})
    if missing:
        raise WorkflowError(f"node types not installed: {', '.join(missing)} (install the custom nodes that provide them)")

    def source(link_id: int | None, depth: int = 0) -> Any:
        """What a link delivers: [node id, slot], a primitive's value, or None (muted)."""
        if link_id is None or link_id not in links:
            return None
        if depth > 64:
            raise WorkflowError("link cycle through reroute/bypassed nodes")
        origin_id, slot = links[link_id]
        origin = nodes_by_id.get(origin_id)
        if origin is None:
            return None
        kind, mode = origin["type"], origin.get("mode", MODE_ALWAYS)
        if kind == "Reroute":
            return source((origin.get("inputs") or [{}])[0].get("link"), depth + 1)
        if kind == "PrimitiveNode":
            return {"value": (origin.get("widgets_values") or [None])[0]}
        if mode == MODE_NEVER:
            return None
        if mode == MODE_BYPASS:
            out_type = defs[kind].outputs[slot] if slot < len(defs[kind].outputs) else None
            ins = origin.get("inputs") or []
            # The editor passes through the input at the same slot if its type fits, else the first that fits.
            order = ([ins[slot]] if slot < len(ins) else []) + ins
            for cand in order:
                if cand.get("link") is not None and cand.get("type") == out_type:
                    return source(cand["link"], depth + 1)
            return None
        return [origin_id, slot]

    prompt: dict[str, dict] = {}
    for node in sorted(workflow["nodes"], key=lambda n: n.get("order", 0)):
        kind = node["type"]
        if kind in VIRTUAL_TYPES or node.get("mode", MODE_ALWAYS) in (MODE_NEVER, MODE_BYPASS):
            continue
        d = defs[kind]
        linked = {i["name"]: i.get("link") for i in node.get("inputs") or [] if i.get("link") is not None}
        values = list(node.get("widgets_values") or [])
        if isinstance(node.get("widgets_values"), dict):  # some nodes save widgets by name
            values = [node["widgets_values"].get(w.name) for w in d.widgets]
        slots = dict((inp.name, pos) for inp, pos in widget_slots(d))
        inputs: dict[str, Any] = {}
        for inp in d.inputs:
            pos = slots.get(inp.name)
            value: Any = values[pos] if pos is not None and pos < len(values) else None
            if inp.name in linked:
                got = source(linked[inp.name])
                value = got["value"] if isinstance(got, dict) else got
            if value is not None:
                inputs[inp.name] = value
        pos = widget_count(d)
        for name, default in EDITOR_WIDGETS.get(kind, ()):
            inputs[name] = values[pos] if pos < len(values) else default
            pos += 1
        prompt[str(node["id"])] = {
            "inputs": inputs,
            "class_type": kind,
            "_meta": {"title": node.get("title") or kind},
        }
    return prompt


def set_widget_values(workflow: dict, defs: dict[str, NodeDef], changes: dict[str, dict]) -> dict:
    """A copy of an editor workflow with ``{node id: {input: value}}`` written into its widgets.

    Inputs that are links in the editor, and nodes or inputs the definitions do not know, are
    left alone.
    """
    new = copy.deepcopy(workflow)
    by_id = {str(n.get("id")): n for n in new.get("nodes", []) if isinstance(n, dict)}
    for nid, values in changes.items():
        node = by_id.get(str(nid))
        d = defs.get(node.get("type")) if node else None
        if d is None:
            continue
        widgets = node.get("widgets_values")
        if isinstance(widgets, dict):
            widgets.update({k: v for k, v in values.items() if k in widgets})
            continue
        if not isinstance(widgets, list):
            continue
        for inp, pos in widget_slots(d):
            if inp.name in values and pos < len(widgets):
                widgets[pos] = values[inp.name]
    return new


# --------------------------------------------------------------------------------------------
# Building UI files


@dataclass
class UINode:
    """A node being placed in a :class:`UIGraph`; ``node[i]`` is its output slot ``i``."""

    id: int
    type: str
    title: str | None
    pos: list[float]
    size: list[float]
    inputs: list[dict] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)
    widgets_values: list = field(default_factory=list)
    mode: int = MODE_ALWAYS

    def __getitem__(self, slot: int) -> tuple[UINode, int]:
        return (self, slot)


class UIGraph:
    """Writes editor-format workflows whose widget layout matches the node definitions."""

    COLUMN_WIDTH = 380

    def __init__(self, defs: dict[str, NodeDef]) -> None:
        self.defs = defs
        self.nodes: list[UINode] = []
        self.links: list[list] = []
        self.groups: list[dict] = []
        self._column_y: dict[int, float] = {}

    def _place(self, column: int, height: float) -> list[float]:
        y = self._column_y.get(column, 60.0)
        self._column_y[column] = y + height + 40
        return [40.0 + column * self.COLUMN_WIDTH, y]

    def note(self, text: str, column: int, title: str = "Read me", width: float = 340, height: float = 260) -> UINode:
        """A Markdown note (editor-only; never sent to the server)."""
        node = UINode(len(self.nodes) + 1, "MarkdownNote", title, self._place(column, height), [width, height])
        node.widgets_values = [text]
        self.nodes.append(node)
        return node

    def add(self, kind: str, column: int, title: str | None = None, **values: Any) -> UINode:
        """Place a node; keyword values are widget values or ``other_node[slot]`` links."""
        if kind not in self.defs:
            raise WorkflowError(f"unknown node type {kind}")
        d = self.defs[kind]
        unknown = set(values) - {i.name for i in d.inputs}
        if unknown:
            raise WorkflowError(f"{kind} has no input(s) {sorted(unknown)}")
        n_widgets = len(d.widgets)
        n_slots = max(len(d.inputs) - n_widgets, len(d.outputs))
        height = 30 + 22 * n_slots + 26 * n_widgets
        height += PREVIEW_HEIGHT.get(kind, 0)
        node = UINode(len(self.nodes) + 1, kind, title, self._place(column, height), [320, height])
        for slot, (out_type, out_name) in enumerate(zip(d.outputs, d.output_names, strict=True)):
            node.outputs.append({"name": out_name, "type": out_type, "links": [], "slot_index": slot})
        for inp in d.inputs:
            value = values.get(inp.name)
            is_link = isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], UINode)
            if inp.widget:
                default = inp.options.get("default")
                if default is None and inp.type == "COMBO":
                    options = inp.options.get("options") or []
                    default = options[0] if options else ""
                node.widgets_values += [default if value is None or is_link else value, *inp.extra_defaults]
                if is_link:
                    node.inputs.append({"name": inp.name, "type": inp.type, "widget": {"name": inp.name}, "link": None})
            else:  # the editor lists every connection input, optional ones too
                node.inputs.append({"name": inp.name, "type": inp.type, "link": None})
            if is_link:
                self._connect(value[0], value[1], node, inp.name)
        node.widgets_values += [default for _name, default in EDITOR_WIDGETS.get(kind, ())]
        self.nodes.append(node)
        return node

    def _connect(self, origin: UINode, slot: int, target: UINode, input_name: str) -> None:
        if slot >= len(origin.outputs):
            raise WorkflowError(f"{origin.type} has no output slot {slot}")
        link_id = len(self.links) + 1
        out_type = origin.outputs[slot]["type"]
        target_slot = next(i for i, e in enumerate(target.inputs) if e["name"] == input_name)
        target.inputs[target_slot]["link"] = link_id
        origin.outputs[slot]["links"].append(link_id)
        self.links.append([link_id, origin.id, slot, target.id, target_slot, out_type])

    def group(self, title: str, members: list[UINode], color: str = "#3f789e") -> None:
        """A coloured frame around ``members`` (purely visual)."""
        x0 = min(n.pos[0] for n in members) - 20
        y0 = min(n.pos[1] for n in members) - 50
        x1 = max(n.pos[0] + n.size[0] for n in members) + 20
        y1 = max(n.pos[1] + n.size[1] for n in members) + 20
        self.groups.append({"title": title, "bounding": [x0, y0, x1 - x0, y1 - y0], "color": color, "font_size": 24})

    def to_json(self) -> dict:
        """The workflow as the editor saves it (schema version 0.4)."""
        order = self._topological_order()
        out_nodes = []
        for node in self.nodes:
            entry: dict[str, Any] = {
                "id": node.id, "type": node.type, "pos": node.pos, "size": node.size, "flags": {},
                "order": order[node.id], "mode": node.mode, "inputs": node.inputs,
                "outputs": [{**o, "links": o["links"] or None} for o in node.outputs],
                "properties": {"Node name for S&R": node.type},
                "widgets_values": node.widgets_values,
            }
            if node.title:
                entry["title"] = node.title
            out_nodes.append(entry)
        return {
            "last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": out_nodes,
            "links": self.links, "groups": self.groups, "config": {}, "extra": {"ds": {"scale": 0.6, "offset": [0, 0]}},
            "version": 0.4,
        }

    def _topological_order(self) -> dict[int, int]:
        deps = {n.id: {link[1] for link in self.links if link[3] == n.id} for n in self.nodes}
        order: dict[int, int] = {}
        while len(order) < len(self.nodes):
            ready = [i for i in sorted(deps) if i not in order and deps[i] <= set(order)]
            if not ready:
                raise WorkflowError("the graph has a cycle")
            for i in ready:
                order[i] = len(order)
        return order
