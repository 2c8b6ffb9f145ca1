"""Progress display for the headless runner: an overall bar and one bar per image being made.

On a terminal: tqdm bars (pairs done / total, and the sampler steps of each image in flight,
one line per worker). Elsewhere (CI logs, pipes): plain lines, no carriage returns: one when
an image starts, a step line at most every ``step_interval`` seconds and at the last step, and
one when it ends. Messages go through :meth:`Progress.log` so they never tear a bar.
Thread-safe: server mode reports from one thread per server.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, stream: TextIO | None = None, tty: bool | None = None,
                 step_interval: float = 5.0, out: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr  # bars and per-image lines
        self.out = out or sys.stdout  # messages (kept: ComfyUI's start-up may redirect sys.stdout)
        self.tty = self.stream.isatty() if tty is None else tty
        self.total = total
        self.done = 0
        self.step_interval = step_interval
        self._lock = threading.RLock()
        self._labels: dict[object, str] = {}  # images in flight
        self._names: dict[object, str] = {}  # every image started, for the final line
        self._bars: dict[object, object] = {}  # key -> tqdm bar (tty) for images in flight
        self._slots: dict[object, int] = {}
        self._last_line: dict[object, float] = {}
        self._last_node: dict[object, object] = {}
        self._overall = None
        if self.tty:
            from tqdm import tqdm

            self._tqdm = tqdm
            self._overall = tqdm(total=total, desc="pairs", unit="pair", position=0, file=self.stream,
                                 dynamic_ncols=True)

    # -- messages -------------------------------------------------------------------------

    def log(self, message: str, stream: TextIO | None = None) -> None:
        """Print a message line (on stdout by default) without breaking the bars."""
        out = stream or self.out
        with self._lock:
            if self.tty and out is self.stream:
                self._tqdm.write(message, file=out)
            else:
                if self.tty:
                    self.stream.flush()
                print(message, file=out, flush=True)

    # -- images ---------------------------------------------------------------------------

    def start(self, key: object, label: str, slot: int = 0, name: str | None = None) -> None:
        """An image begins; ``name`` (default ``label``) is what its final line is called."""
        with self._lock:
            self._labels[key] = label
            self._names[key] = name or label
            self._slots[key] = slot
            self._last_line[key] = 0.0
            if self.tty:
                self._bars[key] = self._tqdm(total=1, desc=label, unit="step", position=slot + 1, leave=False,
                                             file=self.stream, dynamic_ncols=True)
            else:
                self._plain(f"[{self.done}/{self.total}] started {label}")

    def step(self, key: object, value: int, total: int, node: object = None) -> None:
        with self._lock:
            label = self._labels.get(key)
            if label is None:
                return
            if self.tty:
                bar = self._bars.get(key)
                if bar is None:
                    return
                if node is not None and node != self._last_node.get(key):
                    self._last_node[key] = node
                    bar.set_description(f"{label} (node {node})", refresh=False)
                if bar.total != total:
                    bar.reset(total=total)
                bar.n = value
                bar.refresh()
                return
            now = time.monotonic()
            if value >= total or now - self._last_line[key] >= self.step_interval:
                self._last_line[key] = now
                where = f" node {node}" if node is not None else ""
                self._plain(f"    {label}:{where} step {value}/{total}")

    def finish(self, key: object, status: str, detail: str = "") -> None:
        with self._lock:
            self._labels.pop(key, None)
            label = self._names.pop(key, str(key))
            self.done += 1
            if self.tty:
                bar = self._bars.pop(key, None)
                if bar is not None:
                    bar.close()
                self._overall.update(1)
                if status != "ok":
                    self._tqdm.write(f"{label}: {status}{' - ' + detail if detail else ''}", file=self.stream)
            else:
                self._plain(f"[{self.done}/{self.total}] {status} {label}{' - ' + detail if detail else ''}")

    def abandon(self, key: object, status: str, detail: str = "") -> None:
        """End an image's bar without counting the pair as done (it goes back to the queue)."""
        with self._lock:
            label = self._labels.pop(key, str(key))
            bar = self._bars.pop(key, None)
            if bar is not None:
                bar.close()
            line = f"{label}: {status}{' - ' + detail if detail else ''}"
            self._tqdm.write(line, file=self.stream) if self.tty else self._plain(f"    {line}")

    def close(self) -> None:
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()
            if self._overall is not None:
                self._overall.close()
                self._overall = None

    def _plain(self, line: str) -> None:
        print(line, file=self.stream, flush=True)
