"""ComfyUI's ``main.py`` started as a server on a free local port (:class:`ComfyServer`), with HTTP
helpers and the reading of its ``/history`` entries; its websocket events: :mod:`headless.testbed.events`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .events import ServerEvents
from .inprocess import PromptFailed


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
