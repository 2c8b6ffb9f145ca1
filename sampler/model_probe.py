"""Probes into the loaded diffusion model for the model-feature terms (ZeCon on the UNet, Attention Distillation).

A probe runs the model exactly as ComfyUI loaded and patched it -- through
``comfy.samplers.calc_cond_batch`` with the evaluation's ``model_options`` -- so LoRA, model
patches, wrappers and other packs' attention patches all apply; it never copies the weights.
What it reads it reads through ComfyUI's own patch points, installed only in a private copy of
``model_options`` for the probe's own passes (so no hook, patch or flag is left behind):

* UNet input-block outputs: an ``input_block_patch`` appended after any other, so it sees the
  features the model itself carries on (after ControlNet/T2I residuals and other packs' patches).
* self-attention q, k, v and result: ``patches_replace["attn1"][(block, id, index)]``. When another
  patch already replaces that attention (under the 3-key or the 2-key form, e.g. PAG uses
  ("middle", 0)), the probe calls it and records its inputs and output instead of overriding it,
  so the captured result is what the model actually computed there.

Early stop: once the deepest wanted block/layer has been captured the patch raises a private
exception that the probe catches around ``calc_cond_batch``. That call keeps no state across the
model call (ControlNet residual lists are built per call), so nothing is left half-done; the rest
of the UNet (for ZeCon usually the middle block and the whole decoder) is never computed.

Gradients: when the input requires grad (the term's output pass), the UNet's weights (and a
ControlNet's) that ComfyUI created inside inference mode are replaced by ordinary tensors of the
same values, ``requires_grad`` staying False, so autograd can run through them; the values and
so every later output of the model are unchanged.

The engine builds a probe per guided evaluation with :func:`make_probe`; :func:`check_supported`
refuses models whose blocks cannot be hooked before sampling starts; :func:`measure_probe` gives
the Measure node a probe outside sampling.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import comfy.model_management
import comfy.model_patcher
import comfy.sampler_helpers
import comfy.samplers
import torch

from ..losses.model_features import AttentionCapture, AttentionKey, ModelLayout
from . import dit_probe
from .autograd_compat import backward_through, model_and_controls, ordinary_weights
from .dit_probe import StopForward as _StopForward

log = logging.getLogger("style_guidance")

__all__ = [
    "ComfyModelProbe",
    "ProbeContext",
    "UnsupportedModel",
    "check_supported",
    "make_probe",
    "measure_probe",
    "model_layout",
]

# Keys of a processed cond dict that restrict it in space or time; a probe pass runs the whole
# picture at its own sigma, so they are dropped from the probe's copy.
_WHERE_WHEN = ("area", "mask", "mask_strength", "set_area_to_bounds", "timestep_start", "timestep_end", "strength")
# Conditioning tied to the output picture's layout (left out when the pass is on a reference picture).
_SPATIAL = ("control", "gligen")


class UnsupportedModel(ValueError):
    """The model's blocks or attention cannot be hooked by the model-feature terms."""


@dataclass
class ProbeContext:
    """What the engine knows at one guided evaluation; :func:`make_probe` turns it into a probe.

    ``model``: the ComfyUI BaseModel being sampled (``args["model"]`` in a post-CFG function,
    ``guider.inner_model`` in a PREDICT_NOISE wrapper). ``positive``/``negative``: the processed
    cond lists as the sampler holds them (``args["cond"]``/``args["uncond"]``, or
    ``guider.conds["positive"/"negative"]``; both are lists of dicts with ``model_conds`` that
    ``calc_cond_batch`` accepts; ``negative`` is None when cfg is 1). ``model_options``: the
    evaluation's dict (with ``transformer_options``). ``sigma``: the tensor given to the model.
    ``x_t``: the noisy latent of the evaluation (its device is where the probe runs). ``seed``: the
    sampling run's seed.
    """

    model: Any
    positive: list | None
    negative: list | None
    model_options: dict
    sigma: torch.Tensor | float
    x_t: torch.Tensor | None
    seed: int


# ---------------------------------------------------------------- the model's layout
def _family(base_model) -> str:
    cfg = getattr(base_model, "model_config", None)
    return type(cfg).__name__ if cfg is not None else type(base_model).__name__


_LAYOUTS: weakref.WeakKeyDictionary[torch.nn.Module, ModelLayout] = weakref.WeakKeyDictionary()


def model_layout(base_model) -> ModelLayout:
    """The UNet's input blocks, level ends and self-attention layers, or a supported DiT's blocks
    (sampler/dit_probe.py); UnsupportedModel otherwise."""
    from comfy.ldm.modules.attention import SpatialTransformer, SpatialVideoTransformer
    from comfy.ldm.modules.diffusionmodules.openaimodel import Downsample, UNetModel

    family = _family(base_model)
    dm = getattr(base_model, "diffusion_model", None)
    hit = _LAYOUTS.get(dm) if dm is not None else None
    if hit is not None:
        return hit
    if not isinstance(dm, UNetModel):
        info = dit_probe.dit_info(dm) if dm is not None else None
        if info is None or not info.blocks:
            kind = type(dm).__name__ if dm is not None else "no diffusion model"
            raise UnsupportedModel(
                f"the {family} model ({kind}) is not supported: it has no UNet blocks and no DiT blocks the pack can "
                "hook through ComfyUI's patches_replace['dit']; the model-feature terms work on UNet models (SD1.x, "
                f"SD2.x, SDXL and fine-tunes) and on {dit_probe.SUPPORTED_TEXT} DiTs. Use the VGG/CLIP terms with it")
        layout = ModelLayout(family=family, input_blocks=len(info.blocks), level_ends=(),
                             attn1=tuple((*b, 0) for b in info.blocks), blocks=info.blocks)
        _LAYOUTS[dm] = layout
        return layout
    if any(isinstance(m, SpatialVideoTransformer) for m in dm.modules()):
        raise UnsupportedModel(f"the {family} model is a video UNet; the model-feature terms work on image UNets only")
    downs = [i for i, blk in enumerate(dm.input_blocks) if any(isinstance(m, Downsample) for m in blk.modules())]
    n_in = len(dm.input_blocks)
    level_ends = tuple(sorted({i - 1 for i in downs if i > 0} | {n_in - 1}))
    attn: list[AttentionKey] = []

    def scan(name: str, idx: int, blk: torch.nn.Module | None) -> None:
        if blk is None:
            return
        for child in blk.children():
            if isinstance(child, SpatialTransformer):
                for i, tb in enumerate(child.transformer_blocks):
                    if not getattr(tb, "disable_self_attn", False):
                        attn.append((name, idx, i))

    for i, blk in enumerate(dm.input_blocks):
        scan("input", i, blk)
    scan("middle", 0, dm.middle_block)
    for i, blk in enumerate(dm.output_blocks):
        scan("output", i, blk)
    layout = ModelLayout(family=family, input_blocks=n_in, level_ends=level_ends, attn1=tuple(attn))
    _LAYOUTS[dm] = layout
    return layout


def check_supported(model_patcher, terms: Iterable, who: str | None = None) -> None:
    """Refuse, before sampling, a model the chain's model-feature terms cannot hook or whose layers a preset misses.

    ``terms``: the chain's terms (any kind; only active ``space == "latent"`` ones are checked).
    ``who``: the node that asks (e.g. Measure), put in front of the message when given.
    Raises ValueError naming the node(s) and the model family.
    """
    latent = [t for t in terms if getattr(t, "space", "image") == "latent" and getattr(t, "weight", 0.0) != 0.0]
    if not latent:
        return
    base_model = getattr(model_patcher, "model", model_patcher)
    try:
        layout = model_layout(base_model)
    except UnsupportedModel as e:
        names = ", ".join(sorted({getattr(t, "node_name", t.kind) for t in latent}))
        raise ValueError(f"{who + ': ' if who else ''}{names}: {e}") from None
    reads_attention = sorted({getattr(t, "node_name", t.kind) for t in latent if callable(getattr(t, "layers", None))})
    problem = dit_probe.attention_problem(base_model.diffusion_model, layout.family) if layout.blocks else None
    if reads_attention and problem:
        raise ValueError(f"{who + ': ' if who else ''}{', '.join(reads_attention)}: {problem}")
    for t in latent:
        for resolve in ("blocks", "layers"):
            fn = getattr(t, resolve, None)
            if callable(fn):
                fn(layout)  # ValueError naming the node when the preset finds nothing on this model


# ---------------------------------------------------------------- autograd readiness
# ---------------------------------------------------------------- the probe
def _pick_cond(conds: list[dict] | None, sigma: float, reference: bool) -> list[dict]:
    """One cond dict for a probe pass: the first that applies at ``sigma``, whole-picture, batch as given."""
    if not conds:
        raise ValueError("model-feature terms need the positive conditioning the model is sampled with")

    def applies(c: dict) -> bool:
        start, end = c.get("timestep_start"), c.get("timestep_end")
        return (start is None or sigma <= start) and (end is None or sigma >= end)

    chosen = dict(next((c for c in conds if applies(c)), conds[0]))
    for k in _WHERE_WHEN + (_SPATIAL if reference else ()):
        chosen.pop(k, None)
    return [chosen]


def _reference_conds(base_model, conds: list[dict], x: torch.Tensor) -> list[dict]:
    """The conds of a pass over a reference picture: the output's concat conditioning replaced by the model's own
    'nothing known' fill at the reference's size.

    An inpainting model's extra input channels (mask + masked image, ``c_concat``) describe the OUTPUT's
    picture, like ControlNet and GLIGEN (left out of reference passes). A reference pass describes the
    reference alone, so it gets what ComfyUI gives such a model when nothing is known: ``concat_cond``
    with no mask and an all-zero image (inpainting: a full mask and a blank image; an edit model: a zero
    image), built at the reference's size. So the reference's features do not depend on the output's mask
    or masked image, nor on its size, and the Sampler and Measure compute the same ones.
    """
    out = []
    for c in conds:
        mc = c.get("model_conds", {})
        if "c_concat" in mc:
            import comfy.conds

            fill = base_model.concat_cond(noise=x, device=x.device, latent_image=torch.zeros_like(x))
            if fill is not None:
                c = {**c, "model_conds": {**mc, "c_concat": comfy.conds.CONDNoiseShape(fill)}}
        out.append(c)
    return out


def _check_reference_size(conds: list[dict], x: torch.Tensor) -> None:
    """Spatial model conditioning that cannot be rebuilt for a reference only fits pictures of the output's size."""
    for c in conds:
        for name, value in c.get("model_conds", {}).items():
            t = getattr(value, "cond", None)
            if isinstance(t, torch.Tensor) and t.ndim == x.ndim and tuple(t.shape[2:]) != tuple(x.shape[2:]):
                raise ValueError(
                    f"style: this model takes spatial conditioning ('{name}') that the pack cannot rebuild for a reference "
                    f"picture, so the style latent must have the output's size {tuple(t.shape[2:])}, not "
                    f"{tuple(x.shape[2:])}: scale the style image to the output size before VAE Encode")


class ComfyModelProbe:
    """Runs the loaded, patched ComfyUI model for the model-feature terms (see the module docstring).

    Attributes of the ModelProbe/FeatureProbe protocols: ``sigma`` (the evaluation's noise level),
    ``seed``, ``sigma_min`` (timestep 0), ``cache_token``. Each pass uses ONE cond dict of the
    positive conditioning (the first that applies at the pass's sigma, area/mask/time range
    dropped, so the pass covers the whole picture with the batch it is given).
    """

    def __init__(self, model, positive: list | None, model_options: dict, sigma: float, seed: int,
                 device: torch.device, session: Callable[[torch.Tensor, bool], contextlib.AbstractContextManager] | None = None) -> None:
        self.model = model
        self.positive = positive
        self.model_options = model_options or {}
        self.sigma = float(sigma)
        self.seed = int(seed or 0)
        self.device = torch.device(device)
        self.sigma_min = float(model.model_sampling.sigma_min)
        self.cache_token: Hashable = (id(model), id(positive), self.seed)
        self._session = session
        self.passes = 0  # model calls made (tests and benchmarks read it)

    def differentiable(self, run: Callable[[], Any]) -> Any:
        """``run()`` (feature passes and the backward through them) outside sampling, as a guided step does it: the
        weights ordinary until the backward ends (SD3's blocks, checkpointed once a ``patches_replace["dit"]`` entry
        wraps them, recompute then) and the retries of ``backward_through`` (in-place adds, ops without backward)."""
        def held() -> Any:
            with ordinary_weights([self.model.diffusion_model], self.device):
                return run()

        return backward_through(self.model, held)

    # -- the ModelProbe protocol ----------------------------------------------------
    def to_model_space(self, latent: torch.Tensor) -> torch.Tensor:
        return self.model.process_latent_in(latent.to(self.device))

    def layout(self) -> ModelLayout:
        return model_layout(self.model)

    def noised(self, x0: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
        s = torch.tensor(float(sigma), dtype=torch.float32, device=x0.device)
        return self.model.model_sampling.noise_scaling(s, noise.to(device=x0.device, dtype=x0.dtype), x0)

    # -- passes -----------------------------------------------------------------------
    def _options(self) -> dict:
        opts = comfy.model_patcher.create_model_options_clone(self.model_options)
        opts["transformer_options"] = dict(opts.get("transformer_options", {}))
        return opts

    @contextlib.contextmanager
    def _conds(self, x: torch.Tensor, sigma: float, reference: bool) -> Iterator[list[dict]]:
        if self._session is None:
            yield _pick_cond(self.positive, sigma, reference)
            return
        with self._session(x, reference) as conds:
            yield _pick_cond(conds, sigma, reference)

    def _run(self, x: torch.Tensor, sigma: float, opts: dict, reference: bool) -> None:
        """One model call on ``x`` at ``sigma`` with ``opts``; stops where the probe's patch says."""
        grad = torch.is_grad_enabled()  # inference_mode(False) would switch grad mode back on: keep the caller's
        with torch.inference_mode(False), torch.set_grad_enabled(grad), self._conds(x, sigma, reference) as conds:
            if reference:
                conds = _reference_conds(self.model, conds, x)
                _check_reference_size(conds, x)
            needs_grad = grad and x.requires_grad
            weights = (ordinary_weights(model_and_controls(self.model.diffusion_model, conds), x.device)
                       if needs_grad else contextlib.nullcontext())
            t = torch.full((x.shape[0],), float(sigma), dtype=torch.float32, device=x.device)
            self.passes += 1
            with weights:
                try:
                    comfy.samplers.calc_cond_batch(self.model, [conds], x, t, opts)
                except _StopForward:
                    pass

    def input_block_features(self, x: torch.Tensor, sigma: float, blocks: Sequence[int],
                             recompute: bool = False) -> dict[int, torch.Tensor]:
        """Outputs of the given UNet input blocks (as carried on to the skip connections); on a DiT, the image
        tokens of its blocks at these forward indices, on the token grid (sampler/dit_probe.py; ``recompute``)."""
        if self.layout().blocks:
            return self._dit_blocks(x, sigma, blocks, recompute)
        wanted = set(int(b) for b in blocks)
        deepest = max(wanted)
        got: dict[int, torch.Tensor] = {}

        def capture(h: torch.Tensor, transformer_options: dict) -> torch.Tensor:
            block = transformer_options.get("block")
            if block is not None and block[0] == "input" and block[1] in wanted:
                got[block[1]] = h
                if block[1] == deepest:
                    raise _StopForward
            return h

        opts = self._options()
        to = opts["transformer_options"]
        patches = dict(to.get("patches", {}))
        patches["input_block_patch"] = [*patches.get("input_block_patch", []), capture]
        to["patches"] = patches
        self._run(x, sigma, opts, reference=False)
        missing = sorted(wanted - set(got))
        if missing:
            raise RuntimeError(
                f"model features: UNet input block(s) {missing} did not run; a patch that skips or caches blocks "
                "(DeepCache, TeaCache, ...) or a wrapper that replaces the UNet's forward is in the way")
        return got

    def self_attention(self, x: torch.Tensor, sigma: float, layers: Sequence[AttentionKey],
                       reference: bool = False, recompute: bool = False) -> dict[AttentionKey, AttentionCapture]:
        """q, k, v and result of the given self-attention layers (see the module docstring; DiTs: ``recompute``)."""
        order = {k: i for i, k in enumerate(self.layout().attn1)}
        if self.layout().blocks:
            return self._dit_attention(x, sigma, [tuple(k) for k in layers], order, reference, recompute)
        wanted = [tuple(k) for k in layers]
        unknown = [k for k in wanted if k not in order]
        if unknown:
            raise ValueError(f"model features: no self-attention layer {unknown[0]} in this model")
        last = max(wanted, key=order.__getitem__)
        got: dict[AttentionKey, AttentionCapture] = {}
        latent_hw = tuple(x.shape[-2:])

        opts = self._options()
        to = opts["transformer_options"]
        replace = dict(to.get("patches_replace", {}))
        attn1 = dict(replace.get("attn1", {}))
        for key in wanted:
            existing = attn1.get(key, attn1.get(key[:2]))
            attn1[key] = _capturing_attention(key, existing, got, key == last, latent_hw)
        replace["attn1"] = attn1
        to["patches_replace"] = replace
        self._run(x, sigma, opts, reference)
        missing = [k for k in wanted if k not in got]
        if missing:
            raise RuntimeError(
                f"model features: self-attention layer(s) {missing} did not run; a patch that skips or caches "
                "blocks (DeepCache, TeaCache, ...) or a wrapper that replaces the UNet's forward is in the way")
        return got

    # -- DiTs (sampler/dit_probe.py) -------------------------------------------------------------
    def _dit_info(self) -> dit_probe.DiTInfo:
        info = dit_probe.dit_info(self.model.diffusion_model)
        assert info is not None  # model_layout found the blocks
        return info

    def _dit_blocks(self, x: torch.Tensor, sigma: float, blocks: Sequence[int], recompute: bool) -> dict[int, torch.Tensor]:
        got: dict[int, torch.Tensor] = {}
        opts = self._options()
        with dit_probe.block_options(opts, self._dit_info(), x, {int(b): int(b) for b in blocks}, got, recompute):
            self._run(x, sigma, opts, reference=False)
        _check_ran(sorted(set(int(b) for b in blocks) - set(got)), "DiT block(s) (forward index)")
        return got

    def _dit_attention(self, x: torch.Tensor, sigma: float, wanted: list, order: dict,
                       reference: bool, recompute: bool) -> dict[AttentionKey, AttentionCapture]:
        unknown = [k for k in wanted if k not in order]
        if unknown:
            raise ValueError(f"model features: no block {unknown[0]} in this model")
        got: dict[AttentionKey, AttentionCapture] = {}
        opts = self._options()
        with dit_probe.attention_options(opts, self._dit_info(), x, {order[k]: k for k in wanted}, got, recompute):
            self._run(x, sigma, opts, reference)
        _check_ran([k for k in wanted if k not in got], "DiT block attention(s)")
        return got


def _check_ran(missing: list, what: str) -> None:
    if missing:
        raise RuntimeError(
            f"model features: {what} {missing} did not run; a patch that skips or caches blocks (TeaCache, "
            "EasyCache, ...) or a wrapper that replaces the model's forward is in the way")


def _capturing_attention(key: AttentionKey, existing: Callable | None, got: dict, stop: bool,
                         latent_hw: tuple[int, int]) -> Callable:
    """An attn1 replacement that computes the layer as before (another pack's patch, or ComfyUI's) and records it."""
    import comfy.ldm.modules.attention as attention

    def attn(q, k, v, extra_options, *args, **kwargs):
        heads = int(extra_options["n_heads"])
        if existing is not None:
            out = existing(q, k, v, extra_options, *args, **kwargs)
        else:
            out = attention.optimized_attention(q, k, v, heads, attn_precision=extra_options.get("attn_precision"),
                                                transformer_options=extra_options)
        shape = extra_options.get("activations_shape")
        if shape is not None and len(shape) == 4 and shape[2] * shape[3] == q.shape[1]:
            hw = (int(shape[2]), int(shape[3]))
        else:  # tokens on a grid with the latent's aspect ratio
            f = (q.shape[1] / (latent_hw[0] * latent_hw[1])) ** 0.5
            hw = (max(1, round(latent_hw[0] * f)), max(1, round(latent_hw[1] * f)))
        got[key] = AttentionCapture(q, k, v, out, heads, hw)
        if stop:
            raise _StopForward
        return out

    return attn


def make_probe(ctx: ProbeContext) -> ComfyModelProbe:
    """The probe for one guided evaluation (the engine calls this with grad enabled)."""
    sigma = ctx.sigma
    sigma = float(sigma.flatten()[0]) if isinstance(sigma, torch.Tensor) else float(sigma)
    if ctx.x_t is not None:
        device = ctx.x_t.device
    else:
        patcher = getattr(ctx.model, "current_patcher", None)
        device = patcher.load_device if patcher is not None else comfy.model_management.get_torch_device()
    return ComfyModelProbe(ctx.model, ctx.positive, ctx.model_options, sigma, ctx.seed, device)


# ---------------------------------------------------------------- outside sampling (Measure)
class _Standalone:
    """Does for one probe pass what a sampler does around its model calls: load, prepare conds, pre_run/cleanup.

    Conds are processed per latent shape (as ``process_conds`` does for a sampling run); hooks,
    ControlNet and GLIGEN are left out (they would need the sampler's per-run registration).
    """

    def __init__(self, patcher, positive, seed: int) -> None:
        self.patcher = patcher
        self.positive = comfy.sampler_helpers.convert_cond(positive)
        self.seed = seed
        self._processed: dict[tuple, list[dict]] = {}

    def _conds_for(self, x: torch.Tensor) -> list[dict]:
        key = tuple(x.shape)
        if key not in self._processed:
            raw = [{k: v for k, v in c.items() if k not in ("hooks", *_SPATIAL)} for c in self.positive]
            noise = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
            # latent_image: models with concat inputs (inpainting) need one; with no noise mask it only gives
            # the shape, as in a sampling run without a mask.
            out = comfy.samplers.process_conds(self.patcher.model, noise, {"positive": raw}, x.device,
                                               latent_image=noise, seed=self.seed)
            self._processed[key] = out["positive"]
        return self._processed[key]

    @contextlib.contextmanager
    def __call__(self, x: torch.Tensor, reference: bool) -> Iterator[list[dict]]:
        comfy.model_management.load_models_gpu([self.patcher])
        conds = self._conds_for(x)
        self.patcher.pre_run()
        try:
            yield conds
        finally:
            self.patcher.cleanup()


def measure_probe(model_patcher, positive, seed: int, sigma: float) -> ComfyModelProbe:
    """A probe outside sampling (the Measure node): the patcher's model, its model_options, ``positive``
    (CONDITIONING as nodes pass it), features at ``sigma`` (AD) / the lowest noise level (ZeCon)."""
    if positive is None or len(positive) == 0:
        raise ValueError("Measure Losses: model-feature terms need the positive conditioning (connect 'positive')")
    session = _Standalone(model_patcher, positive, int(seed or 0))
    # Loaded before the first pass, so differentiable() finds the weights on the device they run on.
    comfy.model_management.load_models_gpu([model_patcher])
    base_model = model_patcher.model
    probe = ComfyModelProbe(base_model, None, model_patcher.model_options, float(sigma), seed,
                            model_patcher.load_device, session=session)
    probe.cache_token = (id(base_model), id(positive), probe.seed, "measure")
    return probe
