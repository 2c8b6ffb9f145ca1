"""``python -m headless``: run a Style Guidance workflow on content x style image pairs.

    python -m headless [WORKFLOW] --content PATH --style PATH [options]

Two ways to execute, same outputs: in-process (default; :mod:`headless.local`) on a real
ComfyUI imported here, or ``--server URL`` (repeatable; :mod:`headless.server`) on running
ComfyUI servers. Tiny mode: when no real weights are reachable (no ``--comfyui``/``--models``/
``--server`` given and none of the workflow's model files exist), or with ``--tiny``, the
runner writes tiny random-weight stand-ins under the workflow's file names into a runner-owned
folder (``.cache/runner_tiny_models``) and shrinks the workflow (128 px, 4 steps, tiny
open_clip). A text encoder ComfyUI builds at full size whatever the file holds (Qwen-Image's
Qwen2.5-VL 7B) is not loaded: its prompts become seeded conditioning of the right shape
(:mod:`headless.testbed.standins.tiny_text`); a diffusion model or VAE whose stand-in the core
loader would build at full size (Z-Image, Flux.2) is loaded by a test loader of the same file
(:mod:`headless.testbed.standins.tiny_dit`). It says so at the start and at the end, naming each
replacement: those pictures are noise.

Everything that needs no ComfyUI is checked first (arguments, the workflow file, the output
folder, the images), so mistakes end the run in a second with exit status 2.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import uuid
from pathlib import Path

from . import prompts as P
from .backend import (
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_TERMINATED,
    Backend,
    SetupError,
    one_line,
)
from .clips import collect_clips, is_video_file, video_for_still_message
from .inputs import Collected, InputError, collect_images, make_pairs
from .progress import Progress
from .run import TINY_SIZE, TINY_STEPS, Options, Run


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value <= 2**64 - 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2^64-1, not {text}")
    return value


def _positive_seconds(text: str) -> float:
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    codes = "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES)
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
            "  pictures are then noise, not a style transfer. Text encoders that cannot be shrunk\n"
            "  (e.g. Qwen-Image's) are replaced by seeded conditioning, and Z-Image's and Flux.2's\n"
            "  diffusion model (and Flux.2's VAE) are loaded by test loaders at the stand-ins' own\n"
            "  sizes; that message names each replacement.\n"
            "  --real forbids tiny mode.\n"
            "\n"
            "inputs:\n"
            "  A folder gives every image in it (sorted; sub-folders are not searched and are named).\n"
            "  Files that are not usable images (not an image, corrupt, a dangling or looping symlink,\n"
            "  over Pillow's pixel limit) are skipped with the reason and the exit status is then 1.\n"
            "  Animated images give their first frame; 16-bit images are read at full range.\n"
            "  A video workflow (its content a Load Video node, e.g. style_transfer_wan) takes a video file\n"
            "  (.mp4, .webm, .mov, ...) or a folder of frames (its pictures in name order, made into one\n"
            "  lossless MP4); a still picture there, or a video for a picture workflow, stops the run.\n"
            "\n"
            "outputs (in --output):\n"
            "  <content>__<style>.png  (or <content>__<style>_<n>.png when a workflow saves several);\n"
            "  a video workflow's result is the video its save node wrote (<content>__<style>.mp4);\n"
            "  names are made safe and unique (a clash gets _2, _3 and a note). PNG text chunks:\n"
            "  'prompt' and 'workflow' (as ComfyUI saves them) and 'style_guidance' (JSON: content,\n"
            "  style, seed, scale, workflow, models tiny/real, server).\n"
            "  losses.csv: one row per pair: total, and per loss term its value, weight and share\n"
            "  (columns <term>, <term>.weight, <term>.share); losses.json: everything.\n"
            "  <name>.steps.json / <name>.steps.png: each term's value and share over the sampling\n"
            "  steps, when the guidance reports them (the plot needs matplotlib: the 'plots' extra).\n"
            "  Files appear whole or not at all (written under a temporary name, then renamed).\n"
            "\n"
            "exit status:\n" + codes + "\n"
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
    ap.add_argument("workflow", nargs="?", default="style_transfer_fast", metavar="WORKFLOW",
                    help=f"a shipped workflow name ({', '.join(P.shipped_workflows())}) or a path to a "
                         "workflow JSON file, editor format or API format (default: %(default)s)")
    ap.add_argument("--content", required=True, metavar="PATH",
                    help="content image, or a folder: every image in it (sorted, not recursive); for a video "
                         "workflow (style_transfer_wan) a video file, or a folder of frames (one clip, in name order)")
    ap.add_argument("--style", required=True, metavar="PATH", help="style image, or a folder of them")
    ap.add_argument("--pairing", choices=("product", "zip"), default="product",
                    help="product: every content with every style (default); zip: the i-th content with "
                         "the i-th style (unmatched ones are skipped and the exit status is 1)")
    ap.add_argument("--output", default="output", metavar="DIR", help="where results go (default: %(default)s/)")
    ap.add_argument("--seed", type=_seed, default=None, help="override every sampler's seed (0 to 2^64-1)")
    ap.add_argument("--scale", type=_finite_float, default=None,
                    help="override every Style Guidance 'scale' input (a finite number)")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="show ComfyUI's own log as it comes (otherwise it is shown only when something fails)")
    where = ap.add_argument_group("where it runs")
    where.add_argument("--comfyui", metavar="PATH",
                       help="ComfyUI install to run in-process (its code and its models/ folder); default: "
                            "COMFYUI_PATH, else the ComfyUI that scripts/setup_env.sh installed")
    where.add_argument("--models", metavar="DIR",
                       help="models folder (ComfyUI layout: checkpoints/, vae/, vgg/, open_clip/, ...) for "
                            "in-process runs; default: <--comfyui>/models, else .cache/models in this repo")
    where.add_argument("--gpu", action="store_true", help="in-process: let ComfyUI use the GPU (default: CPU)")
    where.add_argument("--server", action="append", default=[], metavar="URL",
                       help="submit to a running ComfyUI server instead (repeat for several; pairs are "
                            "spread over them and retried on another one if a server fails)")
    where.add_argument("--timeout", type=_positive_seconds, default=3600.0, metavar="S",
                       help="server mode: give up on a pair after S seconds (default: %(default)s)")
    mode = where.add_mutually_exclusive_group()
    mode.add_argument("--tiny", action="store_true",
                      help=f"force tiny mode: random-weight stand-ins, {TINY_SIZE} px, {TINY_STEPS} steps (a smoke "
                           "test; the pictures are noise). Server mode: only the workflow changes are applied, "
                           "the servers must hold the stand-ins")
    mode.add_argument("--real", action="store_true",
                      help="never fall back to tiny mode: missing model files are an error (exit 2)")
    return ap


def server_url_problem(url: str) -> str | None:
    """What is wrong with a --server URL (scheme, host, port), or None: checked before anything runs."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"the scheme must be http or https, not {parts.scheme or 'missing'}"
    try:
        port = parts.port  # raises on a port that is not a number or out of range
    except ValueError:
        return "the port must be a number from 1 to 65535"
    if not parts.hostname:
        return "it names no host"
    if port == 0:
        return "the port must be a number from 1 to 65535"
    return None


def parse_args(argv: list[str] | None) -> Options:
    ap = build_parser()
    ns = ap.parse_args(argv)
    if ns.server and (ns.comfyui or ns.models or ns.gpu):
        ap.error("--comfyui, --models and --gpu are for in-process runs; they do not combine with --server")
    for url in ns.server:
        problem = server_url_problem(url)
        if problem:
            ap.error(f"--server {url!r}: {problem}; give it as http://HOST:PORT (e.g. http://127.0.0.1:8188)")
    return Options(**vars(ns))


def check_output(arg: str) -> Path:
    """The output folder, created if needed and proven writable (else SetupError, exit 2)."""
    out = Path(arg).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise SetupError(f"--output {arg}: this is a file, not a folder; give a folder (it is created if needed)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".sg_write_test.{os.getpid()}.{uuid.uuid4().hex[:6]}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise SetupError(f"--output {arg}: cannot write there ({e.strerror or e}); give a folder you can write to"
                         ) from e
    return out.resolve()


class Signals:
    """SIGINT/SIGTERM: during start-up, stop at once; while pairs run, stop the pair in flight.

    A second signal stops at once in any case. Temporary folders are removed either way.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.run: Run | None = None
        self.backend: Backend | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        for s in (signal.SIGINT, signal.SIGTERM):
            self._previous[s] = signal.signal(s, self._handle)

    def restore(self) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)

    @property
    def exit_code(self) -> int:
        return EXIT_TERMINATED if self.signum == signal.SIGTERM else EXIT_INTERRUPTED

    def _handle(self, signum, frame) -> None:
        first = self.signum is None
        self.signum = self.signum or signum
        if not first or self.run is None or self.backend is None:
            raise KeyboardInterrupt
        self.run.stop.set()
        print("\ninterrupt: stopping the pair in flight (send it again to stop at once)", file=sys.stderr, flush=True)
        self.backend.interrupt()


def print_summary(run: Run, skipped: list[str]) -> None:
    out = run.progress.log
    pairs = run.pairs
    if pairs:
        width = max(12, *(len(p.name) for p in pairs))
        out("")
        out(f"{'pair':<{width}}  {'status':<11} {'seconds':>8}  total loss")
        for p in pairs:
            totals = ", ".join(_fmt(m["total"]) for m in p.measures) or "-"
            status = "not run" if p.status == "pending" else p.status
            out(f"{p.name:<{width}}  {status:<11} {p.seconds:>8.1f}  {totals}")
            if p.status == "failed" and p.error:
                out(f"{'':<{width}}    error: {one_line(p.error, 600)}")
    for line in skipped:
        out(line)
    if run.written:
        out("")
        out(f"wrote {len(run.written)} file(s) to {run.out_dir}:")
        for path in run.written:
            out(f"  {path}")
    if any(p.status != "pending" for p in pairs):
        out(f"loss terms: {run.out_dir / 'losses.csv'}  {run.out_dir / 'losses.json'}")


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def _collect_contents(arg: str, wf: P.Workflow) -> Collected:
    """The content inputs: clips for a workflow whose content is a Load Video node, else pictures.

    A video given to a picture workflow is refused at once (not skipped as 'not an image'), naming what to do.
    """
    if P.content_is_video(wf):
        return collect_clips(arg, wf.name)
    path = Path(arg).expanduser()
    if path.is_file() and is_video_file(path):
        raise InputError(video_for_still_message(arg, wf.name))
    return collect_images(arg, "content")


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    signals = Signals()
    signals.install()
    progress: Progress | None = None
    backend: Backend | None = None
    run: Run | None = None
    skipped: list[str] = []
    show_log = False
    try:
        wf = P.load_workflow(opts.workflow)
        out_dir = check_output(opts.output)
        try:
            contents = _collect_contents(opts.content, wf)
            styles = collect_images(opts.style, "style")
        except InputError as e:
            raise SetupError(str(e)) from e
        skipped = contents.skipped + styles.skipped
        pairs, unmatched, renamed = make_pairs(contents.images, styles.images, opts.pairing)
        skipped += unmatched
        for line in [*skipped, *contents.notes, *styles.notes, *renamed]:
            print(line, flush=True)
        if not pairs:
            print("nothing to run: no usable content x style pair", flush=True)
            return EXIT_SOME_FAILED
        progress = Progress(len(pairs))
        run = Run(opts, wf, pairs, progress, out_dir)
        if opts.server:
            from .server import Servers

            backend = Servers(run)
        else:
            from .local import InProcess

            backend = InProcess(run)
        progress.log(f"workflow: {wf.name} ({wf.path}); {len(pairs)} pair(s); output: {run.out_dir}")
        P.convert(wf, backend.start())
        tiny = backend.setup_models()
        run.prepare(tiny, taps=bool(opts.server))
        signals.run, signals.backend = run, backend
        backend.run_all()
    except SetupError as e:
        if progress is not None:
            progress.close()
        if e.show_log and backend is not None and backend.log_text():
            _show_log(backend)
        print(f"error: {e}", file=sys.stderr, flush=True)
        return e.code
    except KeyboardInterrupt:
        if progress is not None:
            progress.close()
        print("interrupted", file=sys.stderr, flush=True)
        if run is not None and any(p.status != "pending" for p in run.pairs):
            print_summary(run, skipped)
        return signals.exit_code
    except Exception:
        show_log = True
        raise
    finally:
        signals.restore()
        if show_log and backend is not None:
            _show_log(backend)
        if backend is not None:
            backend.close()
    progress.close()
    failed = [p for p in run.pairs if p.status == "failed"]
    if failed and backend.log_text():
        _show_log(backend)
    print_summary(run, skipped)
    if run.tiny_note:
        progress.log("")
        progress.log(run.tiny_note)
    ok = sum(p.status == "ok" for p in run.pairs)
    if signals.signum is not None:
        left = sum(p.status in ("pending", "interrupted") for p in run.pairs)
        progress.log(f"interrupted: {ok} of {len(run.pairs)} pair(s) done, {left} not finished")
        return signals.exit_code
    progress.log(f"done: {ok} of {len(run.pairs)} pair(s) ok"
                 + (f", {len(failed)} failed" if failed else "")
                 + (f", {len(skipped)} input(s) skipped" if skipped else ""))
    return EXIT_SOME_FAILED if (failed or skipped) else EXIT_OK


def _show_log(backend: Backend) -> None:
    print("---- ComfyUI's log (shown because something failed) ----", file=sys.stderr)
    print(backend.log_text(), file=sys.stderr)
    print("---- end of ComfyUI's log ----", file=sys.stderr, flush=True)

