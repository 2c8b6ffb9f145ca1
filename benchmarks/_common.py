"""Helpers shared by the in-ComfyUI benchmarks (bench_guidance.py, bench_realsize.py).

A temporary ComfyUI base with this pack loaded by ComfyUI's own custom-node loader (and the
stand-in nodes of ``headless/testbed/standin_nodes.py``), an in-process executor with an LRU output
cache, memory high-water marks, and the machine/version facts every result file records.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))  # headless; appended so ComfyUI's own top-level `nodes` wins


# ---------------------------------------------------------------- set-up


def setup_comfy(base: Path, gpu: bool, build_models: Callable[[Path], object], who: str = "bench") -> tuple[Path, object]:
    """Lay out ``base`` with the pack, import ComfyUI, build models, load every node.

    ``build_models(models_dir)`` runs after ComfyUI is importable and before the nodes load;
    its return value is passed back. ``gpu`` lets ComfyUI use CUDA when there is one.
    """
    from headless.locate import ComfyUINotFound, locate_comfyui
    from headless.testbed import base as hc

    try:
        comfy_root = locate_comfyui()
    except ComfyUINotFound as e:
        sys.exit(f"{who}: {e}")
    hc.make_base(base)
    import torch

    hc.configure_comfy(comfy_root, base, cpu=not (gpu and torch.cuda.is_available()))
    models = build_models(base / "models")
    hc.init_nodes()
    return comfy_root, models


def make_executor():
    """The in-process ComfyUI of ``headless.testbed``, with an LRU output cache instead of the classic one.

    The classic cache drops every output the current prompt does not use, so running the
    configurations in turn would reload models and rebuild loss networks each time. With an
    LRU cache large enough for all of them, the timed runs can be interleaved (one repeat of
    every configuration, then the next), which spreads slow drifts in machine load evenly.
    """
    from headless.testbed.inprocess import InProcessComfy

    return InProcessComfy(lru_size=10_000)


def executed_nodes(messages: list) -> set[str]:
    """Node ids that actually ran in a prompt (ComfyUI's 'executing' messages)."""
    return {d["node"] for ev, d in messages if ev == "executing" and isinstance(d, dict) and d.get("node")}


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def timed_run(comfy, prompt: dict, cuda: bool) -> dict:
    """One prompt run: wall and CPU seconds, peak RSS (and CUDA allocation), nodes that ran."""
    import torch

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with PeakRSS() as mem:
        c0, t0 = cpu_seconds(), time.perf_counter()
        result = comfy.run(prompt)
        if cuda:
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    out = {"wall_s": wall, "cpu_s": cpu, "rss_growth": mem.growth, "rss_peak": mem.peak,
           "executed": sorted(executed_nodes(result.messages))}
    if cuda:
        out["cuda_peak"] = torch.cuda.max_memory_allocated()
        out["cuda_reserved_peak"] = torch.cuda.max_memory_reserved()
    return out


# ---------------------------------------------------------------- memory


class PeakRSS:
    """Peak resident memory during a block, over the RSS at its start (bytes).

    Linux: resets the kernel's high-water mark (``/proc/self/clear_refs`` <- 5) and
    reads ``VmHWM`` afterwards, which is exact and costs nothing. Elsewhere: a thread
    polls psutil every 5 ms.
    """

    _CLEAR = Path("/proc/self/clear_refs")
    _STATUS = Path("/proc/self/status")

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.use_hwm = self._try_hwm()
        self.method = "VmHWM" if self.use_hwm else "psutil-poll-5ms"

    def _try_hwm(self) -> bool:
        try:
            self._CLEAR.write_text("5")
            return self._hwm() > 0
        except OSError:
            return False

    def _hwm(self) -> int:
        m = re.search(r"VmHWM:\s+(\d+)\s*kB", self._STATUS.read_text())
        return int(m.group(1)) * 1024 if m else 0

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.start = self.proc.memory_info().rss
        self.peak = self.start
        if self.use_hwm:
            self._CLEAR.write_text("5")
        else:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc) -> None:
        if self.use_hwm:
            self.peak = max(self.start, self._hwm())
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self.proc.memory_info().rss)
        self.growth = self.peak - self.start


# ---------------------------------------------------------------- facts


def machine_info(comfy_root: Path, cuda: bool) -> dict:
    import torch

    info = {
        "platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor(),
        "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "comfyui": comfy_version(comfy_root), "comfyui_path": str(comfy_root),
        "device": "cuda" if cuda else "cpu",
    }
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.+)", f.read())
        info["cpu_model"] = m.group(1).strip() if m else None
    except OSError:
        info["cpu_model"] = None
    try:
        import psutil

        info["memory_bytes"] = psutil.virtual_memory().total
    except ImportError:
        pass
    if cuda:
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_bytes"] = props.total_memory
        info["cuda"] = torch.version.cuda
    return info


def comfy_version(comfy_root: Path) -> str | None:
    m = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", (comfy_root / "comfyui_version.py").read_text()) \
        if (comfy_root / "comfyui_version.py").is_file() else None
    return m.group(1) if m else None


def pack_info() -> dict:
    from headless.testbed.base import PACK_DIRNAME

    info: dict = {}
    for name, mod in list(sys.modules.items()):
        version = getattr(mod, "STYLE_GUIDANCE_VERSION", None) if name.endswith(PACK_DIRNAME) else None
        if isinstance(version, str):
            info["style_guidance_version"] = version
            break
    try:
        rev = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        info["git"] = rev + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def command_line(script: str, argv: list[str] | None) -> str:
    """How this run was started, with repo-relative paths."""
    exe = sys.executable
    if exe.startswith(str(REPO_ROOT) + os.sep):
        exe = os.path.relpath(exe, REPO_ROOT)
    return " ".join([exe, os.path.relpath(script, REPO_ROOT), *(argv if argv is not None else sys.argv[1:])])


def mib(n: float) -> str:
    return f"{n / 2**20:.0f}"


def log(who: str, text: str) -> None:
    print(f"[{who}] {text}", file=sys.stderr, flush=True)


def now() -> float:
    return time.perf_counter()


def write_results(result: dict, md: str, out: str, default_stem: Path, log) -> None:
    """Write a benchmark's Markdown table and raw JSON next to each other (``out`` overrides the stem)."""
    stem = Path(out) if out else default_stem
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".md").write_text(md)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    log(f"wrote {stem.with_suffix('.md')} and {stem.with_suffix('.json')}")
