"""The shipped workflows on the server side: files, images, stand-in models, validation, twins."""

from __future__ import annotations

import json
import math
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
# STYLE_GUIDANCE_WORKFLOWS: another folder of editor files (with api/ and images/ beside them), for development.
WORKFLOWS_DIR = Path(os.environ.get("STYLE_GUIDANCE_WORKFLOWS", REPO_ROOT / "workflows"))


def ui_workflows() -> list[Path]:
    """Editor-format files in ``workflows/`` (API-format files there are not workflows to open)."""
    found = []
    for path in sorted(WORKFLOWS_DIR.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found.append(path)  # unreadable: let the test report it
            continue
        if isinstance(data, dict) and isinstance(data.get("nodes"), list):
            found.append(path)
    return found


def twin_path(ui_file: Path) -> Path:
    return ui_file.parent / "api" / ui_file.name


def _tiny_models():
    """The stand-in model writer (``headless.testbed.standins.install``), imported from the repository root."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.append(str(REPO_ROOT))  # appended: ComfyUI's own top-level modules must win
    from headless.testbed.standins import install as tiny_models

    return tiny_models


def install_models(models_dir: Path, api_prompt: dict) -> list[str]:
    """Tiny random-weight files under every model file name the prompt uses."""
    return _tiny_models().install_for_workflow(models_dir, api_prompt)


def tiny_overrides(api_prompt: dict) -> dict[str, dict]:
    """Widget changes that let a real workflow run on the stand-ins in seconds."""
    return _tiny_models().tiny_overrides(api_prompt)


# -- the server ---------------------------------------------------------------------------------


def http_json(url: str, payload: dict | None = None, timeout: float = 60.0) -> tuple[int, Any]:
    """GET (no payload) or POST JSON; return (HTTP status, decoded JSON or text), errors included."""
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        return status, body.decode(errors="replace")


def validate_on_server(url: str, prompt: dict) -> dict:
    """POST the prompt to ``/prompt`` (the server's validator) without letting it run.

    ComfyUI has no validate-only request: a valid prompt is queued. It is deleted from the
    queue at once, and if the worker already picked it up it is interrupted (repeatedly,
    until it leaves the running list), so at most its first node runs; then it is removed
    from the history.
    Returns ``{"status", "node_errors", "error"}`` as ``/prompt`` answered.
    """
    prompt_id = f"sg-browser-validate-{uuid.uuid4()}"
    status, body = http_json(url + "/prompt", {"prompt": prompt, "prompt_id": prompt_id, "client_id": "sg-browser-test"})
    body = body if isinstance(body, dict) else {"error": body}
    if status == 200:
        http_json(url + "/queue", {"delete": [prompt_id]})
        deadline = time.time() + 120
        while time.time() < deadline:
            _, queue = http_json(url + "/queue")
            running = [item[1] for item in (queue or {}).get("queue_running", [])]
            pending = [item[1] for item in (queue or {}).get("queue_pending", [])]
            if prompt_id in pending:
                http_json(url + "/queue", {"delete": [prompt_id]})
            elif prompt_id not in running:
                http_json(url + "/history", {"delete": [prompt_id]})  # no "failed job" left in the editor's queue panel
                break
            else:
                http_json(url + "/interrupt", {"prompt_id": prompt_id})
            time.sleep(0.1)
    return {"status": status, "node_errors": body.get("node_errors") or {}, "error": body.get("error")}


def wait_for_history(url: str, prompt_id: str, timeout: float) -> dict:
    """Poll ``/history/<id>`` until the prompt finished; return its entry."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        _, hist = http_json(url + f"/history/{prompt_id}")
        if isinstance(hist, dict) and prompt_id in hist:
            entry = hist[prompt_id]
            if entry.get("status", {}).get("completed") or entry.get("status", {}).get("status_str") == "error":
                return entry
        time.sleep(0.5)
    _, queue = http_json(url + "/queue")
    raise TimeoutError(f"prompt {prompt_id} not finished after {timeout:.0f} s; queue: {json.dumps(queue)[:2000]}")


def execution_error(entry: dict) -> str | None:
    """ComfyUI's own execution error of a history entry, shortened, or None."""
    status = entry.get("status", {})
    if status.get("status_str") != "error":
        return None
    for kind, data in status.get("messages", []):
        if kind in ("execution_error", "execution_interrupted"):
            where = "".join((data.get("traceback") or [])[-6:])
            return (f"{kind} in node {data.get('node_id')} ({data.get('node_type')}): "
                    f"{data.get('exception_type')}: {data.get('exception_message')}\n{where}")
    return json.dumps(status)[:3000]


def format_node_errors(node_errors: dict, error: Any = None) -> str:
    lines = []
    if error:
        lines.append(f"error: {json.dumps(error)[:1500]}")
    for node_id, err in sorted(node_errors.items()):
        for e in err.get("errors", []):
            lines.append(f"  #{node_id} {err.get('class_type')}: {e.get('message')}: {e.get('details')}")
    return "\n".join(lines)


# -- comparing with the API twin ------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _link(value: Any) -> Any:
    """[node id, slot] with the id as a string (the editor writes strings, files may not)."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int) and isinstance(value[0], (str, int)):
        return [str(value[0]), value[1]]
    return value


def prompt_differences(frontend: dict, twin: dict, other: str = "the twin") -> list[str]:
    """Where ``twin`` differs from the editor's export: node ids, class_type, inputs (not ``_meta``)."""
    diffs = []
    ids_f, ids_t = {str(k) for k in frontend}, {str(k) for k in twin}
    if ids_f - ids_t:
        diffs.append(f"nodes only in the editor's export: {sorted(ids_f - ids_t, key=_id_key)}")
    if ids_t - ids_f:
        diffs.append(f"nodes only in {other}: {sorted(ids_t - ids_f, key=_id_key)}")
    twin = {str(k): v for k, v in twin.items()}
    for node_id in sorted(ids_f & ids_t, key=_id_key):
        f, t = frontend[node_id], twin[node_id]
        if f.get("class_type") != t.get("class_type"):
            diffs.append(f"#{node_id}: class_type {f.get('class_type')!r} in the editor, {t.get('class_type')!r} in {other}")
            continue
        fi = {k: _link(v) for k, v in (f.get("inputs") or {}).items()}
        ti = {k: _link(v) for k, v in (t.get("inputs") or {}).items()}
        for name in sorted(fi.keys() | ti.keys()):
            if name not in ti:
                diffs.append(f"#{node_id} {f['class_type']}.{name}: {fi[name]!r} in the editor, missing in {other}")
            elif name not in fi:
                diffs.append(f"#{node_id} {f['class_type']}.{name}: missing in the editor, {ti[name]!r} in {other}")
            elif not _same(fi[name], ti[name]):
                diffs.append(f"#{node_id} {f['class_type']}.{name}: {fi[name]!r} in the editor, {ti[name]!r} in {other}")
    return diffs


def _id_key(node_id: str) -> tuple:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


# -- the repo's own converter on the editor's save --------------------------------------------------

_DEFS: dict[str, Any] = {}


def convert_with_repo(url: str, saved: dict) -> dict:
    """The repo's UI -> API converter (``headless.workflow.ui_to_api``) applied to ``saved``.

    Node definitions come from the server's ``/object_info``, as the editor's do.
    """
    if str(REPO_ROOT) not in sys.path:
        sys.path.append(str(REPO_ROOT))
    from headless.workflow import defs_from_object_info, ui_to_api

    if url not in _DEFS:
        _, info = http_json(url + "/object_info", timeout=120)
        _DEFS[url] = defs_from_object_info(info)
    return ui_to_api(saved, _DEFS[url])
