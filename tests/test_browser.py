"""The shipped workflows in ComfyUI's real editor: headless Chromium driven by Playwright.

For every editor-format file in ``workflows/``, opened in the editor the way a user does
(``app.loadGraphData``), require that:

- the frontend knows every node type (its own missing-nodes list, ``LiteGraph.registered_node_types``
  and the placeholder nodes it creates all agree there are none);
- every combo widget holds one of its choices (a file value on the wrong widget shows up here);
- the server's ``/prompt`` validator accepts the editor's own export (``app.graphToPrompt()``);
  the prompt is dequeued or interrupted at once, so at most its first node runs;
- the repo's API twin ``workflows/api/<name>.json`` equals that export (node ids, class_type,
  inputs; ``_meta`` ignored), and so does the repo's converter applied to the editor's own save.

Then ``style_transfer_fast`` is queued for real with the editor's Run button, on tiny stand-in
models (``headless.testbed.standins``), and must save an image that the editor also receives.

Every node of the pack is shown in a small graph (``browser.doc_graphs``), and its help pages
(English and Traditional Chinese) and their picture must be served where the editor fetches
them. Last, the editor is switched to Traditional Chinese once: a node's title and input
labels must be the pack's translations.

Artifacts: ``test-artifacts/browser/<workflow>.png`` (each loaded graph, the whole editor),
``fit_view/<workflow>.png`` and ``fit_view_zoom.json`` (the editor's Fit view of each, and its zoom),
``zh-TW/style_transfer_fast.png``, ``nodes/<NodeId>.png`` (only the graph),
``zh-TW/<NodeId>.png``, ``<workflow>-after-run.png`` and ``console.log`` (console
errors/warnings, page errors, failed requests). ``scripts/gen_pictures.py`` turns them into
the committed pictures. Any uncaught JavaScript error (``pageerror``) fails the test it happens in.

Needs Debian's chromium and the playwright package (``scripts/install_browser.sh``);
skipped without them unless ``STYLE_GUIDANCE_REQUIRE_BROWSER=1`` (CI), which makes it fail.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from browser import doc_graphs
from browser import workflows as wf
from browser.chromium import CHROMIUM, LAUNCH_ARGS, missing_reason

from headless.testbed.base import PACK_DIRNAME

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "browser"
RUN_WORKFLOW = "style_transfer_fast"
RUN_TIMEOUT_S = float(os.environ.get("STYLE_GUIDANCE_BROWSER_RUN_TIMEOUT", "300"))
VIEWPORT = {"width": 1920, "height": 1200}
# Settings a user would have after the first visit: no templates browser, no release pop-ups.
# Missing *models* are the server validator's business here (stand-ins are installed later).
SETTINGS = {
    "Comfy.TutorialCompleted": True,
    "Comfy.Workflow.ShowMissingModelsWarning": False,
    "Comfy.Workflow.ShowMissingNodesWarning": True,
    "Comfy.Validation.Workflows": True,
    "Comfy.Notification.ShowVersionUpdates": False,
    # Screenshots: full detail at any zoom (no low-detail rendering), no minimap over the graph.
    "LiteGraph.Canvas.MinFontSizeForLOD": 0,
    "Comfy.Minimap.Visible": False,
    "Comfy.Graph.CanvasInfo": False,  # no render statistics in the corner of screenshots
}

PACK_DIR = PACK_DIRNAME  # the pack's folder in custom_nodes
PACK_URL = f"/extensions/{PACK_DIR}"  # where ComfyUI serves the pack's WEB_DIRECTORY (web/)
_STATUS_JS = "async (url) => (await fetch(url)).status"

_reason = missing_reason()
if _reason:
    if os.environ.get("STYLE_GUIDANCE_REQUIRE_BROWSER"):
        raise RuntimeError(_reason + " (STYLE_GUIDANCE_REQUIRE_BROWSER is set)")
    pytest.skip(_reason, allow_module_level=True)

WORKFLOW_FILES = wf.ui_workflows()


@pytest.fixture(scope="module")
def editor(comfy_server, comfy_base, tmp_path_factory):
    """The editor, served by the session's ComfyUI, in one headless Chromium page."""
    from browser.editor import ComfyEditor
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    status, _ = wf.http_json(comfy_server.url + "/settings", SETTINGS)
    assert status == 200, f"POST /settings answered {status}"
    # No copy of the sample images here: the pack put them in the fresh input/ as ComfyUI loaded it,
    # and the Run button test below opens them from there.

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS, viewport=VIEWPORT,
            service_workers="block",
        )
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(60_000)
        ed = ComfyEditor(page, comfy_server.url, ARTIFACTS / "console.log")
        try:
            ed.open()
            yield ed
        finally:
            ed.close()
            context.close()


def _no_page_errors(editor, since: int) -> None:
    new = editor.page_errors[since:]
    assert not new, "uncaught JavaScript errors in the editor (see test-artifacts/browser/console.log):\n" + "\n".join(new)


def _load(editor, path: Path, screenshot: Path | None = None) -> dict:
    """Open a workflow file in the editor; fail listing every node type the frontend lacks."""
    data = json.loads(path.read_text(encoding="utf-8"))
    result = editor.load(data, path.name)
    if screenshot:  # before the checks: shows the editor's missing-nodes dialog, if any
        editor.fit_and_screenshot(screenshot)
    detail = result["detail"]
    assert not result["missing"], (
        f"{path.name}: the editor has no node type(s) {', '.join(result['missing'])} "
        f"(not registered: {detail['unregistered']}; frontend's missing-nodes list: {detail['reported']}; "
        f"placeholder nodes: {detail['placeholders']}). Is the pack loaded (see test-artifacts/comfyui-server.log)?"
    )
    assert detail["reported"] is not None, "the editor's afterConfigureGraph hook did not run: frontend changed?"
    assert detail["loaded"] == detail["expected"], f"{path.name}: {detail['expected']} nodes in the file, {detail['loaded']} in the editor"
    return data


@pytest.mark.skipif(not WORKFLOW_FILES, reason=f"no editor-format workflows in {wf.WORKFLOWS_DIR}")
@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=[p.stem for p in WORKFLOW_FILES])
def test_workflow_opens_validates_and_matches_its_twin(editor, comfy_server, comfy_base, path):
    errors_before = len(editor.page_errors)
    editor.context = path.stem
    _load(editor, path, screenshot=ARTIFACTS / f"{path.stem}.png")
    problems: list[str] = []  # everything wrong with this workflow, reported together

    bad = editor.bad_combo_values()
    if bad:
        problems.append("widget values that are not among the widget's choices (a value from the file on the "
                        "wrong widget, e.g. widgets_values shifted by a widget the editor adds?):\n  " + "\n  ".join(bad))

    prompt = editor.export_prompt()
    assert prompt, f"{path.name}: the editor exported an empty prompt"
    wf.install_models(comfy_base / "models", prompt)
    answer = wf.validate_on_server(comfy_server.url, prompt)
    if answer["status"] != 200 or answer["node_errors"]:
        problems.append(f"the server rejected the editor's prompt (POST /prompt: HTTP {answer['status']}):\n"
                        + wf.format_node_errors(answer["node_errors"], answer["error"]))

    # The template browser's card: /api/workflow_templates/<pack folder>/<name>.jpg next to the file.
    thumb = f"/api/workflow_templates/{PACK_DIR}/{path.stem}.jpg"
    status = editor.page.evaluate(_STATUS_JS, thumb)
    if status != 200:
        problems.append(f"{thumb}: HTTP {status} (workflows/{path.stem}.jpg missing? see scripts/gen_pictures.py)")

    twin = wf.twin_path(path)
    if not twin.is_file():
        problems.append(f"no API twin {twin} (run: .venv/bin/python scripts/workflows.py export)")
    else:
        diffs = wf.prompt_differences(prompt, json.loads(twin.read_text(encoding="utf-8")))
        if diffs:
            problems.append(f"the API twin api/{twin.name} differs from the editor's export (app.graphToPrompt):\n  "
                            + "\n  ".join(diffs))

    # Users edit workflows in the editor and save them: the repo's converter must read that save too.
    try:
        diffs = wf.prompt_differences(prompt, wf.convert_with_repo(comfy_server.url, editor.saved_workflow()),
                                         other="the converter's output")
    except Exception as e:  # noqa: BLE001 - report the converter's own error
        diffs = [f"{type(e).__name__}: {e}"]
    if diffs:
        problems.append("headless.workflow.ui_to_api on the editor's own save of this workflow differs from the "
                        "editor's export:\n  " + "\n  ".join(diffs))

    assert not problems, f"{path.name}:\n" + "\n".join(f"- {p}" for p in problems)
    _no_page_errors(editor, errors_before)


# Fit-to-view must leave every workflow readable: at the editor's "Fit view" (1920x1200 window,
# side bar closed) node titles and widget text are drawn at 14 px x zoom; below 0.5 they are under
# 7 px and cannot be read, so each workflow must fit at 50 % or more.
MIN_FIT_VIEW_ZOOM = 0.5


def test_every_workflow_is_readable_at_fit_to_view(editor):
    """The editor's own Fit view of each workflow lands at MIN_FIT_VIEW_ZOOM or more."""
    errors_before = len(editor.page_errors)
    zooms = {}
    for path in WORKFLOW_FILES:
        editor.context = f"{path.stem} (fit view)"
        _load(editor, path)
        zooms[path.stem] = round(editor.fit_view_scale(), 3)
        editor.fit_and_screenshot(ARTIFACTS / "fit_view" / f"{path.stem}.png")
    (ARTIFACTS / "fit_view_zoom.json").write_text(json.dumps(zooms, indent=2) + "\n", encoding="utf-8")
    print("\nfit-to-view zoom:", json.dumps(zooms, indent=1))
    small = {k: v for k, v in zooms.items() if v < MIN_FIT_VIEW_ZOOM}
    assert not small, (f"fit-to-view zoom under {MIN_FIT_VIEW_ZOOM:.0%} (too many nodes, or spread too far, to read "
                       f"without zooming): {small}; screenshots in test-artifacts/browser/fit_view/")
    _no_page_errors(editor, errors_before)


_I18N_JS = """(key) => {
  const provides = document.getElementById('vue-app')?.__vue_app__?._context?.provides || {};
  for (const s of Object.getOwnPropertySymbols(provides)) {
    const v = provides[s];
    if (typeof v?.global?.t === 'function') return v.global.t(key);
  }
  return null;
}"""


def test_template_browser_lists_the_starter_first_under_the_packs_name(editor):
    """The editor's own template list (api.getWorkflowTemplates, what its browser shows) after web/js/templates.js."""
    errors_before = len(editor.page_errors)
    editor.context = "template browser"
    names = editor.page.evaluate("async (f) => (await window.comfyAPI.api.api.getWorkflowTemplates())[f] || null",
                                 PACK_DIR)
    index = json.loads((wf.REPO_ROOT / "web" / "templates.json").read_text(encoding="utf-8"))
    assert names == index["order"], names  # every shipped workflow, the starter first
    label = editor.page.evaluate(_I18N_JS, f"templateWorkflows.category.{PACK_DIR}")
    assert label == "Style Guidance", label
    _no_page_errors(editor, errors_before)


def test_fast_workflow_runs_from_the_run_button(editor, comfy_server, comfy_base):
    path = wf.WORKFLOWS_DIR / f"{RUN_WORKFLOW}.json"
    assert path.is_file(), f"{path} is missing: it is the workflow the browser test runs"
    errors_before = len(editor.page_errors)
    editor.context = f"{RUN_WORKFLOW} (run)"
    _load(editor, path)

    # Stand-in models under the workflow's file names; then the few widget values the
    # stand-ins need (tiny open_clip architecture, small size, few steps), set in the editor.
    wf.install_models(comfy_base / "models", editor.export_prompt())
    changes = wf.tiny_overrides(editor.export_prompt())
    problems = editor.set_widgets(changes)
    assert not problems, f"could not set widget values {changes}: {problems}"
    prompt = editor.export_prompt()
    for node_id, values in changes.items():
        for name, value in values.items():
            assert prompt[node_id]["inputs"][name] == value, f"#{node_id}.{name} not changed in the export"

    start = time.monotonic()
    answer = editor.click_run()
    assert answer["status"] == 200 and not answer.get("node_errors"), (
        f"the server rejected the prompt queued by the Run button (HTTP {answer['status']}):\n"
        + wf.format_node_errors(answer.get("node_errors") or {}, answer.get("error"))
    )
    prompt_id = answer["prompt_id"]
    entry = wf.wait_for_history(comfy_server.url, prompt_id, RUN_TIMEOUT_S)
    seconds = time.monotonic() - start
    err = wf.execution_error(entry)
    assert err is None, f"{RUN_WORKFLOW} failed on the server (log: {comfy_server.log_path}):\n{err}"

    save_nodes = {k for k, v in prompt.items() if v["class_type"] == "SaveImage"}
    images = [img for node_id in save_nodes for img in entry.get("outputs", {}).get(node_id, {}).get("images", [])]
    assert images, f"no SaveImage output in the history of {prompt_id}: {json.dumps(entry.get('outputs'))[:2000]}"
    for img in images:
        file = comfy_base / "output" / img.get("subfolder", "") / img["filename"]
        assert file.is_file() and file.stat().st_size > 0, f"{file} was not written"
    print(f"\n{RUN_WORKFLOW}: queued by the Run button, finished in {seconds:.1f} s, saved {[i['filename'] for i in images]}")

    try:  # the result also reached the page: the editor's own websocket "executed" message
        editor.wait_for_output_images(sorted(save_nodes))
    except Exception as e:  # noqa: BLE001 - playwright's TimeoutError, reworded
        keys = editor.page.evaluate("() => Object.keys(window.app.nodeOutputs || {})")
        pytest.fail(f"the server saved {images} but the editor never showed it (nodeOutputs has {keys}): {e}")
    editor.page.wait_for_timeout(300)  # the preview is drawn on the next frames
    editor.fit_and_screenshot(ARTIFACTS / f"{RUN_WORKFLOW}-after-run.png")
    _no_page_errors(editor, errors_before)




def _object_info(comfy_server) -> dict:
    status, info = wf.http_json(comfy_server.url + "/object_info", timeout=120)
    assert status == 200 and isinstance(info, dict), f"GET /object_info answered {status}"
    return info


def test_every_node_in_a_small_graph_with_its_help_pages(editor, comfy_server):
    """Each node loads in a small graph (its help-page picture) and its help pages are served."""
    errors_before = len(editor.page_errors)
    info = _object_info(comfy_server)
    node_ids = doc_graphs.pack_nodes(info)
    assert len(node_ids) >= 12, node_ids
    problems = []
    for node_id in node_ids:
        editor.context = f"help picture {node_id}"
        result = editor.load(doc_graphs.build(info, node_id), f"{node_id}.json")
        if result["missing"]:
            problems.append(f"{node_id}: the editor lacks {result['missing']}")
            continue
        editor.graph_screenshot(ARTIFACTS / "nodes" / f"{node_id}.png")
        # The URLs the editor's help panel fetches (docs/<id>/<locale>.md, else docs/<id>.md;
        # images relative to docs/).
        for rel in (f"docs/{node_id}.md", f"docs/{node_id}/zh-TW.md", f"docs/{node_id}/graph.png"):
            status = editor.page.evaluate(_STATUS_JS, f"{PACK_URL}/{rel}")
            if status != 200:
                problems.append(f"web/{rel}: HTTP {status} (missing? pictures: scripts/gen_pictures.py)")
    assert not problems, "\n".join(problems)
    _no_page_errors(editor, errors_before)


_NODE_TEXT_JS = """(type) => {
  const node = window.app.graph.nodes.find(n => n.type === type);
  if (!node) return null;
  return {title: node.title,
          inputs: Object.fromEntries((node.inputs || []).map(i => [i.name, i.localized_name || i.label || i.name])),
          widgets: Object.fromEntries((node.widgets || []).map(w => [w.name, w.label || w.name]))};
}"""


_WORKFLOW_TEXT_JS = """() => ({
  titles: Object.fromEntries(window.app.graph.nodes.map(n => [String(n.id), n.title])),
  groups: (window.app.graph.groups || window.app.graph._groups || []).map(g => g.title),
  notes: window.app.graph.nodes.filter(n => n.type === 'MarkdownNote').map(n => n.widgets[0].value),
})"""


def test_editor_in_traditional_chinese(editor, comfy_server):
    """Switched to zh-TW once: a node's title, an input label and a widget label are the pack's translations."""
    node_id = "StyleGuidanceZeCon"
    expected = json.loads((wf.REPO_ROOT / "locales" / "zh-TW" / "nodeDefs.json").read_text(encoding="utf-8"))[node_id]
    info = _object_info(comfy_server)
    errors_before = len(editor.page_errors)
    editor.context = "zh-TW"
    try:
        editor.set_locale("zh-TW")
        editor.load(doc_graphs.build(info, node_id), "zh-TW.json")
        shown = editor.page.evaluate(_NODE_TEXT_JS, node_id)
        editor.graph_screenshot(ARTIFACTS / "zh-TW" / f"{node_id}.png")
        # A shipped workflow, opened in zh-TW: its own titles, groups and note in one language.
        _load(editor, wf.WORKFLOWS_DIR / f"{RUN_WORKFLOW}.json")
        editor.page.wait_for_timeout(500)  # web/js/workflow_i18n.js translates after the graph is configured
        texts = editor.page.evaluate(_WORKFLOW_TEXT_JS)
        editor.fit_and_screenshot(ARTIFACTS / "zh-TW" / f"{RUN_WORKFLOW}.png")
    finally:
        editor.set_locale("en")
    assert shown, f"no {node_id} node in the loaded graph"
    assert shown["title"] == expected["display_name"], shown
    assert shown["inputs"]["content"] == expected["inputs"]["content"]["name"], shown
    assert shown["widgets"]["weight"] == expected["inputs"]["weight"]["name"], shown
    table = json.loads((wf.REPO_ROOT / "web" / "workflow_i18n" / "zh-TW.json").read_text(encoding="utf-8"))
    english = json.loads((wf.WORKFLOWS_DIR / f"{RUN_WORKFLOW}.json").read_text(encoding="utf-8"))
    want = {str(n["id"]): table["titles"].get(n["title"], n["title"]) for n in english["nodes"] if n.get("title")}
    assert {k: texts["titles"].get(k) for k in want} == want, texts["titles"]
    assert "內容圖片" in want.values()
    assert sorted(texts["groups"]) == sorted(table["titles"][g["title"]] for g in english["groups"]), texts["groups"]
    note = next(n["widgets_values"][0] for n in english["nodes"] if n["type"] == "MarkdownNote")
    assert texts["notes"] == [table["notes"][note]], texts["notes"][:1]
    _no_page_errors(editor, errors_before)
