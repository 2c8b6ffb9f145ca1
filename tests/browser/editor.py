"""ComfyUI's editor (the ``comfyui-frontend-package`` web app) in a Playwright page.

Everything goes through the frontend's own JavaScript objects, as a user's clicks would:
``window.app`` (the ComfyApp: ``loadGraphData``, ``graphToPrompt``), ``window.LiteGraph``
(``registered_node_types``: the node types the frontend got from the server's
``/object_info``) and the Run button.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

# The app is usable once it has registered the server's node definitions ...
_READY_JS = """() => {
  const app = window.app, LG = window.LiteGraph;
  return !!(app && app.graph && app.canvas && LG && LG.registered_node_types
            && 'KSampler' in LG.registered_node_types);
}"""
# ... and loaded its first graph (a fresh profile gets the default graph; loading ours
# before that finishes would race with it).
_FIRST_GRAPH_JS = """() => window.app.graph.nodes.length > 0"""

# The frontend's own list of missing node types: loadGraphData passes it to every
# extension's afterConfigureGraph hook (the same list its "missing nodes" dialog shows).
_HOOK_JS = """() => {
  if (window.__sgHooked) return;
  window.__sgHooked = true;
  window.__sgMissingReported = null;
  window.app.registerExtension({
    name: 'StyleGuidance.BrowserTest',
    afterConfigureGraph(missing) {
      window.__sgMissingReported = (missing || []).map(
        m => typeof m === 'string' ? m : (m.type + (m.hint ? ' (' + m.hint + ')' : '')));
    },
  });
}"""

_LOAD_JS = """async ([wf, name]) => {
  const LG = window.LiteGraph, app = window.app;
  const subgraphs = (wf.definitions && wf.definitions.subgraphs) || [];
  const subgraphIds = new Set(subgraphs.map(s => s.id));
  const types = new Set();
  for (const n of wf.nodes || []) types.add(n.type);
  for (const sg of subgraphs) for (const n of sg.nodes || []) types.add(n.type);
  const unregistered = [...types].filter(t => !(t in LG.registered_node_types) && !subgraphIds.has(t)).sort();
  window.__sgMissingReported = null;
  await app.loadGraphData(wf, true, true, name);
  const placeholders = app.graph.nodes
    .filter(n => n.has_errors || !(n.type in LG.registered_node_types))
    .map(n => n.type + ' (#' + n.id + ')');
  return {unregistered, reported: window.__sgMissingReported, placeholders,
          loaded: app.graph.nodes.length, expected: (wf.nodes || []).length};
}"""

# Combo widgets whose value is not one of their options: a value from the file that landed on
# the wrong widget (e.g. a widget the editor adds, such as "control after generate"), or a
# choice the server no longer offers.
_BAD_COMBOS_JS = """() => {
  const bad = [];
  for (const node of window.app.graph.nodes) {
    for (const w of node.widgets || []) {
      if (w.type !== 'combo') continue;
      let values = w.options && w.options.values;
      if (typeof values === 'function') { try { values = values(w, node); } catch (e) { continue; } }
      if (!Array.isArray(values) || !values.length || values.includes(w.value)) continue;
      const shown = values.slice(0, 6).map(v => JSON.stringify(v)).join(', ') + (values.length > 6 ? ', ...' : '');
      bad.push('#' + node.id + ' ' + node.type + ' "' + w.name + '" = ' + JSON.stringify(w.value) + ' (choices: ' + shown + ')');
    }
  }
  return bad;
}"""

_SERIALIZE_JS = """() => window.app.graph.serialize()"""

_FIT_JS = """async () => {
  try { await window.app.extensionManager.command.execute('Comfy.Canvas.FitView'); return true; }
  catch (e) { return String(e); }
}"""

_EXPORT_JS = """async () => (await window.app.graphToPrompt()).output"""

_SET_WIDGETS_JS = """(changes) => {
  const errors = [];
  for (const [id, values] of Object.entries(changes)) {
    const node = window.app.graph.getNodeById(Number(id)) ?? window.app.graph.getNodeById(id);
    if (!node) { errors.push('no node #' + id); continue; }
    for (const [name, value] of Object.entries(values)) {
      const w = (node.widgets || []).find(w => w.name === name);
      if (!w) { errors.push(node.type + ' #' + id + ' has no widget ' + name); continue; }
      w.value = value;
      if (w.callback) w.callback(value, window.app.canvas, node);
    }
  }
  window.app.graph.setDirtyCanvas(true, true);
  return errors;
}"""

_FRAMES_JS = """() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"""

# Where the loaded graph's nodes are on the page (CSS px), title bars included.
_GRAPH_BOX_JS = """() => {
  const app = window.app, c = app.canvas, ds = c.ds, rect = c.canvas.getBoundingClientRect();
  const title = window.LiteGraph.NODE_TITLE_HEIGHT || 30;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const n of app.graph.nodes) {
    x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - title);
    x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]);
  }
  const s = ds.scale, o = ds.offset;
  return {x: rect.left + (x0 + o[0]) * s, y: rect.top + (y0 + o[1]) * s, width: (x1 - x0) * s, height: (y1 - y0) * s};
}"""

_FOCUS_MODE_JS = """async (on) => {
  const ws = window.app.extensionManager.workspace;
  if (ws && typeof ws.focusMode === 'boolean' && ws.focusMode !== on) {
    await window.app.extensionManager.command.execute('Workspace.ToggleFocusMode');
  }
  return ws ? ws.focusMode : null;
}"""


class ComfyEditor:
    """One editor page; console messages and page errors are logged to ``console_log``."""

    def __init__(self, page: Any, url: str, console_log: Path) -> None:
        self.page = page
        self.url = url
        self.page_errors: list[str] = []
        self.context = "start-up"  # written in front of every console line
        self._log = open(console_log, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)
        page.on("requestfailed", self._on_request_failed)

    # -- logging -------------------------------------------------------------------------
    def _write(self, kind: str, text: str) -> None:
        if self._log.closed:  # events of the closing browser after the test ended
            return
        self._log.write(f"[{time.strftime('%H:%M:%S')}] [{self.context}] {kind}: {text}\n")
        self._log.flush()

    def _on_console(self, msg: Any) -> None:
        if msg.type in ("error", "warning"):
            loc = msg.location or {}
            where = f" ({loc.get('url')}:{loc.get('lineNumber')})" if loc.get("url") else ""
            self._write(f"console.{msg.type}", msg.text + where)

    def _on_page_error(self, err: Any) -> None:
        text = f"{getattr(err, 'name', '')}: {getattr(err, 'message', err)}\n{getattr(err, 'stack', '') or ''}".strip()
        self.page_errors.append(f"[{self.context}] {text}")
        self._write("pageerror", text)

    def _on_request_failed(self, request: Any) -> None:
        self._write("requestfailed", f"{request.method} {request.url}: {request.failure}")

    def close(self) -> None:
        self._log.close()

    # -- page ----------------------------------------------------------------------------
    def open(self, timeout_s: float = 120.0) -> None:
        # No "Nodes 2.0" banner over the canvas (a fresh profile shows it once).
        self.page.add_init_script("try { localStorage.setItem('vueNodesBannerDismissed', 'true') } catch (e) {}")
        self.page.goto(self.url, wait_until="domcontentloaded", timeout=timeout_s * 1000)
        self.page.wait_for_function(_READY_JS, timeout=timeout_s * 1000, polling=250)
        try:
            self.page.wait_for_function(_FIRST_GRAPH_JS, timeout=15_000, polling=250)
        except Exception:  # noqa: BLE001 - a frontend that starts with an empty graph is fine too
            self._write("note", "no start-up graph after 15 s; going on")
        self.page.evaluate(_HOOK_JS)
        self.close_dialogs()

    def close_dialogs(self) -> None:
        """Dismiss whatever dialog is open (missing nodes, templates, ...)."""
        for _ in range(3):
            if not self.page.locator("[role=dialog]:visible").count():
                return
            self.page.keyboard.press("Escape")
            self.page.wait_for_timeout(200)

    def load(self, workflow: dict, name: str) -> dict:
        """Load an editor-format workflow as the editor's "Open" does; report missing node types.

        Returns ``{"missing": [...], "detail": {...}}``: ``missing`` joins three views of the
        same fact: types absent from ``LiteGraph.registered_node_types`` before loading, the list
        the frontend hands its extensions (what its missing-nodes dialog shows), and nodes that
        came out of ``graph.configure`` as error placeholders.
        """
        self.close_dialogs()
        detail = self.page.evaluate(_LOAD_JS, [workflow, name])
        missing = sorted(set(detail["unregistered"]) | set(detail["reported"] or [])
                         | {p.split(" (#")[0] for p in detail["placeholders"]})
        return {"missing": missing, "detail": detail}

    def bad_combo_values(self) -> list[str]:
        """Combo widgets of the loaded graph whose value is not among their choices."""
        return self.page.evaluate(_BAD_COMBOS_JS)

    def saved_workflow(self) -> dict:
        """The loaded graph as the editor's Save writes it (``graph.serialize()``)."""
        return self.page.evaluate(_SERIALIZE_JS)

    def fit_and_screenshot(self, path: Path) -> None:
        self.page.evaluate(_FIT_JS)
        self.page.evaluate(_FRAMES_JS)
        self.page.wait_for_timeout(300)  # widgets/images laid out by Vue after the canvas frame
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path))

    def fit_view_scale(self) -> float:
        """The canvas zoom after the editor's own "Fit view" (1.0 = 100 %)."""
        self.page.evaluate(_FIT_JS)
        scale, last = None, -1.0
        for _ in range(20):  # the view animates there (350 ms); read it once it stops moving
            self.page.wait_for_timeout(100)
            scale = float(self.page.evaluate("() => window.app.canvas.ds.scale"))
            if abs(scale - last) < 1e-6:
                break
            last = scale
        return scale

    def graph_screenshot(self, path: Path, margin: int = 24) -> dict:
        """Only the graph: editor menus hidden (focus mode), fitted, clipped to the nodes."""
        self.page.evaluate(_FOCUS_MODE_JS, True)
        try:
            self.page.evaluate(_FIT_JS)
            self.page.evaluate(_FRAMES_JS)
            self.page.wait_for_timeout(400)
            box = self.page.evaluate(_GRAPH_BOX_JS)
            view = self.page.viewport_size
            x0, y0 = max(0, box["x"] - margin), max(0, box["y"] - margin)
            x1 = min(view["width"], box["x"] + box["width"] + margin)
            y1 = min(view["height"], box["y"] + box["height"] + margin)
            clip = {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0}
            path.parent.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(path), clip=clip)
            return clip
        finally:
            self.page.evaluate(_FOCUS_MODE_JS, False)

    def set_locale(self, locale: str) -> None:
        """Switch the editor's language as its settings dialog does, then reload the page.

        Labels follow at once; node titles come from the node definitions the editor
        registers at start-up, so (as for core nodes) they change with the reload.
        """
        self.page.evaluate("async (l) => { await window.app.extensionManager.setting.set('Comfy.Locale', l); }", locale)
        self.page.wait_for_timeout(500)
        self.page.reload(wait_until="domcontentloaded")
        self.page.wait_for_function(_READY_JS, timeout=120_000, polling=250)
        self.page.wait_for_function(_FIRST_GRAPH_JS, timeout=30_000, polling=250)
        self.page.evaluate(_HOOK_JS)
        self.close_dialogs()

    def export_prompt(self) -> dict:
        """The graph as an API prompt, exactly as the frontend queues it (``app.graphToPrompt``)."""
        return self.page.evaluate(_EXPORT_JS)

    def set_widgets(self, changes: dict[str, dict]) -> list[str]:
        """Set widget values on the loaded graph (node id -> {widget: value}); returns problems."""
        return self.page.evaluate(_SET_WIDGETS_JS, changes)

    def wait_for_output_images(self, node_ids: list[str], timeout_s: float = 30.0) -> None:
        """Wait until the editor itself holds output images for one of ``node_ids`` (sent over its websocket)."""
        self.page.wait_for_function(
            "(ids) => ids.some(id => ((window.app.nodeOutputs || {})[id]?.images || []).length > 0)",
            arg=node_ids, timeout=timeout_s * 1000, polling=250,
        )

    def click_run(self, timeout_s: float = 60.0) -> dict:
        """Press the editor's Run button; return the server's answer to the frontend's POST /prompt."""
        button = self.page.get_by_role("button", name="Run", exact=True)
        with self.page.expect_response(
            lambda r: r.request.method == "POST" and r.url.rstrip("/").endswith("/prompt"), timeout=timeout_s * 1000
        ) as answer:
            button.click()
        response = answer.value
        try:
            body = response.json()
        except Exception:  # noqa: BLE001 - keep the raw text for the failure message
            body = {"raw": response.text()}
        return {"status": response.status, **body}
