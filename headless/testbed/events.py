"""A ComfyUI server's websocket messages for one client id (:class:`ServerEvents`), timestamped on arrival."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any


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
