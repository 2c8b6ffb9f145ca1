"""What the runner's two back ends (in-process, servers) share: exit codes, errors, the protocol."""

from __future__ import annotations

from typing import Protocol

from .workflow import NodeDef

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_SETUP = 2
EXIT_NO_COMFY = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "every pair done"),
    (EXIT_SOME_FAILED, "some pair failed or some input was skipped (the other pairs are written)"),
    (EXIT_SETUP, "bad arguments, workflow, output folder or model files (nothing was run)"),
    (EXIT_NO_COMFY, "no ComfyUI found, or no server reachable"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C / SIGINT): the pair in flight is stopped, finished ones are kept"),
    (EXIT_TERMINATED, "terminated (SIGTERM): as 130"),
)


class SetupError(Exception):
    """Stops the run before any pair is executed; ``code`` is the exit status.

    ``show_log``: ComfyUI's own log may say why (e.g. a node pack that failed to load).
    """

    def __init__(self, message: str, code: int = EXIT_SETUP, show_log: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.show_log = show_log


class PairFailed(Exception):
    """The pair failed (validation or execution error, bad answer); the back end itself is fine."""


class PairInterrupted(Exception):
    """The pair was stopped because the run is being interrupted."""


class Backend(Protocol):
    """Where the pairs run. :func:`headless.cli.main` calls these in this order."""

    def start(self) -> dict[str, NodeDef]:
        """Reach ComfyUI (import it, or contact the servers); return the node definitions."""

    def setup_models(self) -> bool:
        """Check every model file the workflow names (``SetupError`` listing the missing ones).

        Returns True when the run uses tiny stand-ins instead.
        """

    def run_all(self) -> None:
        """Run every pending pair, recording each result in the run; return early once stopping."""

    def interrupt(self) -> None:
        """Stop the pair(s) in flight as soon as possible (called from a signal handler)."""

    def log_text(self) -> str:
        """ComfyUI's log as far as this back end saw it ("" when it has none)."""

    def close(self) -> None:
        """Release everything (temporary folders, threads)."""


def describe_node_errors(error: dict | None, node_errors: dict | None) -> str:
    """One line from ComfyUI's validation result: the error and each node's input errors."""
    error = error if isinstance(error, dict) else {}
    parts = [str(error.get("message", "")), str(error.get("details", ""))]
    for nid, ne in (node_errors or {}).items():
        for e in (ne or {}).get("errors", []):
            parts.append(f"node {nid} ({ne.get('class_type')}): {e.get('message')} {e.get('details', '')}".strip())
    return one_line("; ".join(p for p in parts if p.strip()), 1500)


def one_line(text: str, limit: int = 2000) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
