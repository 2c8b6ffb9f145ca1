"""One invocation of the runner: the prepared workflow, the pairs, and their results on disk.

Both back ends use it the same way: :meth:`Run.prompt_for` gives a pair's prompt,
:meth:`Run.finish_ok` / :meth:`Run.finish_failed` record what came of it (images written
atomically under unique names, loss terms from the Measure nodes' JSON, per-step events).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import prompts as P
from .backend import PairFailed, SetupError
from .inputs import Pair, output_path
from .progress import Progress
from .results import (
    add_png_text,
    parse_measure,
    result_names,
    strict_json,
    video_suffix,
    write_atomic,
    write_losses,
    write_steps,
)
from .workflow import set_widget_values

TINY_SIZE, TINY_STEPS = 128, 4
# More tiny steps for runs whose per-step record is drawn (scripts/gen_doc_pictures.py's video run).
TINY_STEPS_ENV = "STYLE_GUIDANCE_TINY_STEPS"


@dataclass
class Options:
    workflow: str
    content: str
    style: str
    pairing: str = "product"
    output: str = "output"
    seed: int | None = None
    scale: float | None = None
    comfyui: str | None = None
    models: str | None = None
    gpu: bool = False
    server: list[str] = field(default_factory=list)
    timeout: float = 3600.0
    tiny: bool = False
    real: bool = False
    verbose: bool = False


class Run:
    """Prepared workflow, settings and result bookkeeping for one invocation (thread-safe)."""

    def __init__(self, opts: Options, wf: P.Workflow, pairs: list[Pair], progress: Progress, out_dir: Path) -> None:
        self.opts = opts
        self.wf = wf
        self.pairs = pairs
        self.progress = progress
        self.out_dir = out_dir
        self.tiny = False
        self.tiny_note = ""
        self.changes: dict[str, dict] = {}
        self.content_id = self.style_id = ""
        self.video = False  # the content is a clip (a LoadVideo node's file), not a picture
        self.measures: dict[str, str] = {}
        self.taps: dict[str, dict] = {}
        self.seed: Any = None
        self.scale: Any = None
        self.written: list[Path] = []
        self._claimed: set[str] = set()
        self._lock = threading.Lock()
        self.stop = threading.Event()

    # -- preparing ----------------------------------------------------------------------------

    def rewrite_for_tiny(self) -> list[str]:
        """Tiny mode: what no tiny file can stand in for under the core loaders, rewritten.

        ``wf.api`` is rewritten (``standins.tiny_dit.tiny_rewrite``): text encoders ComfyUI builds at
        full size become seeded conditioning (``standins.tiny_text``: each CLIPTextEncode they feed
        becomes SGTestConditioning, the loader is dropped), and UNETLoader / VAELoader of a tiny DiT or
        narrow VAE stand-in become SGTestDiTLoader / SGTestKLVAE (``standins.tiny_dit``). Returns one
        line per replacement, for the banner.
        """
        from .testbed.standins.tiny_dit import tiny_rewrite

        try:
            api, replaced = tiny_rewrite(self.wf.api)
        except ValueError as e:
            raise SetupError(f"tiny mode impossible for this workflow: {e}") from e
        self.wf.api = api
        return replaced

    def prepare(self, tiny: bool, taps: bool = False) -> None:
        """Fix what every pair shares: the tiny shrink, --seed, --scale; ``taps`` adds Measure taps."""
        from .testbed.standins import install as tm

        api = self.wf.api
        self.tiny = tiny
        self.content_id, self.style_id = P.image_nodes(api)
        self.video = api[self.content_id].get("class_type") == "LoadVideo"
        self.measures = P.measure_nodes(api)
        self.taps = P.measure_taps(api, self.wf.defs) if taps else {}
        steps = int(os.environ.get(TINY_STEPS_ENV) or TINY_STEPS)
        overrides = tm.tiny_overrides(api, size=TINY_SIZE, steps=steps) if tiny else {}
        seeds, scales = P.seed_inputs(api), P.scale_inputs(api)
        user: dict[str, dict] = {}
        if self.opts.seed is not None:
            if not seeds:
                self.progress.log("note: --seed given but the workflow has no sampler seed input; ignored")
            user = P.merge(user, {nid: {k: self.opts.seed} for nid, k in seeds})
        if self.opts.scale is not None:
            if not scales:
                self.progress.log("note: --scale given but the workflow has no Style Guidance scale input; ignored")
            user = P.merge(user, {nid: {k: self.opts.scale} for nid, k in scales})
        self.changes = P.merge(overrides, user)
        final = P.apply_api(api, self.changes)
        self.seed, self.scale = P.effective(final, seeds), P.effective(final, scales)
        if not self.measures:
            self.progress.log("note: the workflow has no StyleGuidanceMeasure node; losses.csv will have no loss terms")

    def prompt_for(self, content_name: str, style_name: str) -> tuple[dict, dict | None]:
        """The API prompt and the editor graph for one pair, given the images' (or the clip's) names in ComfyUI."""
        content_input = P.CONTENT_INPUT["LoadVideo" if self.video else "LoadImage"]
        changes = P.merge(self.changes, {self.content_id: {content_input: content_name},
                                         self.style_id: {"image": style_name}})
        api = P.apply_api(self.wf.api, changes)
        api.update(self.taps)
        ui = set_widget_values(self.wf.ui, self.wf.defs, changes) if self.wf.ui is not None else None
        return api, ui

    def extra_data(self, ui: dict | None) -> dict:
        return {"extra_pnginfo": {"workflow": ui}} if ui is not None else {}

    @property
    def tap_ids(self) -> dict[str, str]:
        return {nid: f"{P.TAP_PREFIX}{nid}" for nid in self.measures if f"{P.TAP_PREFIX}{nid}" in self.taps}

    # -- results ------------------------------------------------------------------------------

    def settings(self, pair: Pair) -> dict:
        return {
            "content": str(pair.content), "style": str(pair.style), "seed": self.seed, "scale": self.scale,
            "workflow": self.wf.name, "workflow_file": str(self.wf.path), "models": "tiny" if self.tiny else "real",
            "server": pair.server, "pairing": self.opts.pairing,
        }

    def _claim(self, pair: Pair, suffixes: list[str]) -> str:
        """A stem for the pair's files that no earlier pair of this run has written (lock held)."""
        def files(stem: str) -> list[str]:
            return [*result_names(stem, suffixes), f"{stem}.steps.json", f"{stem}.steps.png"]

        stem, k = pair.name, 1
        while any(f.casefold() in self._claimed for f in files(stem)):
            k += 1
            stem = f"{pair.name}_{k}"
        if stem != pair.name:
            self.progress.log(f"note: {pair.name}'s files would replace another pair's; written as {stem}")
        self._claimed.update(f.casefold() for f in files(stem))
        return stem

    def finish_ok(self, pair: Pair, images: list[bytes], measures: dict[str, str], steps: list[dict],
                  seconds: float) -> None:
        """Write the pair's images (metadata added, atomically) and videos (as saved) and record its loss terms and steps."""
        if not images:
            raise PairFailed("the workflow saved no image (no SaveImage or SaveVideo output)")
        settings = strict_json(self.settings(pair), ensure_ascii=True)
        data, suffixes = [], []
        for i, blob in enumerate(images):
            suffix = video_suffix(blob)
            if suffix is not None:  # a video as ComfyUI's save node wrote it (its own metadata inside)
                data.append(blob)
                suffixes.append(suffix)
                continue
            try:
                data.append(add_png_text(blob, "style_guidance", settings))
            except ValueError as e:
                raise PairFailed(f"output image {i + 1} is not a PNG ({e})") from e
            suffixes.append(".png")
        parsed = []
        for nid, title in self.measures.items():
            if nid not in measures:
                continue
            try:
                parsed.append({"node": nid, "title": title, **parse_measure(measures[nid])})
            except (ValueError, json.JSONDecodeError) as e:
                self.progress.log(f"warning: {pair.name}: the loss terms of node {nid} are unreadable ({e})")
        with self._lock:
            stem = self._claim(pair, suffixes)
            names = result_names(stem, suffixes)
            paths = [output_path(self.out_dir, n) for n in names]
            done: list[Path] = []
            try:  # all of the pair's files or none
                for path, png in zip(paths, data, strict=True):
                    write_atomic(path, png)
                    done.append(path)
                if steps:
                    done += write_steps(output_path(self.out_dir, f"{stem}.steps.json"),
                                        output_path(self.out_dir, f"{stem}.steps.png"), steps, pair.name,
                                        warn=self.progress.log)
            except BaseException:
                for path in done:
                    path.unlink(missing_ok=True)
                raise
            paths = done
            pair.outputs = [str(p) for p in paths]
            pair.measures = parsed
            pair.steps = steps
            pair.seconds = seconds
            pair.status = "ok"
            self.written.extend(paths)
            self.write_losses()

    def finish_failed(self, pair: Pair, error: str, status: str = "failed") -> None:
        with self._lock:
            pair.status = status
            pair.error = error
            self.write_losses()

    def write_losses(self) -> None:
        """losses.csv and losses.json for the pairs finished so far."""
        done = sorted((p for p in self.pairs if p.status not in ("pending",)), key=lambda p: p.index)
        info = {"workflow": self.wf.name, "workflow_file": str(self.wf.path),
                "models": "tiny" if self.tiny else "real", "seed": self.seed, "scale": self.scale,
                "measure_nodes": self.measures}
        write_losses(self.out_dir, done, self.measures, info)
