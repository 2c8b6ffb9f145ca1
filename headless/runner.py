"""Headless style transfer: run a Style Guidance workflow on content x style image pairs.

    python -m headless [WORKFLOW] --content PATH --style PATH [options]

Two ways to execute, same outputs:

* in-process (default): a real ComfyUI (``--comfyui PATH``, else the tree ``scripts/setup_env.sh``
  installed) is imported in this process and the workflow runs on ComfyUI's own validator and
  executor. ComfyUI gets a private temporary base folder (input/, output/, temp/, user/, and
  custom_nodes/ with this pack symlinked in), removed at the end, so nothing is written into a
  user's install. Models are read from a models folder registered with ComfyUI's
  ``folder_paths`` (every model folder of the temp base is mapped to the same sub-folder of the
  chosen models folder, which becomes the default): ``--models DIR``, else ``<--comfyui>/models``
  (plus that install's ``extra_model_paths.yaml``), else ``.cache/models`` in this repository.
* ``--server URL`` (repeatable): the pairs are sent to running ComfyUI servers over HTTP (upload,
  ``POST /prompt``, ``/history``, ``/view``), one worker per server; a pair that fails on one
  server (down, or an error) is retried once on each other server.

Tiny mode: when no real weights are reachable (no ``--comfyui``/``--models``/``--server`` given
and none of the workflow's model files exist), or with ``--tiny``, the runner writes tiny
random-weight stand-ins under the workflow's file names into a runner-owned folder
(``.cache/runner_tiny_models``) and shrinks the workflow (128 px, 4 steps, tiny open_clip). It
says so at the start and at the end: those pictures are noise, not a style transfer.

Exit codes: 0 every pair done; 1 some input skipped or some pair failed (the others are written);
2 bad arguments, workflow or missing model files (nothing run); 3 no ComfyUI found / no server
reachable; 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import csv
import hashlib
import io
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .progress import Progress

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS_DIR = REPO_ROOT / "workflows"
DEFAULT_WORKFLOW = "style_transfer_fast"
DEFAULT_MODELS_DIR = REPO_ROOT / ".cache" / "models"
IMAGE_SUBFOLDER = "style_guidance_runner"
CONTENT_TITLE, STYLE_TITLE = "content image", "style image"
MEASURE_CLASS = "StyleGuidanceMeasure"
TINY_SIZE, TINY_STEPS = 128, 4

EXIT_OK, EXIT_SOME_FAILED, EXIT_SETUP, EXIT_NO_COMFY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class SetupError(Exception):
    """Stops the run before any pair is executed; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_SETUP) -> None:
        super().__init__(message)
        self.code = code


class ServerDown(Exception):
    """The server could not be reached (refused, timed out, connection dropped)."""


class PairFailed(Exception):
    """The pair failed (validation or execution error, bad answer); the server itself is up."""


# ---------------------------------------------------------------------------------------------
# Command line


def shipped_workflows() -> list[str]:
    return sorted(p.stem for p in WORKFLOWS_DIR.glob("*.json"))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m headless",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Style transfer without the editor: runs a Style Guidance workflow once per content x style\n"
            "image pair and writes the result PNGs (with the ComfyUI workflow and the run settings in\n"
            "their metadata) plus losses.csv / losses.json with the measured loss terms."
        ),
        epilog=(
            "models:\n"
            "  Before anything runs, every model file the workflow names is looked up; missing ones are\n"
            "  listed with the folder each belongs in, and the run stops (exit 2). Exception, tiny mode:\n"
            "  with no --comfyui/--models/--server and none of the files present (a fresh machine), or\n"
            "  with --tiny, tiny random-weight stand-ins are used and the run says so loudly: the\n"
            "  pictures are then noise, not a style transfer. --real forbids tiny mode.\n"
            "\n"
            "outputs (in --output):\n"
            "  <content>__<style>.png  (or <content>__<style>_<n>.png when a workflow saves several),\n"
            "  PNG text chunks: 'prompt' and 'workflow' (as ComfyUI saves them) and 'style_guidance'\n"
            "  (JSON: content, style, seed, scale, workflow, models tiny/real, server).\n"
            "  losses.csv / losses.json: one row per pair and StyleGuidanceMeasure node.\n"
            "\n"
            "exit status: 0 all pairs done; 1 an input was skipped or a pair failed (the others are\n"
            "  written); 2 bad arguments / workflow / missing model files (nothing run);\n"
            "  3 no ComfyUI found or no server reachable; 130 interrupted.\n"
            "\n"
            "examples:\n"
            "  python -m headless --content workflows/images/style_guidance_content.jpg \\\n"
            "      --style workflows/images/style_guidance_style.jpg\n"
            "  python -m headless style_transfer_sd15 --content photos/ --style paintings/ --seed 7 \\\n"
            "      --comfyui ~/ComfyUI --gpu\n"
            "  python -m headless --content photos/ --style paintings/ --pairing zip \\\n"
            "      --server http://gpu1:8188 --server http://gpu2:8188\n"
        ),
    )
    ap.add_argument("workflow", nargs="?", default=DEFAULT_WORKFLOW, metavar="WORKFLOW",
                    help=f"a shipped workflow name ({', '.join(shipped_workflows())}) or a path to a "
                         "workflow JSON file, editor format or API format (default: %(default)s)")
    ap.add_argument("--content", required=True, metavar="PATH",
                    help="content image, or a folder: every image in it (sorted, not recursive)")
    ap.add_argument("--style", required=True, metavar="PATH", help="style image, or a folder of them")
    ap.add_argument("--pairing", choices=("product", "zip"), default="product",
                    help="product: every content with every style (default); zip: the i-th content with "
                         "the i-th style (unmatched ones are skipped and the exit status is 1)")
    ap.add_argument("--output", default="output", metavar="DIR", help="where results go (default: %(default)s/)")
    ap.add_argument("--seed", type=int, default=None, help="override every sampler's seed")
    ap.add_argument("--scale", type=float, default=None, help="override every Style Guidance 'scale' input")
    where = ap.add_argument_group("where it runs")
    where.add_argument("--comfyui", metavar="PATH",
                       help="ComfyUI install to run in-process (its code and its models/ folder); default: "
                            "COMFYUI_PATH, else the ComfyUI that scripts/setup_env.sh installed")
    where.add_argument("--models", metavar="DIR",
                       help="models folder (ComfyUI layout: checkpoints/, vae/, vgg/, open_clip/, ...) for "
                            "in-process runs; default: <--comfyui>/models, else .cache/models in this repo")
    where.add_argument("--gpu", action="store_true",
                       help="in-process: let ComfyUI use the GPU (default: CPU)")
    where.add_argument("--server", action="append", default=[], metavar="URL",
                       help="submit to a running ComfyUI server instead (repeat for several; pairs are "
                            "spread over them and retried on another one if a server fails)")
    where.add_argument("--timeout", type=float, default=3600.0, metavar="S",
                       help="server mode: give up on a pair after S seconds (default: %(default)s)")
    mode = where.add_mutually_exclusive_group()
    mode.add_argument("--tiny", action="store_true",
                      help="force tiny mode: random-weight stand-ins, 128 px, 4 steps (a smoke test; the "
                           "pictures are noise). Server mode: only the workflow changes are applied, the "
                           "servers must hold the stand-ins")
    mode.add_argument("--real", action="store_true",
                      help="never fall back to tiny mode: missing model files are an error (exit 2)")
    return ap


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


def parse_args(argv: list[str] | None) -> Options:
    ap = build_parser()
    ns = ap.parse_args(argv)
    if ns.server and (ns.comfyui or ns.models or ns.gpu):
        ap.error("--comfyui, --models and --gpu are for in-process runs; they do not combine with --server")
    return Options(**vars(ns))


# ---------------------------------------------------------------------------------------------
# Inputs: images and pairs


@dataclass
class Pair:
    index: int
    content: Path
    style: Path
    name: str  # output file stem: <content-stem>__<style-stem>
    status: str = "pending"  # ok | failed
    seconds: float = 0.0
    server: str | None = None
    error: str = ""
    outputs: list[str] = field(default_factory=list)
    measures: list[dict] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.name


def image_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable image (None when it is): verified, then fully decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            im.load()
    except UnidentifiedImageError:
        return "not an image (PIL cannot identify the file)"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        return f"unreadable or corrupt image ({type(e).__name__}: {e})"
    except Exception as e:  # noqa: BLE001 - any decoder failure means this file is skipped, not the run
        return f"unreadable image ({type(e).__name__}: {e})"
    return None


def collect_images(arg: str, role: str) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The usable images at ``arg`` (a file or a folder) and the skipped files with the reason."""
    path = Path(arg).expanduser()
    if path.is_dir():
        candidates = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not candidates:
            raise SetupError(f"--{role} {arg}: the folder has no files")
    elif path.is_file():
        candidates = [path]
    else:
        raise SetupError(f"--{role} {arg}: no such file or folder")
    good, skipped = [], []
    for p in candidates:
        problem = image_problem(p)
        (skipped.append((p, problem)) if problem else good.append(p.resolve()))
    return good, skipped


def _stems(paths: list[Path]) -> dict[Path, str]:
    """File stems for output names; a stem shared by two files keeps its extension (a_jpg, a_png)."""
    counts: dict[str, int] = {}
    for p in paths:
        counts[p.stem] = counts.get(p.stem, 0) + 1
    return {p: (p.stem if counts[p.stem] == 1 else p.name.replace(".", "_")) for p in paths}


def make_pairs(contents: list[Path], styles: list[Path], pairing: str) -> tuple[list[Pair], list[str]]:
    """Pairs in run order and messages about content/style images left without a partner."""
    cs, ss = _stems(contents), _stems(styles)
    problems: list[str] = []
    if pairing == "zip":
        matched = list(zip(contents, styles, strict=False))
        for p in contents[len(matched):]:
            problems.append(f"skipped content {p}: no style image at the same position (--pairing zip: "
                            f"{len(contents)} contents, {len(styles)} styles)")
        for p in styles[len(matched):]:
            problems.append(f"skipped style {p}: no content image at the same position (--pairing zip: "
                            f"{len(contents)} contents, {len(styles)} styles)")
    else:
        matched = [(c, s) for c in contents for s in styles]
    pairs = [Pair(i, c, s, f"{cs[c]}__{ss[s]}") for i, (c, s) in enumerate(matched)]
    return pairs, problems


def input_name(path: Path) -> str:
    """The name a pair's image gets in ComfyUI's input folder: stable per content, no clashes."""
    digest = hashlib.sha1(path.read_bytes()).hexdigest()[:10]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem)[:60] or "image"
    return f"{stem}_{digest}{path.suffix.lower()}"


# ---------------------------------------------------------------------------------------------
# The workflow


@dataclass
class Workflow:
    name: str
    path: Path
    ui: dict | None  # editor-format graph (embedded in the PNGs), None for API-format files
    api: dict | None = None  # filled once node definitions are known
    defs: dict | None = None


def load_workflow(arg: str) -> Workflow:
    path = Path(arg).expanduser()
    if not path.is_file():
        shipped = WORKFLOWS_DIR / (arg if arg.endswith(".json") else arg + ".json")
        if "/" not in arg and shipped.is_file():
            path = shipped
        else:
            raise SetupError(f"workflow {arg!r}: no such file, and not a shipped workflow "
                             f"(shipped: {', '.join(shipped_workflows())})")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SetupError(f"workflow {path}: not readable JSON ({e})") from e
    if not isinstance(data, dict):
        raise SetupError(f"workflow {path}: expected a JSON object")
    if "nodes" in data:
        return Workflow(path.stem, path.resolve(), data)
    if isinstance(data.get("prompt"), dict) and "nodes" not in data:  # {"prompt": {...}} as /prompt takes it
        data = data["prompt"]
    bad = [k for k, v in data.items() if not (isinstance(v, dict) and "class_type" in v)]
    if bad or not data:
        raise SetupError(f"workflow {path}: neither an editor-format workflow (no 'nodes') nor an API-format "
                         f"prompt (entries without class_type: {', '.join(map(str, bad[:5])) or 'none at all'})")
    return Workflow(path.stem, path.resolve(), None, data)


def convert(wf: Workflow, defs: dict) -> None:
    """Fill ``wf.api`` (editor format -> API format with the node definitions) and check its shape."""
    from .workflow import WorkflowError, ui_to_api

    wf.defs = defs
    if wf.ui is not None:
        try:
            wf.api = ui_to_api(wf.ui, defs)
        except WorkflowError as e:
            raise SetupError(f"workflow {wf.path}: {e}") from e
    else:
        missing = sorted({n["class_type"] for n in wf.api.values() if n["class_type"] not in defs})
        if missing:
            raise SetupError(f"workflow {wf.path}: node types not installed: {', '.join(missing)}")
    image_nodes(wf.api)  # fail now, not once per pair


def _title(node: dict) -> str:
    return str((node.get("_meta") or {}).get("title") or node.get("class_type"))


def image_nodes(api: dict) -> tuple[str, str]:
    """The LoadImage node ids that take the content and the style image (by title)."""
    loads = {nid: n for nid, n in api.items() if n.get("class_type") == "LoadImage"}
    found = {}
    for role in (CONTENT_TITLE, STYLE_TITLE):
        ids = [nid for nid, n in loads.items() if _title(n).strip().lower() == role]
        if len(ids) != 1:
            raise SetupError(
                f"the workflow needs exactly one LoadImage node titled '{role.capitalize()}' (found {len(ids)}; "
                f"LoadImage nodes: {', '.join(f'{k} {_title(v)!r}' for k, v in loads.items()) or 'none'}). "
                "Rename the nodes in the editor (right click > Title), or give API files a _meta.title.")
        found[role] = ids[0]
    return found[CONTENT_TITLE], found[STYLE_TITLE]


def _is_value(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def seed_inputs(api: dict) -> list[tuple[str, str]]:
    """(node id, input) of every sampler seed: 'noise_seed' anywhere, 'seed' on *Sampler* nodes."""
    out = []
    for nid, node in api.items():
        inputs = node.get("inputs", {})
        for name in ("seed", "noise_seed"):
            if name in inputs and _is_value(inputs[name]) and (
                    name == "noise_seed" or "sampler" in node.get("class_type", "").lower()):
                out.append((nid, name))
    return out


def scale_inputs(api: dict) -> list[tuple[str, str]]:
    """(node id, 'scale') of every Style Guidance node with a guidance scale widget."""
    return [(nid, "scale") for nid, n in api.items()
            if n.get("class_type", "").startswith("StyleGuidance") and _is_value(n.get("inputs", {}).get("scale"))]


def merge(*changes: dict) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for ch in changes:
        for nid, values in ch.items():
            out.setdefault(str(nid), {}).update(values)
    return out


def apply_api(api: dict, changes: dict) -> dict:
    new = copy.deepcopy(api)
    for nid, values in changes.items():
        if nid in new:
            for k, v in values.items():
                if not isinstance(new[nid]["inputs"].get(k), list):  # never replace a link
                    new[nid]["inputs"][k] = v
    return new


def apply_ui(ui: dict, defs: dict, changes: dict) -> dict:
    """The same changes in the editor graph's widget values, so the embedded workflow is what ran."""
    new = copy.deepcopy(ui)
    by_id = {str(n.get("id")): n for n in new.get("nodes", [])}
    for nid, values in changes.items():
        node = by_id.get(nid)
        d = defs.get(node.get("type")) if node else None
        if d is None:
            continue
        widgets = node.get("widgets_values")
        if isinstance(widgets, dict):
            widgets.update({k: v for k, v in values.items() if k in widgets})
            continue
        if not isinstance(widgets, list):
            continue
        pos = 0
        for w in d.widgets:
            if w.name in values and pos < len(widgets):
                widgets[pos] = values[w.name]
            pos += 1 + w.extra_values
    return new


def _effective(api: dict, where: list[tuple[str, str]]) -> Any:
    values = {nid: api[nid]["inputs"][k] for nid, k in where}
    distinct = set(values.values())
    return next(iter(distinct)) if len(distinct) == 1 else (values or None)


# ---------------------------------------------------------------------------------------------
# Loss terms, PNG metadata, files

_LINE = re.compile(r"^\s*(?P<name>[^:]+?)\s*:\s*(?P<value>[-+0-9.eEinfINFaAN]+)\s*(?:\(weight\s*(?P<weight>[^)]*)\))?\s*$")


def parse_measure_text(text: str) -> tuple[dict[str, float], float | None, dict[str, float]]:
    """Parse StyleGuidanceMeasure's text ("name: value (weight w)" lines, "total: t")."""
    terms: dict[str, float] = {}
    weights: dict[str, float] = {}
    total = None
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        try:
            value = float(m["value"])
        except ValueError:
            continue
        if m["name"] == "total" and m["weight"] is None:
            total = value
        else:
            terms[m["name"]] = value
            with contextlib.suppress(TypeError, ValueError):
                weights[m["name"]] = float(m["weight"])
    return terms, total, weights


def measure_nodes(api: dict) -> dict[str, str]:
    ids = sorted((nid for nid, n in api.items() if n.get("class_type") == MEASURE_CLASS), key=_id_key)
    return {nid: _title(api[nid]) for nid in ids}


def _id_key(nid: str) -> tuple:
    return (0, int(nid), "") if str(nid).isdigit() else (1, 0, str(nid))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def add_png_text(png: bytes, key: str, value: str) -> bytes:
    """Insert a tEXt chunk before IEND, leaving every other byte (and chunk) as ComfyUI wrote it."""
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG")
    data = key.encode("latin-1") + b"\0" + value.encode("latin-1")
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data) & 0xFFFFFFFF)
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        if kind == b"IEND":
            return png[:pos] + chunk + png[pos:]
        pos += 12 + length
    raise ValueError("PNG without IEND chunk")


_UMASK = os.umask(0o022)
os.umask(_UMASK)


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary name in the same folder and rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


# ---------------------------------------------------------------------------------------------
# The run: shared between both back ends


class Run:
    """Prepared workflow, settings and result bookkeeping for one invocation."""

    def __init__(self, opts: Options, wf: Workflow, pairs: list[Pair], progress: Progress) -> None:
        self.opts = opts
        self.wf = wf
        self.pairs = pairs
        self.progress = progress
        self.out_dir = Path(opts.output).expanduser().resolve()
        self.tiny = False
        self.tiny_note = ""
        self.changes: dict[str, dict] = {}
        self.content_id = self.style_id = ""
        self.measures: dict[str, str] = {}
        self.seed: Any = None
        self.scale: Any = None
        self._lock = threading.Lock()
        self.written: list[Path] = []

    def prepare(self, tiny: bool) -> None:
        """Fix the input changes every pair shares (tiny shrink, --seed, --scale)."""
        from . import tiny_models as tm

        api = self.wf.api
        self.tiny = tiny
        self.content_id, self.style_id = image_nodes(api)
        self.measures = measure_nodes(api)
        overrides = tm.tiny_overrides(api, size=TINY_SIZE, steps=TINY_STEPS) if tiny else {}
        seeds, scales = seed_inputs(api), scale_inputs(api)
        user: dict[str, dict] = {}
        if self.opts.seed is not None:
            if not seeds:
                self.progress.log("note: --seed given but the workflow has no sampler seed input; ignored")
            user = merge(user, {nid: {k: self.opts.seed} for nid, k in seeds})
        if self.opts.scale is not None:
            if not scales:
                self.progress.log("note: --scale given but the workflow has no Style Guidance scale input; ignored")
            user = merge(user, {nid: {k: self.opts.scale} for nid, k in scales})
        self.changes = merge(overrides, user)
        final = apply_api(api, self.changes)
        self.seed, self.scale = _effective(final, seeds), _effective(final, scales)
        if not self.measures:
            self.progress.log("note: the workflow has no StyleGuidanceMeasure node; losses.csv will have no rows")

    def prompt_for(self, content_name: str, style_name: str) -> tuple[dict, dict | None]:
        """The API prompt and the editor graph for one pair, given the images' names in ComfyUI."""
        changes = merge(self.changes, {self.content_id: {"image": content_name}, self.style_id: {"image": style_name}})
        api = apply_api(self.wf.api, changes)
        ui = apply_ui(self.wf.ui, self.wf.defs, changes) if self.wf.ui is not None else None
        return api, ui

    def extra_data(self, ui: dict | None) -> dict:
        return {"extra_pnginfo": {"workflow": ui}} if ui is not None else {}

    # -- results ----------------------------------------------------------------------------

    def settings(self, pair: Pair) -> dict:
        return {
            "content": str(pair.content), "style": str(pair.style), "seed": self.seed, "scale": self.scale,
            "workflow": self.wf.name, "workflow_file": str(self.wf.path), "models": "tiny" if self.tiny else "real",
            "server": pair.server, "pairing": self.opts.pairing,
        }

    def finish_ok(self, pair: Pair, images: list[bytes], texts: dict[str, str], seconds: float) -> None:
        """Write the pair's images (atomically, metadata added) and record its loss terms."""
        if not images:
            raise PairFailed("the workflow saved no image (no SaveImage output)")
        settings = json.dumps(self.settings(pair), ensure_ascii=True)
        paths = []
        for i, png in enumerate(images):
            suffix = f"_{i + 1}" if len(images) > 1 else ""
            path = self.out_dir / f"{pair.name}{suffix}.png"
            try:
                data = add_png_text(png, "style_guidance", settings)
            except ValueError as e:
                raise PairFailed(f"output image {i + 1} is not a PNG ({e})") from e
            paths.append((path, data))
        for path, data in paths:
            write_atomic(path, data)
        measures = []
        for nid, title in self.measures.items():
            text = texts.get(nid)
            if text is None:
                continue
            terms, total, weights = parse_measure_text(text)
            measures.append({"node": nid, "title": title, "terms": terms, "weights": weights, "total": total})
        with self._lock:
            pair.outputs = [str(p) for p, _ in paths]
            pair.measures = measures
            pair.seconds = seconds
            pair.status = "ok"
            self.written.extend(p for p, _ in paths)
            self.write_losses()

    def finish_failed(self, pair: Pair, error: str) -> None:
        with self._lock:
            pair.status = "failed"
            pair.error = error
            self.write_losses()

    def write_losses(self) -> None:
        """losses.csv and losses.json for the pairs finished so far (rewritten atomically)."""
        done = sorted((p for p in self.pairs if p.status in ("ok", "failed")), key=lambda p: p.index)
        terms: list[str] = []
        for p in done:
            for m in p.measures:
                terms.extend(t for t in m["terms"] if t not in terms)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["content", "style", "node", "title", *terms, "total", "seconds"])
        for p in done:
            for m in p.measures:
                w.writerow([str(p.content), str(p.style), m["node"], m["title"],
                            *[_csv_num(m["terms"].get(t)) for t in terms], _csv_num(m["total"]), f"{p.seconds:.2f}"])
        doc = {
            "workflow": self.wf.name, "workflow_file": str(self.wf.path), "models": "tiny" if self.tiny else "real",
            "seed": self.seed, "scale": self.scale,
            "pairs": [{"content": str(p.content), "style": str(p.style), "name": p.name, "status": p.status,
                       "seconds": round(p.seconds, 3), "server": p.server, "outputs": p.outputs,
                       "error": p.error or None, "attempts": p.attempts, "measures": p.measures} for p in done],
        }
        write_atomic(self.out_dir / "losses.csv", buf.getvalue().encode())
        write_atomic(self.out_dir / "losses.json", json.dumps(_finite(doc), indent=1, allow_nan=False).encode())


def _csv_num(v: float | None) -> str:
    return "" if v is None else repr(float(v))


def _finite(v: Any) -> Any:
    """Strict JSON: NaN/inf losses become null (the CSV keeps 'nan'/'inf')."""
    if isinstance(v, float):
        return v if v == v and v not in (float("inf"), float("-inf")) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


# ---------------------------------------------------------------------------------------------
# Models


def _taesd_present(name: str, files: list[str]) -> bool:
    return any(f.startswith(f"{name}_encoder.") for f in files) and any(f.startswith(f"{name}_decoder.") for f in files)


def missing_models_in_process(api: dict) -> list[tuple[str, str, str]]:
    """(file name, folder to put it in, node) for every model file ComfyUI cannot find."""
    import folder_paths

    from . import tiny_models as tm

    missing = []
    for nid, _inp, name, folder in tm.model_files(api):
        node = f"node {nid} {_title(api[nid])!r}"
        if folder == "vae" and name in tm.TAESD_NAMES:
            if name == "pixel_space":
                continue
            if not _taesd_present(name, folder_paths.get_filename_list("vae_approx")):
                where = folder_paths.get_folder_paths("vae_approx")[0]
                missing.append((f"{name}_encoder.safetensors + {name}_decoder.safetensors", where, node))
            continue
        try:
            paths = folder_paths.get_folder_paths(folder)
        except KeyError:
            missing.append((name, f"<models>/{folder} (a folder this ComfyUI does not know)", node))
            continue
        if folder_paths.get_full_path(folder, name) is None:
            missing.append((name, paths[0] if paths else folder, node))
    return missing


def missing_message(wf: Workflow, missing: list[tuple[str, str, str]], hint: str) -> str:
    width = max(len(m[0]) for m in missing)
    lines = [f"Missing model files: the workflow '{wf.name}' needs {len(missing)} file(s) that are not there "
             "(nothing was run):"]
    lines += [f"  {name:<{width}}  ->  {where}   ({node})" for name, where, node in missing]
    lines.append(hint)
    return "\n".join(lines)


def tiny_banner(real_missing: list[tuple[str, str, str]] | None, forced: bool, server: bool = False) -> str:
    why = "--tiny given" if forced else "no real model weights found"
    text = (f"TINY MODE: {why}, running on tiny random-weight stand-ins; the pictures are noise, not a style "
            "transfer.")
    if server:
        text += (" Server mode: only the workflow is shrunk (128 px, 4 steps, tiny open_clip); the servers must "
                 "hold the stand-ins under the workflow's file names.")
    elif real_missing:
        files = "; ".join(f"{name} in {where}" for name, where, _ in real_missing)
        text += f" To run the real thing put {files} - or pass --comfyui PATH (an install that has them)."
    return text


def _map_models_root(root: Path) -> None:
    """Make ``root`` (ComfyUI models layout) the first folder of every model type of the temp base."""
    import folder_paths

    base_models = Path(folder_paths.models_dir).resolve()
    for name, (paths, _exts) in list(folder_paths.folder_names_and_paths.items()):
        for p in reversed(list(paths)):
            try:
                rel = Path(p).resolve().relative_to(base_models)
            except ValueError:
                continue
            folder_paths.add_model_folder_path(name, str(root / rel), is_default=True)


# ---------------------------------------------------------------------------------------------
# In-process back end


class InProcess:
    def __init__(self, run: Run) -> None:
        self.run = run
        self.opts = run.opts
        self.base: Path | None = None
        self.comfy_root: Path | None = None
        self._key: object = None

    def start(self) -> None:
        from . import comfy_host as hc
        from .locate import ComfyUINotFound, locate_comfyui

        try:
            self.comfy_root = locate_comfyui(self.opts.comfyui)
        except ComfyUINotFound as e:
            raise SetupError(str(e), EXIT_NO_COMFY) from e
        self.base = Path(tempfile.mkdtemp(prefix="sg_runner_"))
        hc.make_base(self.base, standin_nodes=False)
        self.run.progress.log(f"ComfyUI: {self.comfy_root} (in-process, {'GPU allowed' if self.opts.gpu else 'CPU'})")
        hc.configure_comfy(self.comfy_root, self.base)
        if self.opts.gpu:
            from comfy.cli_args import args

            args.cpu = False
        hc.init_nodes()
        import comfy.utils

        comfy.utils.set_progress_bar_enabled(False)  # our bars instead of the sampler's own tqdm
        comfy.utils.set_progress_bar_global_hook(self._hook)
        from .workflow import defs_in_process

        convert(self.run.wf, defs_in_process())
        self.executor = hc.InProcessComfy()

    def models_dir(self) -> Path:
        if self.opts.models:
            return Path(self.opts.models).expanduser().resolve()
        if self.opts.comfyui:
            return (self.comfy_root / "models").resolve()
        return DEFAULT_MODELS_DIR

    def setup_models(self) -> bool:
        """Register the models folder, check every file; returns True for tiny mode."""
        from . import tiny_models as tm

        wf, opts = self.run.wf, self.opts
        real = self.models_dir()
        _map_models_root(real)
        if opts.comfyui and not opts.models:
            yaml_path = self.comfy_root / "extra_model_paths.yaml"
            if yaml_path.is_file():
                try:
                    from utils.extra_config import load_extra_path_config

                    load_extra_path_config(str(yaml_path))
                except Exception as e:  # noqa: BLE001 - a broken yaml only loses its extra folders
                    self.run.progress.log(f"warning: could not read {yaml_path}: {e}")
        files = tm.model_files(wf.api)
        missing = missing_models_in_process(wf.api)
        auto = not (opts.real or opts.comfyui or opts.models) and len(missing) == len(files) and files
        if not (opts.tiny or auto):
            if missing:
                hint = ("Put each file in the folder shown, or pass --comfyui PATH / --models DIR for a folder that "
                        "has them" + ("." if opts.real else ", or --tiny for a smoke test on random-weight stand-ins."))
                raise SetupError(missing_message(wf, missing, hint))
            self.run.progress.log(f"models: {real}")
            return False
        self.run.tiny_note = tiny_banner(missing, forced=opts.tiny)
        self.run.progress.log(self.run.tiny_note)
        tiny_dir = tm.cache_dir().parent / "runner_tiny_models"
        try:
            tm.install_for_workflow(tiny_dir, wf.api)
        except NotImplementedError as e:
            raise SetupError(f"tiny mode impossible for this workflow: {e}") from e
        _map_models_root(tiny_dir)
        still = missing_models_in_process(wf.api)
        if still:
            raise SetupError(missing_message(wf, still, "(stand-ins could not be installed for these)"))
        return True

    def _hook(self, value, total, preview=None, prompt_id=None, node_id=None, **_kw) -> None:
        if node_id is None:
            with contextlib.suppress(Exception):
                from comfy_execution.utils import get_executing_context

                ctx = get_executing_context()
                node_id = ctx.node_id if ctx is not None else None
        if self._key is not None:
            self.run.progress.step(self._key, value, total, node_id)

    def run_all(self) -> None:
        from .comfy_host import PromptFailed

        run = self.run
        for pair in run.pairs:
            pair.server = None
            run.progress.start(pair.index, pair.label)
            self._key = pair.index
            start = time.perf_counter()
            try:
                names = {}
                for role, path in (("content", pair.content), ("style", pair.style)):
                    name = f"{IMAGE_SUBFOLDER}/{input_name(path)}"
                    target = self.base / "input" / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
                    names[role] = name
                api, ui = run.prompt_for(names["content"], names["style"])
                result = self.executor.run(api, extra_data=run.extra_data(ui))
                images, texts = self._collect(api, result.outputs)
                run.finish_ok(pair, images, texts, time.perf_counter() - start)
                run.progress.finish(pair.index, "ok", f"{time.perf_counter() - start:.1f} s")
            except (PromptFailed, PairFailed, OSError) as e:
                pair.seconds = time.perf_counter() - start
                run.finish_failed(pair, _one_line(str(e)))
                run.progress.finish(pair.index, "FAILED", _one_line(str(e), 300))
            finally:
                self._key = None

    def _collect(self, api: dict, outputs: dict) -> tuple[list[bytes], dict[str, str]]:
        images, texts = [], {}
        for nid in sorted(outputs, key=_id_key):
            ui = outputs[nid] or {}
            for img in ui.get("images", []) or []:
                if img.get("type", "output") != "output":
                    continue  # previews
                path = self.base / "output" / img.get("subfolder", "") / img["filename"]
                images.append(path.read_bytes())
                path.unlink()
            if nid in self.run.measures and ui.get("text"):
                text = ui["text"]
                texts[nid] = "\n".join(text) if isinstance(text, (list, tuple)) else str(text)
        return images, texts

    def close(self) -> None:
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)


def _one_line(text: str, limit: int = 2000) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Server back end


def _http_json(url: str, timeout: float = 30.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def _down_reason(e: BaseException) -> str:
    reason = getattr(e, "reason", None) or getattr(e, "os_error", None) or e
    text = str(reason) or type(reason).__name__
    if isinstance(reason, (ConnectionRefusedError,)) or "refused" in text.lower():
        return "connection refused"
    if isinstance(reason, (TimeoutError, asyncio.TimeoutError)) or "timed out" in text.lower():
        return "timed out"
    return text


def _combo_options(spec: Any) -> list | None:
    if isinstance(spec, (list, tuple)) and spec:
        if isinstance(spec[0], (list, tuple)):
            return list(spec[0])
        if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
            return list(spec[1].get("options") or [])
    return None


def missing_models_on_server(api: dict, info: dict) -> list[tuple[str, str, str]]:
    """Model files of ``api`` that the server does not offer in the loader's choice list."""
    from . import tiny_models as tm

    missing = []
    for nid, inp, name, folder in tm.model_files(api):
        cls = api[nid]["class_type"]
        inputs = (info.get(cls) or {}).get("input") or {}
        spec = (inputs.get("required") or {}).get(inp) or (inputs.get("optional") or {}).get(inp)
        options = _combo_options(spec)
        if options is None or name in options:
            continue
        node = f"node {nid} {_title(api[nid])!r}"
        if folder == "vae" and name in tm.TAESD_NAMES:
            missing.append((f"{name}_encoder.safetensors + {name}_decoder.safetensors", "models/vae_approx/", node))
        else:
            missing.append((name, f"models/{folder}/", node))
    return missing


class Scheduler:
    """Shared queue of pairs for the server workers; each pair is tried at most once per server."""

    def __init__(self, pairs: list[Pair], servers: list[str], run: Run) -> None:
        self.pending: deque[Pair] = deque(pairs)
        self.alive = set(servers)
        self.unresolved = len(pairs)
        self.run = run
        self.cond = threading.Condition()

    def take(self, server: str) -> Pair | None:
        with self.cond:
            while True:
                if self.unresolved == 0 or server not in self.alive:
                    return None
                for pair in self.pending:
                    if server not in pair.tried:
                        self.pending.remove(pair)
                        pair.tried.append(server)
                        return pair
                self._fail_stuck()
                self.cond.wait(0.5)

    def done(self) -> None:
        with self.cond:
            self.unresolved -= 1
            self.cond.notify_all()

    def failed(self, pair: Pair, server: str, reason: str, server_down: bool) -> None:
        log = self.run.progress.log
        with self.cond:
            pair.attempts.append(f"{server}: {reason}")
            if server_down and server in self.alive:
                self.alive.discard(server)
                log(f"server {server} failed ({reason}); no more pairs go to it")
            others = self.alive - set(pair.tried)
            if others:
                log(f"pair {pair.label} failed on {server} ({_one_line(reason, 300)}); retrying on another server")
                self.pending.appendleft(pair)
            else:
                self._give_up(pair)
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
        self.run.finish_failed(pair, error)
        self.run.progress.finish(pair.index, "FAILED", _one_line(error, 300))


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
            with self.scheduler.cond:
                self.scheduler.alive.discard(self.url)
                self.scheduler._fail_stuck()
                self.scheduler.cond.notify_all()
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
                self.run.progress.start(pair.index, f"{pair.label} @ {self.url}", self.slot, name=pair.label)
                start = time.perf_counter()
                try:
                    images, texts = await self._pair(session, pair)
                    seconds = pair.seconds + time.perf_counter() - start  # failed attempts included
                    self.run.finish_ok(pair, images, texts, seconds)
                except ServerDown as e:
                    self._failed(pair, str(e), True, start)
                    continue
                except (PairFailed, OSError) as e:
                    self._failed(pair, str(e), False, start)
                    continue
                except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as e:
                    self._failed(pair, _down_reason(e), True, start)
                    continue
                except Exception as e:  # noqa: BLE001 - any other error fails this attempt, not the worker
                    self._failed(pair, f"{type(e).__name__}: {e}", False, start)
                    continue
                self.scheduler.done()
                self.run.progress.finish(pair.index, "ok", f"{seconds:.1f} s on {self.url}")

    def _failed(self, pair: Pair, reason: str, down: bool, start: float) -> None:
        pair.seconds += time.perf_counter() - start
        self.run.progress.abandon(pair.index, "server down" if down else "error", _one_line(reason, 300))
        self.scheduler.failed(pair, self.url, reason, down)

    async def _pair(self, session, pair: Pair) -> tuple[list[bytes], dict[str, str]]:
        import aiohttp

        names = {}
        for role, path in (("content", pair.content), ("style", pair.style)):
            form = aiohttp.FormData()
            form.add_field("image", path.read_bytes(), filename=input_name(path),
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
                raise ServerDown(_down_reason(e)) from e
            names[role] = f"{j['subfolder']}/{j['name']}" if j.get("subfolder") else j["name"]
        api, ui = self.run.prompt_for(names["content"], names["style"])
        client_id = uuid.uuid4().hex
        ws = None
        with contextlib.suppress(Exception):
            ws_url = "ws" + self.url[4:] if self.url.startswith("http") else self.url
            ws = await session.ws_connect(f"{ws_url}/ws?clientId={client_id}", heartbeat=30)
        try:
            body = {"prompt": api, "client_id": client_id, "extra_data": self.run.extra_data(ui)}
            async with session.post(self.url + "/prompt", json=body) as r:
                text = await r.text()
                if r.status != 200:
                    raise PairFailed(f"the server rejected the prompt (HTTP {r.status}): {_prompt_error(text)}")
                prompt_id = json.loads(text)["prompt_id"]
            entry = await self._wait(session, ws, prompt_id, pair)
        finally:
            if ws is not None:
                await ws.close()
        status = entry.get("status") or {}
        if status.get("status_str") == "error":
            raise PairFailed(f"execution failed on the server: {_history_error(status)}")
        images, texts = [], {}
        outputs = entry.get("outputs") or {}
        for nid in sorted(outputs, key=_id_key):
            ui_out = outputs[nid] or {}
            for img in ui_out.get("images", []) or []:
                if img.get("type", "output") != "output":
                    continue
                query = urllib.parse.urlencode({"filename": img["filename"], "subfolder": img.get("subfolder", ""),
                                                "type": "output"})
                async with session.get(f"{self.url}/view?{query}") as r:
                    if r.status != 200:
                        raise PairFailed(f"GET /view {img['filename']} -> HTTP {r.status}")
                    images.append(await r.read())
            if nid in self.run.measures and ui_out.get("text"):
                text = ui_out["text"]
                texts[nid] = "\n".join(text) if isinstance(text, (list, tuple)) else str(text)
        return images, texts

    async def _wait(self, session, ws, prompt_id: str, pair: Pair) -> dict:
        """Wait for the prompt in /history; progress from the websocket while it runs."""
        import aiohttp

        deadline = time.monotonic() + self.run.opts.timeout
        next_poll = 0.0
        while time.monotonic() < deadline:
            if ws is not None and not ws.closed:
                try:
                    msg = await ws.receive(timeout=0.5)
                except (asyncio.TimeoutError, TimeoutError):
                    msg = None
                if msg is not None and msg.type == aiohttp.WSMsgType.TEXT:
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        data = json.loads(msg.data)
                        d = data.get("data") or {}
                        if data.get("type") == "progress" and d.get("prompt_id") in (None, prompt_id):
                            self.run.progress.step(pair.index, int(d["value"]), int(d["max"]), d.get("node"))
                        elif data.get("type") in ("execution_success", "execution_error", "execution_interrupted") \
                                or (data.get("type") == "executing" and d.get("node") is None):
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
        with contextlib.suppress(Exception):
            async with session.post(f"{self.url}/interrupt", json={"prompt_id": prompt_id}):
                pass
        raise PairFailed(f"not finished after {self.run.opts.timeout:g} s (--timeout)")


def _prompt_error(text: str) -> str:
    try:
        j = json.loads(text)
    except ValueError:
        return _one_line(text, 800)
    err = j.get("error") or {}
    parts = [str(err.get("message", "")), str(err.get("details", ""))]
    for nid, ne in (j.get("node_errors") or {}).items():
        for e in ne.get("errors", []):
            parts.append(f"node {nid} ({ne.get('class_type')}): {e.get('message')} {e.get('details', '')}")
    return _one_line("; ".join(p for p in parts if p.strip()), 1500)


def _history_error(status: dict) -> str:
    for kind, data in status.get("messages") or []:
        if kind == "execution_error":
            return _one_line(f"node {data.get('node_id')} ({data.get('node_type')}): "
                             f"{data.get('exception_type')}: {data.get('exception_message')}", 1500)
    return _one_line(json.dumps(status), 800)


class Servers:
    def __init__(self, run: Run) -> None:
        self.run = run
        self.urls = [u.rstrip("/") for u in run.opts.server]
        seen: set[str] = set()
        self.urls = [u for u in self.urls if not (u in seen or seen.add(u))]

    def start(self) -> None:
        """Fetch node definitions, convert the workflow; check the models on every reachable server."""
        log = self.run.progress.log
        self.infos: dict[str, dict] = {}
        for url in self.urls:
            try:
                self.infos[url] = _http_json(url + "/object_info", timeout=60)
            except (urllib.error.URLError, OSError, ValueError) as e:
                log(f"server {url}: not reachable now ({_down_reason(e)}); its pairs go to the others "
                    "if it stays down")
        if not self.infos:
            raise SetupError("no server reachable: " + ", ".join(self.urls), EXIT_NO_COMFY)
        from .workflow import defs_from_object_info

        first = next(iter(self.infos.values()))
        convert(self.run.wf, defs_from_object_info(first))

    def setup_models(self) -> bool:
        wf = self.run.wf
        missing_any = []
        for url, info in self.infos.items():
            missing = missing_models_on_server(wf.api, info)
            missing_any += [(n, f"{where} of the server {url}", node) for n, where, node in missing]
        if missing_any:
            raise SetupError(missing_message(
                wf, missing_any, "Put each file in that folder of the server's ComfyUI (then restart it or press "
                                 "'Refresh' in its editor), or leave that server out."))
        if self.run.opts.tiny:
            self.run.tiny_note = tiny_banner(None, forced=True, server=True)
            self.run.progress.log(self.run.tiny_note)
            return True
        return False

    def run_all(self) -> None:
        scheduler = Scheduler(self.run.pairs, self.urls, self.run)
        workers = [ServerWorker(url, i, self.run, scheduler) for i, url in enumerate(self.urls)]
        for w in workers:
            w.thread.start()
        for w in workers:
            while w.thread.is_alive():
                w.thread.join(0.5)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------
# Main


def print_summary(run: Run, skipped: list[str]) -> None:
    out = run.progress.log
    pairs = run.pairs
    if pairs:
        width = max(12, *(len(p.name) for p in pairs))
        out("")
        out(f"{'pair':<{width}}  {'status':<7} {'seconds':>8}  total loss")
        for p in pairs:
            totals = ", ".join(_fmt(m["total"]) for m in p.measures) or "-"
            out(f"{p.name:<{width}}  {p.status:<7} {p.seconds:>8.1f}  {totals}")
            if p.status != "ok" and p.error:
                out(f"{'':<{width}}    error: {_one_line(p.error, 600)}")
    for line in skipped:
        out(line)
    if run.written:
        out("")
        out(f"wrote {len(run.written)} image(s) to {run.out_dir}:")
        for path in run.written:
            out(f"  {path}")
    if any(p.status in ("ok", "failed") for p in pairs):
        out(f"loss terms: {run.out_dir / 'losses.csv'}  {run.out_dir / 'losses.json'}")


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    progress: Progress | None = None
    backend = None
    run: Run | None = None
    skipped: list[str] = []
    try:
        wf = load_workflow(opts.workflow)
        contents, bad_c = collect_images(opts.content, "content")
        styles, bad_s = collect_images(opts.style, "style")
        for path, why in bad_c + bad_s:
            skipped.append(f"skipped {path}: {why}")
        pairs, unmatched = make_pairs(contents, styles, opts.pairing)
        skipped += unmatched
        for line in skipped:
            print(line, flush=True)
        if not pairs:
            print("nothing to run: no usable content x style pair", flush=True)
            return EXIT_SOME_FAILED
        progress = Progress(len(pairs))
        run = Run(opts, wf, pairs, progress)
        backend = Servers(run) if opts.server else InProcess(run)
        progress.log(f"workflow: {wf.name} ({wf.path}); {len(pairs)} pair(s); output: {run.out_dir}")
        backend.start()
        tiny = backend.setup_models()
        run.prepare(tiny)
        if opts.server:
            progress.log(f"servers: {', '.join(backend.urls)}")
        backend.run_all()
    except SetupError as e:
        if progress is not None:
            progress.close()
        print(f"error: {e}", file=sys.stderr, flush=True)
        return e.code
    except KeyboardInterrupt:
        if progress is not None:
            progress.close()
        print("interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    finally:
        if backend is not None:
            backend.close()
    progress.close()
    print_summary(run, skipped)
    if run.tiny_note:
        progress.log("")
        progress.log(run.tiny_note)
    failed = [p for p in run.pairs if p.status != "ok"]
    ok = len(run.pairs) - len(failed)
    progress.log(f"done: {ok} of {len(run.pairs)} pair(s) ok"
                 + (f", {len(failed)} failed" if failed else "")
                 + (f", {len(skipped)} input(s) skipped" if skipped else ""))
    return EXIT_SOME_FAILED if (failed or skipped) else EXIT_OK
