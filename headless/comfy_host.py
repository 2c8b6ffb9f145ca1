"""A real ComfyUI driven from Python: a private base folder, in-process execution, a server.

Shared by the headless runner, the tests and the benchmarks, and the one module of ``headless/``
that touches ComfyUI's internals (``comfy.cli_args``, ``comfy.utils``, ``comfy.model_management``,
``comfy_execution``, ``folder_paths``, ``utils.extra_config``, ``execution``, ``server``); the
others go through the functions here. The pack is loaded by ComfyUI's own custom-node loader
from ``<base>/custom_nodes`` (a symlink to this repository), exactly as a user's install would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
STANDIN_NODES = Path(__file__).resolve().parent / "standin_nodes.py"
PACK_DIRNAME = "style_guidance"
PACK_LOGGER = "style_guidance"


def make_base(base: Path, standin_nodes: bool = True) -> Path:
    """Lay out a ComfyUI base directory with this pack (and, for tests/benchmarks, the SGTest* nodes)."""
    for sub in ("models", "custom_nodes", "input", "output", "temp", "user"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / PACK_DIRNAME
    if not link.exists():
        link.symlink_to(REPO_ROOT, target_is_directory=True)
    if standin_nodes:
        shutil.copy(STANDIN_NODES, base / "custom_nodes" / "sg_standin_nodes.py")
    return base


def configure_comfy(comfy_root: Path, base: Path, cpu: bool = True) -> None:
    """Import ComfyUI's settings in this process, rooted at ``base``; ``cpu`` forces ``--cpu``.

    Call before anything imports ``comfy.model_management`` (it reads the settings once).
    """
    if str(comfy_root) not in sys.path:
        sys.path.insert(0, str(comfy_root))
    import comfy.options

    comfy.options.enable_args_parsing(False)
    from comfy.cli_args import args

    args.cpu = cpu
    args.base_directory = str(base)
    args.disable_api_nodes = True
    args.database_url = "sqlite:///:memory:"
    # ComfyUI's nodes.py puts comfy/ first on sys.path, after which `import utils` finds
    # comfy/utils.py instead of ComfyUI's utils package; main.py imports the package before
    # nodes.py, so do the same (otherwise comfy_extras/nodes_images.py fails to load).
    import folder_paths  # noqa: F401  (reads args.base_directory at import)
    import utils.install_util  # noqa: F401


def init_nodes() -> None:
    """Load built-in and custom nodes with ComfyUI's own loader, as at server start."""
    import nodes

    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))


# ---------------------------------------------------------------------------------------------
# ComfyUI's log


class ComfyLog(logging.Handler):
    """Keeps ComfyUI's log (records and stray prints) out of the terminal, for replay on demand.

    While installed, every log record is kept (and, with ``verbose``, also printed to stderr
    as it comes). Records of the pack's own logger at WARNING or above always reach stderr:
    they are about the user's workflow. :meth:`capture_prints` diverts ``print`` output too
    (import-time chatter); :meth:`text` is everything kept, for showing after a failure.
    """

    def __init__(self, verbose: bool = False, stream: Any = None) -> None:
        super().__init__(logging.INFO)
        self.verbose = verbose
        self.stream = stream or sys.stderr
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
        self._saved: tuple | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - a broken record must not break the run
            line = str(record.msg)
        self.lines.append(line)
        ours = record.name == PACK_LOGGER or record.name.startswith(PACK_LOGGER + ".")
        if self.verbose or (ours and record.levelno >= logging.WARNING):
            print(line, file=self.stream, flush=True)

    def install(self) -> ComfyLog:
        root = logging.getLogger()
        self._saved = (root.level, list(root.handlers))
        for h in list(root.handlers):
            root.removeHandler(h)
        root.addHandler(self)
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        return self

    def uninstall(self) -> None:
        if self._saved is None:
            return
        root = logging.getLogger()
        root.removeHandler(self)
        level, handlers = self._saved
        root.setLevel(level)
        for h in handlers:
            root.addHandler(h)
        logging.captureWarnings(False)
        self._saved = None

    @contextlib.contextmanager
    def capture_prints(self) -> Iterator[None]:
        """Divert ``print`` output (stdout and stderr) into the log while the block runs."""
        sink = _LineSink(self)
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            try:
                yield
            finally:
                sink.flush()

    def text(self) -> str:
        return "\n".join(self.lines)


class _LineSink(io.TextIOBase):
    """A text stream whose complete lines become :class:`ComfyLog` lines."""

    def __init__(self, log: ComfyLog) -> None:
        self.log = log
        self.buffer_text = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.buffer_text += text
        *lines, self.buffer_text = self.buffer_text.split("\n")
        for line in lines:
            self.log.lines.append(line)
            if self.log.verbose:
                print(line, file=self.log.stream, flush=True)
        return len(text)

    def flush(self) -> None:
        if self.buffer_text:
            self.write("\n")


# ---------------------------------------------------------------------------------------------
# Progress, interrupts, model folders (for the runner)


def set_progress_hook(hook: Callable[[int, int, str | None], None], should_stop: Callable[[], bool]) -> None:
    """Report sampler steps as ``hook(value, total, node_id)`` instead of ComfyUI's own tqdm bar.

    The hook also ends the prompt at the next step once ``should_stop()`` is true (as the
    server's own hook does after ``/interrupt``).
    """
    import comfy.model_management
    import comfy.utils
    from comfy_execution.utils import get_executing_context

    def comfy_hook(value, total, preview=None, prompt_id=None, node_id=None, **_kw) -> None:
        if node_id is None:
            ctx = get_executing_context()
            node_id = ctx.node_id if ctx is not None else None
        if should_stop():
            comfy.model_management.interrupt_current_processing(True)
        comfy.model_management.throw_exception_if_processing_interrupted()
        hook(value, total, node_id)

    comfy.utils.set_progress_bar_enabled(False)
    comfy.utils.set_progress_bar_global_hook(comfy_hook)


def interrupt() -> None:
    """Ask the prompt running in this process to stop at its next node or sampler step."""
    import comfy.model_management

    comfy.model_management.interrupt_current_processing(True)


def models_dir() -> Path:
    """The base folder's models/ (ComfyUI's ``folder_paths.models_dir``)."""
    import folder_paths

    return Path(folder_paths.models_dir).resolve()


def map_models_root(root: Path) -> None:
    """Make ``root`` (ComfyUI models layout) the first folder of every model type of the base."""
    import folder_paths

    base_models = models_dir()
    for name, (paths, _exts) in list(folder_paths.folder_names_and_paths.items()):
        for p in reversed(list(paths)):
            try:
                rel = Path(p).resolve().relative_to(base_models)
            except ValueError:
                continue
            folder_paths.add_model_folder_path(name, str(root / rel), is_default=True)


def load_extra_model_paths(yaml_path: Path) -> None:
    """Add the model folders of an ``extra_model_paths.yaml`` (ComfyUI's own reader)."""
    from utils.extra_config import load_extra_path_config

    load_extra_path_config(str(yaml_path))


def model_folder(folder: str) -> str | None:
    """Where ComfyUI looks first for files of a model type (None for a type it does not know)."""
    import folder_paths

    try:
        paths = folder_paths.get_folder_paths(folder)
    except KeyError:
        return None
    return paths[0] if paths else None


def model_file(folder: str, name: str) -> str | None:
    """The full path of a model file ComfyUI finds in its folders for that type, or None."""
    import folder_paths

    try:
        return folder_paths.get_full_path(folder, name)
    except KeyError:
        return None


def node_classes() -> dict[str, type]:
    """Every node class ComfyUI has loaded in this process (call after :func:`init_nodes`)."""
    import nodes

    return dict(nodes.NODE_CLASS_MAPPINGS)


def node_input_types(class_type: str) -> dict:
    """A loaded node's ``INPUT_TYPES()`` as ComfyUI computes it now (choice lists re-read)."""
    cls = node_classes().get(class_type)
    return cls.INPUT_TYPES() if cls is not None else {}


class _StandInServer:
    """The few attributes of ComfyUI's PromptServer that execution uses; records every message.

    Installed as ``PromptServer.instance`` when no real server runs in this process, so nodes
    that report through it (progress text, custom events) reach :attr:`messages` too.
    """

    def __init__(self) -> None:
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.sockets_metadata: dict = {}
        self.messages: list[tuple[str, Any]] = []

    def send_sync(self, event, data, sid=None) -> None:
        self.messages.append((event, data))

    def send_progress_text(self, text, node_id, sid=None) -> None:
        self.messages.append(("progress_text", {"node": node_id, "text": text}))


class PromptFailed(AssertionError):
    """A prompt failed validation or execution; the message carries ComfyUI's own error.

    ``error``/``node_errors`` are ComfyUI's validation result when validation failed.
    """

    def __init__(self, message: str, error: Any = None, node_errors: dict | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.node_errors = node_errors or {}


class PromptInterrupted(PromptFailed):
    """The prompt was stopped by an interrupt (see :func:`interrupt`)."""


@dataclass
class RunResult:
    """What one in-process prompt run produced."""

    prompt_id: str
    outputs: dict  # ui outputs per node id (as /history reports them)
    messages: list = field(default_factory=list)
    seconds: float = 0.0


class InProcessComfy:
    """Runs API-format prompts with ComfyUI's own validator and executor, in this process.

    ``lru_size`` 0 keeps ComfyUI's classic output cache (outputs the current prompt does not
    use are dropped); a positive size uses its LRU cache of that many entries instead, so a
    series of different prompts can reuse loaded models and built loss networks.
    """

    def __init__(self, lru_size: int = 0) -> None:
        import execution

        self.server = _StandInServer()
        with contextlib.suppress(ImportError):
            from server import PromptServer

            if getattr(PromptServer, "instance", None) is None:
                PromptServer.instance = self.server
        if lru_size > 0:
            cache_type, cache_args = execution.CacheType.LRU, {"lru": lru_size, "ram": 0}
        else:
            cache_type, cache_args = execution.CacheType.CLASSIC, {"lru": 0, "ram": 0}
        self.executor = execution.PromptExecutor(self.server, cache_type=cache_type, cache_args=cache_args)

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
            raise PromptFailed(f"validation failed: {json.dumps(error)} {json.dumps(node_errors, default=str)}",
                               error, node_errors)
        prompt_id = str(uuid.uuid4())
        self.server.messages = []
        start = time.perf_counter()
        self.executor.execute(prompt, prompt_id, {"client_id": "tests", **(extra_data or {})},
                              outputs or good_outputs)
        seconds = time.perf_counter() - start
        if not self.executor.success:
            if any(m[0] == "execution_interrupted" for m in self.executor.status_messages):
                raise PromptInterrupted("interrupted")
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

    def node_output(self, node_id: str) -> Any:
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
        entry = self.wait(self.submit(prompt), timeout)
        status = entry.get("status", {})
        if status.get("status_str") == "error":
            raise PromptFailed(f"server execution failed: {json.dumps(status)[:4000]}")
        return entry

    def submit(self, prompt: dict, client_id: str = "tests") -> str:
        """Queue a prompt (validated by the server); return its id without waiting."""
        return self.post("/prompt", {"prompt": prompt, "client_id": client_id})["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 600.0, poll: float = 0.25) -> dict:
        """The prompt's /history entry once it has finished, whatever the outcome."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            hist = self.get(f"/history/{prompt_id}")
            if prompt_id in hist:
                return hist[prompt_id]
            if self.proc.poll() is not None:
                raise RuntimeError(f"server died; log:\n{self.log_path.read_text()[-4000:]}")
            time.sleep(poll)
        raise TimeoutError(f"prompt {prompt_id} not finished after {timeout}s")

    def interrupt(self) -> None:
        """``POST /interrupt``: stop the prompt running now."""
        req = urllib.request.Request(self.url + "/interrupt", data=b"{}", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()

    def rss_mib(self) -> float:
        """The server process's resident memory (Linux /proc), in MiB."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS line")

    def events(self) -> ServerEvents:
        """A websocket listener on this server (close it when done)."""
        return ServerEvents(self.url)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def history_messages(entry: dict) -> list[tuple[str, dict]]:
    """The status messages of a /history entry as (event, data) pairs."""
    return [(m[0], m[1]) for m in entry.get("status", {}).get("messages", [])]


def history_error(entry: dict) -> str | None:
    """The exception message of a failed /history entry (None when it did not fail with one)."""
    for event, data in history_messages(entry):
        if event == "execution_error":
            return str(data.get("exception_message", ""))
    return None


class ServerEvents:
    """A server's websocket messages for one client id, timestamped on arrival (background thread).

    Prompts queued with :attr:`client_id` send their progress, their execution events and the
    pack's ``style_guidance.step`` events here. Binary messages (previews) are ignored.
    """

    def __init__(self, url: str, client_id: str | None = None, timeout: float = 30.0) -> None:
        import threading

        self.url = url.rstrip("/")
        self.client_id = client_id or f"sg-events-{uuid.uuid4().hex[:8]}"
        self.events: list[tuple[float, str, Any]] = []
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ws: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="comfy-events", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"no websocket connection to {self.url} after {timeout}s")
        if self._error is not None:
            raise RuntimeError(f"websocket to {self.url} failed: {self._error}")

    def _main(self) -> None:
        try:
            asyncio.run(self._listen())
        except BaseException as e:  # noqa: BLE001 - reported to the waiting caller
            self._error = e
            self._ready.set()
            with self._cond:
                self._cond.notify_all()

    async def _listen(self) -> None:
        import aiohttp

        self._loop = asyncio.get_running_loop()
        ws_url = "ws" + self.url[len("http"):] + f"/ws?clientId={self.client_id}"
        async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, heartbeat=None) as ws:
            self._ws = ws
            self._ready.set()
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                with self._cond:
                    self.events.append((time.perf_counter(), data.get("type", ""), data.get("data")))
                    self._cond.notify_all()

    def wait_for(self, match: Callable[[str, Any], bool], timeout: float, start: int = 0) -> tuple[int, float, Any]:
        """The first event from index ``start`` on that ``match(type, data)`` accepts: (index, time, data)."""
        deadline = time.perf_counter() + timeout
        with self._cond:
            while True:
                for i in range(start, len(self.events)):
                    t, kind, data = self.events[i]
                    if match(kind, data):
                        return i, t, data
                start = len(self.events)
                left = deadline - time.perf_counter()
                if left <= 0 or self._error is not None:
                    raise TimeoutError(f"no matching server event after {timeout}s (error: {self._error})")
                self._cond.wait(min(left, 0.5))

    def of_prompt(self, prompt_id: str, kind: str) -> list[tuple[float, Any]]:
        """(time, data) of every event of one type that names this prompt."""
        with self._cond:
            return [(t, d) for t, k, d in self.events if k == kind and isinstance(d, dict)
                    and d.get("prompt_id") == prompt_id]

    def close(self) -> None:
        if self._loop is not None and self._ws is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                asyncio.run_coroutine_threadsafe(self._ws.close(), self._loop).result(timeout=10)
        self._thread.join(timeout=10)

    def __enter__(self) -> ServerEvents:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
