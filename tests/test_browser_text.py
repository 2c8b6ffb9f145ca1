"""What the editor shows of the pack's text: Measure's scores on the node, the node search order.

Issue 21, items 5 and 7, in ComfyUI's real editor (headless Chromium, the harness of
``tests/test_browser.py``, whose ``editor`` fixture this module shares).

Artifacts: ``test-artifacts/browser/text/measure-scores.png`` and ``search-<query>.png``.
"""

from __future__ import annotations

import json

import pytest
from browser import doc_graphs
from test_browser import (
    ARTIFACTS,
    _no_page_errors,
    _object_info,
    editor,  # noqa: F401  (the shared fixture; tests naming it are marked F811)
)

pytestmark = pytest.mark.browser

OUT = ARTIFACTS / "text"
MAIN_NODES = ("Guided KSampler (Style Guidance)", "CLIP Style Loss (Style Guidance)", "Gram Style Loss (Style Guidance)")
HELPER_NODES = ("Range Loss (Style Guidance)", "Apply Guidance to Model (Style Guidance)",
                "VGG PatchNCE Content Loss (Style Guidance)", "Invert Latent (Style Guidance)",
                "Guided CFG Guider (Style Guidance)")

_EXECUTED_JS = """([nodeId, text]) => {
  // The websocket message a finished Measure node sends, through the editor's own handler.
  window.app.api.dispatchCustomEvent('executed', {node: String(nodeId), display_node: String(nodeId),
                                                 output: {text: [text]}, prompt_id: 'browser-test'});
}"""

_MEASURE_JS = """(type) => {
  const node = window.app.graph.nodes.find(n => n.type === type);
  if (!node) return null;
  const w = (node.widgets || []).find(w => w.name === 'scores');
  const el = document.querySelector('textarea[aria-label="Style Guidance scores"]');
  const box = el && el.getBoundingClientRect();
  return {id: node.id, widgets: (node.widgets || []).map(w => w.name), value: w ? w.value : null,
          shown: el ? el.value : null, visible: !!(box && box.width > 50 && box.height > 20 && el.offsetParent),
          outputs: (node.outputs || []).length};
}"""


def test_measure_shows_its_scores_on_the_node(editor, comfy_server):  # noqa: F811
    """The text of Measure's ui output appears on the node, one line per term, and is never saved."""
    errors_before = len(editor.page_errors)
    info = _object_info(comfy_server)
    editor.context = "measure scores"
    editor.load(doc_graphs.build(info, "StyleGuidanceMeasure"), "measure.json")
    before = editor.page.evaluate(_MEASURE_JS, "StyleGuidanceMeasure")
    assert before and before["value"] is None, before
    saved_before = next(n for n in editor.saved_workflow()["nodes"] if n["type"] == "StyleGuidanceMeasure")
    text = "VGG PatchNCE: 5.1 · weight 1 (50%) · steers 60%\nGram: 1e-06 · weight 1 (50%) · steers 40%\ntotal: 5.1"
    editor.page.evaluate(_EXECUTED_JS, [before["id"], text])
    editor.page.wait_for_timeout(300)
    after = editor.page.evaluate(_MEASURE_JS, "StyleGuidanceMeasure")
    editor.graph_screenshot(OUT / "measure-scores.png")
    assert after["value"] == text and after["shown"] == text, after  # line breaks kept
    assert after["visible"], "the scores box is not drawn on the node"
    saved_after = next(n for n in editor.saved_workflow()["nodes"] if n["type"] == "StyleGuidanceMeasure")
    assert saved_after.get("widgets_values") == saved_before.get("widgets_values"), "the scores must not be saved"
    prompt = editor.export_prompt()
    assert "scores" not in prompt[str(after["id"])]["inputs"], "the scores box must not become an input"
    _no_page_errors(editor, errors_before)


_OPEN_SEARCH_JS = """() => {
  const c = window.app.canvas.canvas, r = c.getBoundingClientRect();
  return {x: r.left + r.width * 0.5, y: r.top + r.height * 0.5};
}"""

_RESULTS_JS = """() => [...document.querySelectorAll('li.p-autocomplete-option')]
  .map(li => li.innerText.split('\\n')[0].trim())"""


def _search(ed, query: str) -> list[str]:
    """The node search box's result titles for ``query``, in the order shown."""
    page = ed.page
    page.keyboard.press("Escape")
    ed.load({"last_node_id": 0, "last_link_id": 0, "nodes": [], "links": [], "groups": [], "config": {},
                 "extra": {}, "version": 0.4}, "empty.json")
    at = page.evaluate(_OPEN_SEARCH_JS)
    box = page.locator('input[placeholder="Search Nodes..."]:visible').first
    for attempt in range(3):  # on a loaded machine the two clicks can arrive as two single clicks
        page.mouse.dblclick(at["x"], at["y"])  # a double click on the empty canvas opens the search box, focused
        try:
            box.wait_for(state="visible", timeout=5_000)
            break
        except Exception:
            if attempt == 2:
                OUT.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(OUT / "search-box-missing.png"))  # what covered the canvas
                raise
    page.keyboard.type(query)
    page.wait_for_timeout(1000)  # the list updates on input (debounced)
    titles = page.evaluate(_RESULTS_JS)
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / f"search-{query.replace(' ', '_')}.png"))
    page.keyboard.press("Escape")
    page.wait_for_timeout(300)
    return titles


def test_search_lists_the_main_nodes_first(editor):  # noqa: F811
    """Typing "style" in the node search: the sampler and the two style losses before the pack's helpers."""
    errors_before = len(editor.page_errors)
    editor.context = "node search"
    orders = {q: _search(editor, q) for q in ("style", "guidance", "style transfer")}
    print("\n" + json.dumps(orders, indent=1, ensure_ascii=False))
    shown = orders["style"]
    missing = [t for t in (*MAIN_NODES, *HELPER_NODES) if t not in shown]
    assert not missing, f"not listed for 'style': {missing}; shown: {shown}"
    last_main = max(shown.index(t) for t in MAIN_NODES)
    first_helper = min(shown.index(t) for t in HELPER_NODES)
    assert last_main < first_helper, f"'style' lists a helper before a main node: {shown}"
    _no_page_errors(editor, errors_before)


def test_search_finds_the_pack_by_what_it_does(editor, comfy_server):  # noqa: F811
    """"guidance" lists the sampler first of the pack's nodes; "style transfer" does where the editor reads aliases."""
    aliases = "search_aliases" in _object_info(comfy_server)["StyleGuidanceSampler"]
    for query in ("guidance", "style transfer"):
        shown = _search(editor, query)
        ours = [t for t in shown if t.endswith("(Style Guidance)")]
        print(f"\n{query!r}: {shown}")
        if query == "style transfer" and not aliases:
            continue  # no node title says "transfer"; this ComfyUI sends no search aliases (feature-detected)
        assert ours and ours[0] == MAIN_NODES[0], f"{query!r}: {shown}"


_OPEN_HELP_JS = """async (nodeId) => {
  // What the node library's help button does: the library tab, then the node's help page.
  const pinia = document.getElementById('vue-app').__vue_app__.config.globalProperties.$pinia;
  const defs = pinia._s.get('nodeDef'), help = pinia._s.get('nodeHelp');
  const tab = pinia._s.get('sidebarTab');
  if (tab && tab.activeSidebarTabId !== 'node-library') tab.toggleSidebarTab('node-library');
  help.openHelp(defs.nodeDefsByName[nodeId]);
  return !!defs.nodeDefsByName[nodeId];
}"""

_HELP_PAGE_JS = """() => {
  const page = document.querySelector('.node-help-content');
  if (!page) return null;
  const panel = page.getBoundingClientRect();
  const blocks = [...page.querySelectorAll('pre')].map(pre => {
    const box = pre.getBoundingClientRect();
    return {overflowX: getComputedStyle(pre).overflowX, scrollWidth: pre.scrollWidth, clientWidth: pre.clientWidth,
            right: box.right, panelRight: panel.right};
  });
  const links = [...page.querySelectorAll('a')].map(a => a.getAttribute('href'));
  return {blocks, links, text: page.innerText, width: panel.width};
}"""


@pytest.mark.parametrize("node_id", ["StyleGuidanceSampler", "StyleGuidanceGramStyle"])
def test_help_page_formulas_wrap_in_the_panel(editor, node_id):  # noqa: F811
    """Formula lines wrap in the narrow help panel instead of ending at its edge; the page links the docs."""
    errors_before = len(editor.page_errors)
    editor.context = f"help page {node_id}"
    assert editor.page.evaluate(_OPEN_HELP_JS, node_id), f"the editor has no node definition {node_id}"
    editor.page.locator(".node-help-content pre").first.wait_for(state="visible", timeout=15_000)
    editor.page.wait_for_timeout(500)
    shown = editor.page.evaluate(_HELP_PAGE_JS)
    OUT.mkdir(parents=True, exist_ok=True)
    editor.page.screenshot(path=str(OUT / f"help-{node_id}.png"))
    assert shown and shown["blocks"], shown
    # Without the pack's rule the panel (330 px here) cuts the long formula lines at its edge.
    cut = [b for b in shown["blocks"] if b["scrollWidth"] > b["clientWidth"] + 1 or b["right"] > b["panelRight"] + 1]
    assert not cut, f"formula lines cut off at the {shown['width']:.0f} px panel's edge (not wrapped): {cut}"
    assert any(h and h.endswith("#readme") for h in shown["links"]), shown["links"]
    assert any(h and h.endswith("/tree/main/docs") for h in shown["links"]), shown["links"]
    for leak in ("scripts/", "python -m", "old rule"):
        assert leak not in shown["text"], leak
    editor.page.keyboard.press("Escape")
    _no_page_errors(editor, errors_before)
