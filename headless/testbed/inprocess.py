"""ComfyUI's own validator and executor run in this process (:class:`InProcessComfy`), its log captured
(:class:`ComfyLog`), its progress and interrupts hooked; for the runner's local back end, the tests
and the benchmarks. Call after :func:`headless.testbed.base.configure_comfy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .base import PACK_LOGGER

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
