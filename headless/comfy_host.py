"""A real ComfyUI driven from Python: a private base folder, in-process execution, a server.

Shared by the headless runner, the tests and the benchmarks. The pack is loaded by
ComfyUI's own custom-node loader from ``<base>/custom_nodes`` (a symlink to this
repository), exactly as a user's install would be.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_NODES = REPO_ROOT / "tests" / "harness" / "comfy_test_nodes.py"
PACK_DIRNAME = "style_guidance"


def make_base(base: Path, test_nodes: bool = True) -> Path:
    """Lay out a ComfyUI base directory with this pack (and the test-only nodes) installed."""
    for sub in ("models", "custom_nodes", "input", "output", "temp", "user"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / PACK_DIRNAME
    if not link.exists():
        link.symlink_to(REPO_ROOT, target_is_directory=True)
    if test_nodes:
        shutil.copy(TEST_NODES, base / "custom_nodes" / "sg_test_nodes.py")
    return base


def configure_comfy(comfy_root: Path, base: Path) -> None:
    """Import ComfyUI's settings in this process: CPU only, rooted at ``base``."""
    if str(comfy_root) not in sys.path:
        sys.path.insert(0, str(comfy_root))
    import comfy.options

    comfy.options.enable_args_parsing(False)
    from comfy.cli_args import args

    args.cpu = True
    args.base_directory = str(base)
    args.disable_api_nodes = True
    args.database_url = "sqlite:///:memory:"
    import folder_paths  # noqa: F401  (reads args.base_directory at import)


def init_nodes() -> None:
    """Load built-in and custom nodes with ComfyUI's own loader, as at server start."""
    import nodes

    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))


class _StandInServer:
    """The few attributes PromptExecutor uses of ComfyUI's PromptServer; records messages."""

    def __init__(self) -> None:
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.sockets_metadata: dict = {}
        self.messages: list[tuple[str, Any]] = []

    def send_sync(self, event, data, sid=None) -> None:
        self.messages.append((event, data))


class PromptFailed(AssertionError):
    """A prompt failed validation or execution; the message carries ComfyUI's own error."""


@dataclass
class RunResult:
    """What one in-process prompt run produced."""

    prompt_id: str
    outputs: dict  # ui outputs per node id (as /history reports them)
    messages: list = field(default_factory=list)
    seconds: float = 0.0


class InProcessComfy:
    """Runs API-format prompts with ComfyUI's own validator and executor, in this process."""

    def __init__(self) -> None:
        import execution

        self.server = _StandInServer()
        self.executor = execution.PromptExecutor(
            self.server, cache_type=execution.CacheType.CLASSIC, cache_args={"lru": 0, "ram": 0}
        )

    def validate(self, prompt: dict) -> tuple[bool, Any, list, dict]:
        import execution

        return asyncio.run(execution.validate_prompt(str(uuid.uuid4()), prompt, None))

    def run(self, prompt: dict, outputs: list[str] | None = None, extra_data: dict | None = None) -> RunResult:
        """Validate and execute; raise PromptFailed with ComfyUI's error text on failure.

        ``extra_data`` is passed to the executor as the server does (e.g.
        ``{"extra_pnginfo": {"workflow": ui_workflow}}`` makes SaveImage embed the workflow).
        """
        ok, error, good_outputs, node_errors = self.validate(prompt)
        if not ok:
            raise PromptFailed(f"validation failed: {json.dumps(error)} {json.dumps(node_errors, default=str)}")
        prompt_id = str(uuid.uuid4())
        self.server.messages = []
        start = time.perf_counter()
        self.executor.execute(prompt, prompt_id, {"client_id": "tests", **(extra_data or {})},
                              outputs or good_outputs)
        seconds = time.perf_counter() - start
        if not self.executor.success:
            errors = [m[1] for m in self.executor.status_messages if m[0] == "execution_error"]
            short = [{"node": e.get("node_id"), "type": e.get("node_type"), "error": e.get("exception_type"),
                      "message": e.get("exception_message"), "where": "".join(e.get("traceback", [])[-8:])}
                     for e in errors]
            raise PromptFailed(f"execution failed: {json.dumps(short, indent=1)}")
        return RunResult(prompt_id, self.executor.history_result["outputs"], list(self.server.messages), seconds)

    def _cached(self, node_id: str) -> list:
        cache = self.executor.caches.outputs
        value = asyncio.run(cache.get(node_id)) if asyncio.iscoroutinefunction(cache.get) else cache.get(node_id)
        if value is None:
            raise KeyError(f"node {node_id} has no cached output")
        return value.outputs if hasattr(value, "outputs") else value[0]

    def output(self, node_id: str, index: int = 0) -> Any:
        """Output ``index`` of a node from the last run, as the Python object ComfyUI passed on."""
        return self._cached(node_id)[index][0]

    def node_output(self, prompt: dict, node_id: str) -> Any:
        """All outputs of a node from the last run (lists, one entry per output slot)."""
        return self._cached(node_id)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """``main.py --cpu`` on 127.0.0.1 and a free port, with this test base; HTTP helpers."""

    def __init__(self, comfy_root: Path, base: Path, log_path: Path, extra_env: dict | None = None,
                 extra_args: list[str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        cmd = [
            sys.executable, str(comfy_root / "main.py"), "--cpu", "--listen", "127.0.0.1",
            "--port", str(self.port), "--base-directory", str(base), "--disable-auto-launch",
            "--disable-api-nodes", "--database-url", "sqlite:///:memory:", *(extra_args or []),
        ]
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=str(comfy_root), env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI server exited early; log:\n{self.log_path.read_text()[-4000:]}")
            try:
                self.get("/system_stats")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise TimeoutError(f"ComfyUI server not ready after {timeout}s; log:\n{self.log_path.read_text()[-4000:]}")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, payload: dict) -> Any:
        req = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise PromptFailed(f"POST {path} -> {e.code}: {e.read().decode(errors='replace')}") from e

    def run(self, prompt: dict, timeout: float = 600.0) -> dict:
        """Queue a prompt, wait for it in /history, return its history entry."""
        prompt_id = self.post("/prompt", {"prompt": prompt, "client_id": "tests"})["prompt_id"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            hist = self.get(f"/history/{prompt_id}")
            if prompt_id in hist:
                entry = hist[prompt_id]
                status = entry.get("status", {})
                if status.get("status_str") == "error":
                    raise PromptFailed(f"server execution failed: {json.dumps(status)[:4000]}")
                return entry
            if self.proc.poll() is not None:
                raise RuntimeError(f"server died; log:\n{self.log_path.read_text()[-4000:]}")
            time.sleep(0.25)
        raise TimeoutError(f"prompt {prompt_id} not finished after {timeout}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
