"""The runner's server back end: pairs sent to running ComfyUI servers over HTTP.

One worker per server (its own thread and asyncio loop): upload the two images, ``POST
/prompt``, follow the websocket for progress and the guidance's step events, read
``/history`` and fetch the images from ``/view``. A pair that fails on one server (down, or an
error) is retried once on each other server (:class:`Scheduler`, no ComfyUI needed). The
Measure nodes' JSON reaches ``/history`` through their own ui output where the pack sends it,
else through a core "Preview Any" node the runner adds per Measure node (it shows up in the
prompt saved in the PNGs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import deque
from typing import Any

from .backend import EXIT_NO_COMFY, PairFailed, PairInterrupted, SetupError, describe_node_errors, one_line
from .clips import clip_bytes
from .inputs import Pair, image_bytes, input_name
from .model_check import missing_message, missing_models, offered, tiny_banner
from .results import STEP_EVENT, read_outputs
from .run import Run
from .testbed.standins.tiny_dit import test_nodes
from .workflow import NodeDef, defs_from_object_info

IMAGE_SUBFOLDER = "style_guidance_runner"
# The test nodes tiny mode may put in a prompt -> the file that defines them (copied into a server's custom_nodes).
NODE_FILES = {"SGTestDiTLoader": "headless/testbed/standin_dit_nodes.py",
              "SGTestConditioningExtra": "headless/testbed/standin_dit_nodes.py"}


class ServerDown(Exception):
    """The server could not be reached (refused, timed out, connection dropped)."""


class Scheduler:
    """Shared queue of pairs for the server workers; each pair is tried at most once per server.

    ``on_give_up(pair, error)`` is called (lock held) for a pair no server is left to try;
    ``log(text)`` reports retries. Pure bookkeeping: no I/O of its own.
    """

    def __init__(self, pairs: list[Pair], servers: list[str], on_give_up, log, stop: threading.Event | None = None,
                 ) -> None:
        self.pending: deque[Pair] = deque(pairs)
        self.alive = set(servers)
        self.unresolved = len(pairs)
        self.on_give_up = on_give_up
        self.log = log
        self.stop = stop or threading.Event()
        self.cond = threading.Condition()

    def take(self, server: str, wait: float = 0.5) -> Pair | None:
        """The next pair for ``server``, or None when it has nothing left to do."""
        with self.cond:
            while True:
                if self.unresolved == 0 or server not in self.alive or self.stop.is_set():
                    return None
                for pair in self.pending:
                    if server not in pair.tried:
                        self.pending.remove(pair)
                        pair.tried.append(server)
                        return pair
                self._fail_stuck()
                self.cond.wait(wait)

    def done(self) -> None:
        with self.cond:
            self.unresolved -= 1
            self.cond.notify_all()

    def failed(self, pair: Pair, server: str, reason: str, server_down: bool) -> None:
        with self.cond:
            pair.attempts.append(f"{server}: {reason}")
            if server_down and server in self.alive:
                self.alive.discard(server)
                self.log(f"server {server} failed ({reason}); no more pairs go to it")
            if self.alive - set(pair.tried):
                self.log(f"pair {pair.name} failed on {server} ({one_line(reason, 300)}); retrying on another server")
                self.pending.appendleft(pair)
            else:
                self._give_up(pair)
            self._fail_stuck()
            self.cond.notify_all()

    def server_lost(self, server: str) -> None:
        with self.cond:
            self.alive.discard(server)
            self._fail_stuck()
            self.cond.notify_all()

    def _fail_stuck(self) -> None:
        for pair in list(self.pending):
            if not (self.alive - set(pair.tried)):
                self.pending.remove(pair)
                self._give_up(pair)

    def _give_up(self, pair: Pair) -> None:
        error = ("failed on every server tried: " + "; ".join(pair.attempts)) if pair.attempts \
            else "no server left to try (every server is down)"
        self.unresolved -= 1
        self.on_give_up(pair, error)


class ServerWorker:
    """Runs pairs on one ComfyUI server (its own thread and asyncio loop)."""

    def __init__(self, url: str, slot: int, run: Run, scheduler: Scheduler) -> None:
        self.url = url.rstrip("/")
        self.slot = slot
        self.run = run
        self.scheduler = scheduler
        self.thread = threading.Thread(target=self._main, name=f"server-{slot}", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._loop())
        except Exception as e:  # noqa: BLE001 - a crashed worker must not strand its pairs
            self.scheduler.server_lost(self.url)
            self.run.progress.log(f"server {self.url}: worker stopped ({type(e).__name__}: {e})")

    async def _loop(self) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=120)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                pair = await asyncio.to_thread(self.scheduler.take, self.url)
                if pair is None:
                    return
                pair.server = self.url
                self.run.progress.start(pair.index, f"{pair.name} @ {self.url}", self.slot, name=pair.name)
                start = time.perf_counter()
                try:
                    images, measures, steps = await self._pair(session, pair)
                    seconds = pair.seconds + time.perf_counter() - start  # failed attempts included
                    self.run.finish_ok(pair, images, measures, steps, seconds)
                except PairInterrupted:
                    pair.seconds += time.perf_counter() - start
                    self.run.finish_failed(pair, "interrupted before it finished", status="interrupted")
                    self.run.progress.finish(pair.index, "INTERRUPTED")
                    self.scheduler.done()
                    return
                except ServerDown as e:
                    self._failed(pair, str(e), True, start)
                    continue
                except (PairFailed, OSError, ValueError) as e:
                    self._failed(pair, str(e), False, start)
                    continue
                except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as e:
                    self._failed(pair, down_reason(e), True, start)
                    continue
                except Exception as e:  # noqa: BLE001 - any other error fails this attempt, not the worker
                    self._failed(pair, f"{type(e).__name__}: {e}", False, start)
                    continue
                self.scheduler.done()
                self.run.progress.finish(pair.index, "ok", f"{seconds:.1f} s on {self.url}")

    def _failed(self, pair: Pair, reason: str, down: bool, start: float) -> None:
        pair.seconds += time.perf_counter() - start
        self.run.progress.abandon(pair.index, "server down" if down else "error", one_line(reason, 300))
        self.scheduler.failed(pair, self.url, reason, down)

    async def _upload(self, session, pair: Pair) -> dict[str, str]:
        import aiohttp

        names = {}
        for role, path in (("content", pair.content), ("style", pair.style)):
            data, suffix = clip_bytes(path) if role == "content" and self.run.video else image_bytes(path)
            form = aiohttp.FormData()
            form.add_field("image", data, filename=input_name(data, path, suffix),
                           content_type="application/octet-stream")
            form.add_field("type", "input")
            form.add_field("subfolder", IMAGE_SUBFOLDER)
            form.add_field("overwrite", "true")
            try:
                async with session.post(self.url + "/upload/image", data=form) as r:
                    if r.status != 200:
                        raise PairFailed(f"upload of {path.name} -> HTTP {r.status}: {(await r.text())[:500]}")
                    j = await r.json()
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as e:
                raise ServerDown(down_reason(e)) from e
            names[role] = f"{j['subfolder']}/{j['name']}" if j.get("subfolder") else j["name"]
        return names

    async def _pair(self, session, pair: Pair) -> tuple[list[bytes], dict[str, str], list[dict]]:
        names = await self._upload(session, pair)
        api, ui = self.run.prompt_for(names["content"], names["style"])
        client_id = uuid.uuid4().hex
        ws = None
        with contextlib.suppress(Exception):
            ws_url = "ws" + self.url[4:] if self.url.startswith("http") else self.url
            ws = await session.ws_connect(f"{ws_url}/ws?clientId={client_id}", heartbeat=30)
        steps: list[dict] = []
        try:
            body = {"prompt": api, "client_id": client_id, "extra_data": self.run.extra_data(ui)}
            async with session.post(self.url + "/prompt", json=body) as r:
                text = await r.text()
                if r.status != 200:
                    raise PairFailed(f"the server rejected the prompt (HTTP {r.status}): {prompt_error(text)}")
                prompt_id = json.loads(text)["prompt_id"]
            entry = await self._wait(session, ws, prompt_id, pair, steps)
        finally:
            if ws is not None:
                await ws.close()
        status = entry.get("status") or {}
        if status.get("status_str") == "error":
            if any(kind == "execution_interrupted" for kind, _ in status.get("messages") or []):
                raise PairFailed("interrupted on the server (someone pressed Cancel there)")
            raise PairFailed(f"execution failed on the server: {history_error(status)}")
        refs, measures = read_outputs(entry.get("outputs") or {}, list(self.run.measures), self.run.tap_ids)
        images = []
        for ref in refs:
            query = urllib.parse.urlencode({"filename": ref.filename, "subfolder": ref.subfolder, "type": "output"})
            async with session.get(f"{self.url}/view?{query}") as r:
                if r.status != 200:
                    raise PairFailed(f"GET /view {ref.filename} -> HTTP {r.status}")
                images.append(await r.read())
        return images, measures, steps

    async def _wait(self, session, ws, prompt_id: str, pair: Pair, steps: list[dict]) -> dict:
        """Wait for the prompt in /history; progress and step events from the websocket meanwhile."""
        import aiohttp

        deadline = time.monotonic() + self.run.opts.timeout
        next_poll = 0.0
        while time.monotonic() < deadline:
            if self.run.stop.is_set():
                await self._cancel(session, prompt_id)
                raise PairInterrupted()
            if ws is not None and not ws.closed:
                try:
                    msg = await ws.receive(timeout=0.5)
                except (asyncio.TimeoutError, TimeoutError):
                    msg = None
                if msg is not None and msg.type == aiohttp.WSMsgType.TEXT:
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        data = json.loads(msg.data)
                        kind, d = data.get("type"), data.get("data") or {}
                        if kind == "progress" and d.get("prompt_id") in (None, prompt_id):
                            self.run.progress.step(pair.index, int(d["value"]), int(d["max"]), d.get("node"))
                        elif kind == STEP_EVENT and isinstance(d, dict):
                            steps.append(d)
                        elif kind in ("execution_success", "execution_error", "execution_interrupted") \
                                or (kind == "executing" and d.get("node") is None):
                            next_poll = 0.0
                elif msg is not None and msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    ws = None
            else:
                await asyncio.sleep(0.5)
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + 1.0
                async with session.get(f"{self.url}/history/{prompt_id}") as r:
                    if r.status == 200:
                        hist = await r.json()
                        if prompt_id in hist:
                            return hist[prompt_id]
        await self._cancel(session, prompt_id)
        raise PairFailed(f"not finished after {self.run.opts.timeout:g} s (--timeout)")

    async def _cancel(self, session, prompt_id: str) -> None:
        """Take the prompt off the server: out of its queue, or interrupted if it is running."""
        with contextlib.suppress(Exception):
            async with session.post(f"{self.url}/queue", json={"delete": [prompt_id]}):
                pass
        with contextlib.suppress(Exception):
            async with session.post(f"{self.url}/interrupt", json={"prompt_id": prompt_id}):
                pass


def down_reason(e: BaseException) -> str:
    reason = getattr(e, "reason", None) or getattr(e, "os_error", None) or e
    text = str(reason) or type(reason).__name__
    if isinstance(reason, ConnectionRefusedError) or "refused" in text.lower():
        return "connection refused"
    if isinstance(reason, (TimeoutError, asyncio.TimeoutError)) or "timed out" in text.lower():
        return "timed out"
    return text


def prompt_error(text: str) -> str:
    try:
        j = json.loads(text)
    except ValueError:
        return one_line(text, 800)
    return describe_node_errors(j.get("error"), j.get("node_errors"))


def history_error(status: dict) -> str:
    for kind, data in status.get("messages") or []:
        if kind == "execution_error":
            return one_line(f"node {data.get('node_id')} ({data.get('node_type')}): "
                            f"{data.get('exception_type')}: {data.get('exception_message')}", 1500)
    return one_line(json.dumps(status), 800)


def _http_json(url: str, timeout: float = 30.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


class Servers:
    """The server back end: every reachable server's node definitions, then one worker each."""

    def __init__(self, run: Run) -> None:
        self.run = run
        seen: set[str] = set()
        self.urls = [u for u in (u.rstrip("/") for u in run.opts.server) if not (u in seen or seen.add(u))]
        self.infos: dict[str, dict] = {}

    def start(self) -> dict[str, NodeDef]:
        log = self.run.progress.log
        for url in self.urls:
            try:
                self.infos[url] = _http_json(url + "/object_info", timeout=60)
            except (urllib.error.URLError, OSError, ValueError) as e:
                log(f"server {url}: not reachable now ({down_reason(e)}); its pairs go to the others "
                    "if it stays down")
        if not self.infos:
            raise SetupError("no server reachable: " + ", ".join(self.urls), EXIT_NO_COMFY)
        log(f"servers: {', '.join(self.urls)}")
        return defs_from_object_info(next(iter(self.infos.values())))

    def setup_models(self) -> bool:
        wf = self.run.wf
        replaced = self.run.rewrite_for_tiny() if self.run.opts.tiny else []
        needed = test_nodes(wf.api) if replaced else set()
        lacking = {url: sorted(needed - set(info)) for url, info in self.infos.items() if needed - set(info)}
        if lacking:
            files = sorted({NODE_FILES.get(cls, "headless/testbed/standin_nodes.py")
                            for classes in lacking.values() for cls in classes})
            raise SetupError("tiny mode replaces what no tiny file can stand in for (text encoders, full-size "
                             f"loaders) by the test nodes {', '.join(sorted(needed))}; these servers lack some: "
                             + "; ".join(f"{url} ({', '.join(classes)})" for url, classes in lacking.items())
                             + f". Copy {' and '.join(files)} into their custom_nodes folder and restart them, "
                             "or run without --server.")
        missing_any = []
        for url, info in self.infos.items():
            def present(cls: str, inp: str, name: str, _folder: str, info=info) -> bool:
                return offered((info.get(cls) or {}).get("input") or {}, inp, name)

            missing_any += missing_models(wf.api, present,
                                          lambda folder, url=url: f"models/{folder}/ of the server {url}")
        if missing_any:
            raise SetupError(missing_message(
                wf.name, missing_any, "Put each file in that folder of the server's ComfyUI (then restart it or "
                                      "press 'Refresh' in its editor), or leave that server out."))
        if self.run.opts.tiny:
            self.run.tiny_note = tiny_banner(None, forced=True, server=True, replaced=replaced)
            self.run.progress.log(self.run.tiny_note)
            return True
        return False

    def run_all(self) -> None:
        def give_up(pair: Pair, error: str) -> None:
            self.run.finish_failed(pair, error)
            self.run.progress.finish(pair.index, "FAILED", one_line(error, 300))

        scheduler = Scheduler(self.run.pairs, self.urls, give_up, self.run.progress.log, self.run.stop)
        workers = [ServerWorker(url, i, self.run, scheduler) for i, url in enumerate(self.urls)]
        for w in workers:
            w.thread.start()
        for w in workers:
            while w.thread.is_alive():
                w.thread.join(0.5)

    def interrupt(self) -> None:
        """Nothing to do here: each worker sees ``run.stop`` within half a second and cancels its prompt."""

    def log_text(self) -> str:
        return ""

    def close(self) -> None:
        """Nothing to release: the workers end with :meth:`run_all`."""
