"""Instrumentation for ``bench_realsize.py``: counting model evaluations and labelling components.

:class:`Instrument` wraps the pack's classes as ComfyUI loaded them (in this process only; the
pack's files are untouched) so that profiler ranges and FLOP counts can be split by component;
:func:`profile_step` turns one profiled guided step into per-component and per-term times.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from _common import REPO_ROOT, log

if TYPE_CHECKING:
    from _realsize_flops import LabelledFlops

WHO = "bench_realsize"
LABELS = {  # record_function label -> component
    "sg::unet": "UNet", "sg::probe": "model features", "sg::decoder": "decoder", "sg::vgg": "VGG",
    "sg::clip": "CLIP", "sg::loss": "loss arithmetic", "sg::engine": "guidance step", "sg::bwd": "guidance step",
    "sg::mf_content": "model features (per run)", "sg::model_eval": "other", "sg::final_decode": "final decode",
}
UNSPLIT = ("sg::model_eval", "sg::loss", "sg::engine", "sg::bwd", "sg::mf_content")  # not split into fwd/bwd
TERM_BWD = "sg::term_bwd:"  # + term name: the range of one term's backward inside balanced_direction
BWD = "autograd::engine::evaluate_function"


# ---------------------------------------------------------------- instrumentation


class Instrument:
    """Counts model evaluations and, while tracking, labels components (profiler ranges, FLOP counts).

    Class methods (and the engine module's ``balanced_direction``, and ``torch.autograd.grad``)
    are wrapped in this process only; the pack's files are untouched. With tracking off a wrapper
    costs one counter increment and a flag test per call. While tracking, each term's backward in
    ``balanced_direction`` runs inside a ``sg::term_bwd:<term>`` label (the grad calls come in the
    order of the terms that carry a graph), any other ``autograd.grad`` inside ``sg::bwd`` (in
    ``GuidanceEngine.direction`` that is the one backward through the decoder).
    """

    def __init__(self) -> None:
        self.labels = False  # torch.profiler ranges
        self.counter: LabelledFlops | None = None  # FLOPs by label while counting
        self.stack: list[str] = []  # labels entered, outermost first
        self.pending: list[str] = []  # terms whose backward comes next, in balanced_direction's order
        self.counts: Counter = Counter()
        self.found: set[str] = set()
        self._undo: list[tuple[object, str, object]] = []

    @property
    def tracking(self) -> bool:
        return self.labels or self.counter is not None

    @contextlib.contextmanager
    def label(self, label: str) -> Iterator[None]:
        import torch

        self.stack.append(label)
        try:
            if self.labels:
                with torch.profiler.record_function(label):
                    yield
            else:
                yield
        finally:
            self.stack.pop()

    def wrap(self, owner: object, attr: str, label: str | None, count: str | None = None,
             before: Callable[[tuple, dict], None] | None = None) -> None:
        import torch

        orig = owner.__dict__[attr]
        inst = self

        def wrapper(*args, **kwargs):
            if count:
                inst.counts[count] += 1
                if torch.is_grad_enabled():
                    inst.counts[count + "_grad"] += 1
            if not inst.tracking:
                return orig(*args, **kwargs)
            if before is not None:
                before(args, kwargs)
            try:
                if label is None:
                    return orig(*args, **kwargs)
                with inst.label(label):
                    return orig(*args, **kwargs)
            finally:
                if before is not None:
                    inst.pending.clear()

        wrapper.__wrapped__ = orig
        setattr(owner, attr, wrapper)
        self._undo.append((owner, attr, orig))

    def _term_order(self, args: tuple, kwargs: dict) -> None:
        values = args[0] if args else kwargs["values"]
        self.pending[:] = [n for n, v in values.items() if getattr(v, "requires_grad", False)]

    def _wrap_grad(self) -> None:
        import torch

        orig = torch.autograd.grad
        inst = self

        def grad(*args, **kwargs):
            if not inst.tracking:
                return orig(*args, **kwargs)
            with inst.label(TERM_BWD + inst.pending.pop(0) if inst.pending else "sg::bwd"):
                return orig(*args, **kwargs)

        grad.__wrapped__ = orig
        torch.autograd.grad = grad
        self._undo.append((torch.autograd, "grad", orig))

    def install(self) -> None:
        import comfy.ldm.modules.diffusionmodules.openaimodel as oai
        import comfy.samplers
        import comfy.sd

        self.wrap(oai.UNetModel, "forward", "sg::unet", "unet")
        self.wrap(comfy.samplers.CFGGuider, "__call__", "sg::model_eval", "model_eval")
        self.wrap(comfy.sd.VAE, "decode", "sg::final_decode")
        wanted = (
            ("DecoderCopy", "forward", "sg::decoder", "decoder"),
            ("FeatureExtractor", "forward", "sg::vgg", None),
            ("CLIPImageEncoder", "encode_resized", "sg::clip", None),
            ("CombinedLoss", "evaluate", "sg::loss", None),
            ("GuidanceEngine", "direction", "sg::engine", "direction"),
            ("ModelZeConLoss", "content_features", "sg::mf_content", None),
        )
        for mod in pack_modules():
            for cls_name, attr, label, count in wanted:
                cls = getattr(mod, cls_name, None)
                if isinstance(cls, type) and cls.__module__ == mod.__name__ and attr in cls.__dict__:
                    self.wrap(cls, attr, label, count)
                    self.found.add(cls_name)
            if Path(mod.__file__).stem == "engine" and callable(mod.__dict__.get("balanced_direction")):
                self.wrap(mod, "balanced_direction", None, before=self._term_order)
                self.found.add("balanced_direction")
        self._wrap_grad()
        missing = {w[0] for w in wanted} | {"balanced_direction"}
        missing -= self.found
        if missing:
            log(WHO, f"warning: could not label {sorted(missing)} (pack layout changed?)")

    def uninstall(self) -> None:
        for owner, attr, orig in reversed(self._undo):
            setattr(owner, attr, orig)
        self._undo.clear()


def pack_modules() -> list:
    """The pack's modules as ComfyUI loaded them (any copy whose file is in this repository)."""
    out = []
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if f and Path(f).resolve().parent.parent == REPO_ROOT and Path(f).parent.name in ("sampler", "losses"):
            out.append(mod)
    return out


def pack_attr(name: str, module: str = "comfy_adapter"):
    """``name`` from the pack's ``sampler/<module>.py`` as ComfyUI loaded it."""
    for mod in pack_modules():
        if Path(mod.__file__).stem == module and Path(mod.__file__).parent.name == "sampler" and hasattr(mod, name):
            return getattr(mod, name)
    raise RuntimeError(f"pack attribute sampler/{module}.py:{name} not found (is the pack loaded?)")


def component_of(labels: list[str]) -> str | None:
    """The component label of an op, from the labels around it (innermost first)."""
    if "sg::mf_content" in labels:  # a latent term's reference features: once per run, whatever runs inside
        return "sg::mf_content"
    if not labels:
        return None
    if labels[0] == "sg::unet" and "sg::engine" in labels:  # the model run by a latent term, not by the sampler
        return "sg::probe"
    return labels[0]


# ---------------------------------------------------------------- profiling


def profile_step(comfy, prompt: dict, inst: Instrument, cuda: bool) -> dict:
    """torch.profiler over a 1-step prompt; time of its model evaluation split by component and by term backward."""
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    inst.labels = True
    try:
        t0 = time.perf_counter()
        with profile(activities=acts) as prof:
            comfy.run(prompt)
            if cuda:
                torch.cuda.synchronize()
        prompt_s = time.perf_counter() - t0
    finally:
        inst.labels = False
        inst.stack.clear()
    evs = list(prof.events())
    evals = [e for e in evs if e.name == "sg::model_eval"]
    if not evals:
        return {"error": "no model evaluation recorded"}
    window = max(evals, key=lambda e: e.time_range.end - e.time_range.start)
    lo, hi = window.time_range.start, window.time_range.end

    def around(e) -> tuple[list[str], bool, str | None]:
        """(labels around ``e``, innermost first, up to a backward node; inside a backward node?; term range)."""
        labels: list[str] = []
        term = None
        in_bwd = False
        while e is not None:
            if e.name.startswith(TERM_BWD) and term is None:
                term = e.name[len(TERM_BWD):]
            if not in_bwd:
                if e.name.startswith(BWD):
                    in_bwd = not labels
                    if in_bwd:
                        e = e.cpu_parent
                        continue
                if e.name in LABELS:
                    labels.append(e.name)
            e = e.cpu_parent
        return labels, in_bwd, term

    seq: dict = {}  # (forward thread, autograd sequence number) -> label of the op that made the node
    for e in evs:
        if getattr(e, "sequence_nr", -1) >= 0:
            labels, in_bwd, _ = around(e)
            lab = None if in_bwd else component_of(labels)
            if lab:
                seq.setdefault((e.thread, e.sequence_nr), lab)

    def bucket(e) -> tuple[str, str | None]:
        labels, in_bwd, term = around(e)
        if in_bwd:
            x = e
            while x is not None and not x.name.startswith(BWD):
                x = x.cpu_parent
            lab = seq.get((getattr(x, "fwd_thread", x.thread), x.sequence_nr), "sg::model_eval")
            return LABELS[lab] + ("" if lab in UNSPLIT else " bwd"), term
        lab = component_of(labels)
        if lab is None:
            return "other", term
        return LABELS[lab] + ("" if lab in UNSPLIT else " fwd"), term

    cpu_us: Counter = Counter()
    dev_us: Counter = Counter()
    term_cpu_us: Counter = Counter()
    term_dev_us: Counter = Counter()
    other_ops: Counter = Counter()
    syncs: Counter = Counter()
    for e in evs:
        if e.device_type != DeviceType.CPU or e.time_range.start < lo or e.time_range.end > hi:
            continue
        b, term = bucket(e)
        if b == "guidance step bwd":
            b = "guidance step"
        cpu_us[b] += e.self_cpu_time_total
        dev_us[b] += getattr(e, "self_device_time_total", 0) or 0
        if term is not None:
            term_cpu_us[term] += e.self_cpu_time_total
            term_dev_us[term] += getattr(e, "self_device_time_total", 0) or 0
        if b in ("other", "guidance step") and not e.name.startswith("sg::"):
            other_ops[e.name] += e.self_cpu_time_total
        if e.name in ("aten::_local_scalar_dense", "cudaStreamSynchronize", "cudaDeviceSynchronize",
                      "cudaMemcpy", "aten::nonzero"):
            syncs[e.name] += 1
    step_us = hi - lo
    return {
        "prompt_s": prompt_s, "step_s": step_us / 1e6,
        "components_cpu_ms": {k: v / 1e3 for k, v in cpu_us.items()},
        "components_device_ms": {k: v / 1e3 for k, v in dev_us.items()} if cuda else {},
        "term_bwd_cpu_ms": {k: v / 1e3 for k, v in term_cpu_us.items()},
        "term_bwd_device_ms": {k: v / 1e3 for k, v in term_dev_us.items()} if cuda else {},
        "top_other_ops_ms": {k: v / 1e3 for k, v in other_ops.most_common(8)},
        "sync_points": dict(syncs),
    }
