"""The runner's in-process back end: a real ComfyUI imported into this process.

ComfyUI gets a private temporary base folder (input/, output/, temp/, user/, and custom_nodes/
with this pack symlinked in), removed at the end, so nothing is written into a user's install.
Models are read from one models folder registered with ComfyUI: ``--models DIR``, else
``<--comfyui>/models`` (plus that install's ``extra_model_paths.yaml``), else ``.cache/models``
in this repository. ComfyUI's own log is kept out of the terminal unless ``--verbose``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from . import prompts as P
from .backend import EXIT_NO_COMFY, PairFailed, SetupError, describe_node_errors, one_line
from .clips import clip_bytes
from .inputs import image_bytes, input_name
from .model_check import missing_message, missing_models, offered, tiny_banner
from .results import read_outputs, step_events
from .run import Run
from .testbed import base as hc
from .testbed import inprocess as hx
from .workflow import NodeDef

IMAGE_SUBFOLDER = "style_guidance_runner"
DEFAULT_MODELS_DIR = P.REPO_ROOT / ".cache" / "models"


class InProcess:
    """Runs the pairs one after the other with ComfyUI's own validator and executor."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.opts = run.opts
        self.base: Path | None = None
        self.comfy_root: Path | None = None
        self.comfy: hx.InProcessComfy | None = None
        self.log = hx.ComfyLog(verbose=self.opts.verbose)
        self._key: int | None = None

    def start(self) -> dict[str, NodeDef]:
        from .locate import ComfyUINotFound, locate_comfyui
        from .workflow import defs_in_process

        try:
            self.comfy_root = locate_comfyui(self.opts.comfyui)
        except ComfyUINotFound as e:
            raise SetupError(str(e), EXIT_NO_COMFY) from e
        self.base = Path(tempfile.mkdtemp(prefix="sg_runner_"))
        hc.make_base(self.base, standin_nodes=False)
        self.run.progress.log(f"ComfyUI: {self.comfy_root} (in-process, {'GPU allowed' if self.opts.gpu else 'CPU'}"
                              f"{'' if self.opts.verbose else '; its log: --verbose'})")
        self.log.install()
        with self.log.capture_prints():
            hc.configure_comfy(self.comfy_root, self.base, cpu=not self.opts.gpu)
            hc.init_nodes()
        hx.set_progress_hook(self._step, self.run.stop.is_set)
        self.comfy = hx.InProcessComfy()
        return defs_in_process()

    def models_dir(self) -> Path:
        if self.opts.models:
            return Path(self.opts.models).expanduser().resolve()
        if self.opts.comfyui:
            return (self.comfy_root / "models").resolve()
        return DEFAULT_MODELS_DIR

    def _missing(self) -> list:
        from .testbed.standins.names import TAESD_NAMES

        def present(cls: str, inp: str, name: str, folder: str) -> bool:
            if folder == "vae" and name in TAESD_NAMES:
                return offered(hc.node_input_types(cls), inp, name)
            return hc.model_file(folder, name) is not None

        def folder_of(folder: str) -> str:
            return hc.model_folder(folder) or f"<models>/{folder} (a folder this ComfyUI does not know)"

        return missing_models(self.run.wf.api, present, folder_of)

    def setup_models(self) -> bool:
        """Register the models folder, check every file; returns True for tiny mode."""
        from .testbed.standins.names import model_files

        wf, opts = self.run.wf, self.opts
        real = self.models_dir()
        hc.map_models_root(real)
        if opts.comfyui and not opts.models:
            yaml_path = self.comfy_root / "extra_model_paths.yaml"
            if yaml_path.is_file():
                try:
                    hc.load_extra_model_paths(yaml_path)
                except Exception as e:  # noqa: BLE001 - a broken yaml only loses its extra folders
                    self.run.progress.log(f"warning: could not read {yaml_path}: {e}")
        files = model_files(wf.api)
        missing = self._missing()
        auto = not (opts.real or opts.comfyui or opts.models) and files and len(missing) == len(files)
        if not (opts.tiny or auto):
            if missing:
                hint = ("Put each file in the folder shown, or pass --comfyui PATH / --models DIR for a folder that "
                        "has them" + ("." if opts.real else ", or --tiny for a smoke test on random-weight stand-ins."))
                raise SetupError(missing_message(wf.name, missing, hint))
            self.run.progress.log(f"models: {real}")
            return False
        replaced = self.run.rewrite_for_tiny()  # before the stand-ins: a dropped loader needs no file
        if replaced:
            with self.log.capture_prints():
                hc.register_standin_nodes(self.base)  # SGTest* loaders/conditioning: tiny mode only, never the pack
        self.run.tiny_note = tiny_banner(missing, forced=opts.tiny, replaced=replaced)
        self.run.progress.log(self.run.tiny_note)
        from .testbed.standins.common import cache_dir
        from .testbed.standins.install import install_for_workflow

        tiny_dir = cache_dir().parent / "runner_tiny_models"
        try:
            install_for_workflow(tiny_dir, wf.api)
        except (NotImplementedError, ValueError, FileExistsError) as e:
            raise SetupError(f"tiny mode impossible for this workflow: {e}") from e
        hc.map_models_root(tiny_dir)
        still = self._missing()
        if still:
            raise SetupError(missing_message(wf.name, still, "(stand-ins could not be installed for these)"))
        return True

    def _step(self, value: int, total: int, node_id: str | None) -> None:
        if self._key is not None:
            self.run.progress.step(self._key, value, total, node_id)

    def interrupt(self) -> None:
        hx.interrupt()

    def run_all(self) -> None:
        run = self.run
        for pair in run.pairs:
            if run.stop.is_set():
                return
            pair.server = None
            run.progress.start(pair.index, pair.name)
            self._key = pair.index
            start = time.perf_counter()
            try:
                names = {}
                for role, path in (("content", pair.content), ("style", pair.style)):
                    data, suffix = clip_bytes(path) if role == "content" and run.video else image_bytes(path)
                    name = f"{IMAGE_SUBFOLDER}/{input_name(data, path, suffix)}"
                    target = self.base / "input" / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                    names[role] = name
                api, ui = run.prompt_for(names["content"], names["style"])
                result = self.comfy.run(api, extra_data=run.extra_data(ui))
                refs, measures = read_outputs(result.outputs, list(run.measures), run.tap_ids)
                images = []
                for ref in refs:
                    path = self.base / "output" / ref.subfolder / ref.filename
                    images.append(path.read_bytes())
                    path.unlink()
                for nid in run.measures:
                    if nid not in measures:  # no ui payload: the node's JSON output itself
                        value = self._json_output(nid)
                        if value is not None:
                            measures[nid] = value
                seconds = time.perf_counter() - start
                run.finish_ok(pair, images, measures, step_events(result.messages), seconds)
                run.progress.finish(pair.index, "ok", f"{seconds:.1f} s")
            except hx.PromptInterrupted:
                pair.seconds = time.perf_counter() - start
                run.finish_failed(pair, "interrupted before it finished", status="interrupted")
                run.progress.finish(pair.index, "INTERRUPTED")
                return
            except Exception as e:  # noqa: BLE001 - whatever went wrong, it fails this pair, not the run
                pair.seconds = time.perf_counter() - start
                if isinstance(e, hx.PromptFailed) and e.error is not None:
                    message = f"validation failed: {describe_node_errors(e.error, e.node_errors)}"
                elif isinstance(e, (hx.PromptFailed, PairFailed, OSError, ValueError)):
                    message = one_line(str(e))
                else:
                    message = one_line(f"{type(e).__name__}: {e}")
                run.finish_failed(pair, message)
                run.progress.finish(pair.index, "FAILED", one_line(message, 300))
            finally:
                self._key = None

    def _json_output(self, nid: str) -> str | None:
        try:
            value = self.comfy.output(nid, P.json_output_index(self.run.wf.defs))
        except (KeyError, IndexError, TypeError):
            return None
        return value if isinstance(value, str) else None

    def log_text(self) -> str:
        return self.log.text()

    def close(self) -> None:
        self.log.uninstall()
        if self.base is not None:
            import shutil

            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None
