"""The one module that touches ComfyUI's sampling internals.

Guidance is installed on a ``model.clone()`` with ComfyUI's own extension points, so
it composes with every other patch (LoRA, ControlNet, FreeU, PAG, IP-Adapter ...):
- x0 mode: a post-CFG function (fires once per model evaluation, on any sampler);
- xt mode: a PREDICT_NOISE wrapper that re-runs the prediction with autograd on;
- an OUTER_SAMPLE wrapper starts each run (seeding, statistics) and adds recurrence;
- the decoder copy and loss networks ride along as "additional models", so ComfyUI's
  memory manager loads and offloads them with the UNet.
Upgrading ComfyUI should touch this file only (and :mod:`sampler.families`, which reads the
latent format and VAE attributes of ComfyUI's objects to name model families).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import weakref
from collections.abc import Iterator

import comfy.model_management
import comfy.model_patcher
import comfy.model_sampling
import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import comfy.utils
import torch

from . import families
from .autograd_compat import clone_saved_activations, is_inplace_error
from .engine import OOM_ADVICE, GuidanceEngine
from .guidance import renoise_flow, renoise_ve, resize_for_loss, step_fraction
from .settings import GuidanceSettings

log = logging.getLogger("style_guidance")
KEY = "style_guidance"


# ---------------------------------------------------------------- autograd plumbing
@contextlib.contextmanager
def autograd_enabled() -> Iterator[None]:
    """Leave ComfyUI's inference mode and no_grad for the guidance computation only."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


def autograd_safe_(module: torch.nn.Module) -> torch.nn.Module:
    """Replace inference-mode parameters/buffers with ordinary copies of the same values.

    ComfyUI creates (and moves) weights inside ``torch.inference_mode``; such tensors can
    never be saved for backward. Values are unchanged and ``requires_grad`` stays False.
    Must run outside inference mode. Cheap when there is nothing to replace.
    """
    for mod in module.modules():
        for name, p in list(mod._parameters.items()):
            if p is not None and p.is_inference():
                mod._parameters[name] = torch.nn.Parameter(p.detach().clone(), requires_grad=False)
        for name, b in list(mod._buffers.items()):
            if b is not None and b.is_inference():
                mod._buffers[name] = b.clone()
    return module


def frozen_(module: torch.nn.Module) -> bool:
    """True when no parameter of ``module`` requires grad (tests check ComfyUI's models)."""
    return not any(p.requires_grad for p in module.parameters())


def wrap_in_patcher(module: torch.nn.Module) -> comfy.model_patcher.ModelPatcher:
    """Hand an extra network to ComfyUI's model management (load/offload with the UNet)."""
    module.eval().requires_grad_(False)
    return comfy.model_patcher.ModelPatcher(
        module,
        load_device=comfy.model_management.get_torch_device(),
        offload_device=comfy.model_management.unet_offload_device(),
    )


# ---------------------------------------------------------------- the decoder
class DecoderCopy(torch.nn.Module):
    """A grad-capable copy of a VAE's decoder: latent (VAE space) -> image in ~[0,1], NCHW.

    ComfyUI's ``VAE.decode`` clamps to [0,1] (zero gradient outside), moves to the
    intermediate device and returns NHWC, so it cannot be used for gradients.
    """

    def __init__(self, first_stage_model: torch.nn.Module) -> None:
        super().__init__()
        encoders = [getattr(first_stage_model, n) for n in ("encoder", "taesd_encoder")
                    if isinstance(getattr(first_stage_model, n, None), torch.nn.Module)]
        with torch.inference_mode(False):
            # The encoder is never used for guidance: leave it out of the copy.
            memo = {id(e): torch.nn.Identity() for e in encoders}
            self.model = autograd_safe_(copy.deepcopy(first_stage_model, memo)).eval().requires_grad_(False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        dtype = next(self.model.parameters()).dtype
        out = self.model.decode(z.to(dtype))
        return out.float() * 0.5 + 0.5  # [-1,1] -> [0,1], no clamp: keep the gradient


_DECODERS: weakref.WeakKeyDictionary[object, tuple[DecoderCopy, comfy.model_patcher.ModelPatcher]] = (
    weakref.WeakKeyDictionary())


def decoder_for(vae) -> tuple[DecoderCopy, comfy.model_patcher.ModelPatcher]:
    """The cached decoder copy of ``vae`` (made once per VAE object, reused across runs)."""
    hit = _DECODERS.get(vae)
    if hit is None:
        dec = DecoderCopy(vae.first_stage_model)
        patcher = comfy.model_patcher.ModelPatcher(dec, load_device=vae.patcher.load_device,
                                                   offload_device=vae.patcher.offload_device)
        hit = _DECODERS[vae] = (dec, patcher)
    return hit


def check_vae_matches(model, vae) -> None:
    """Refuse, before sampling, a model that is not an image model or a VAE of another family (both named)."""
    families.check_model(model)
    families.check_vae_matches(model, vae)


# ---------------------------------------------------------------- progress text
def _progress_reporter():
    """Send loss values as the node's progress text in the editor, where supported."""
    try:
        from comfy_execution.utils import get_executing_context
        from server import PromptServer
    except ImportError:
        return None
    ctx = get_executing_context()
    server = getattr(PromptServer, "instance", None)
    if ctx is None or server is None or not hasattr(server, "send_progress_text"):
        return None
    node_id = ctx.node_id

    def report(text: str) -> None:
        log.debug("[Style Guidance] %s", text)
        server.send_progress_text(text, node_id)

    return report


# ---------------------------------------------------------------- installing guidance
def _loss_models(losses) -> list[torch.nn.Module]:
    """The distinct networks (extractors/encoders) the chain uses."""
    seen: dict[int, torch.nn.Module] = {}
    for term in losses.active_terms:
        for attr in ("extractor", "encoder"):
            m = getattr(term, attr, None)
            if isinstance(m, torch.nn.Module):
                seen[id(m)] = m
    return list(seen.values())


def _loss_patchers(losses) -> list[comfy.model_patcher.ModelPatcher]:
    out = []
    for m in _loss_models(losses):
        patcher = getattr(m, "comfy_patcher", None)
        if patcher is None:
            patcher = m.comfy_patcher = wrap_in_patcher(m)
        out.append(patcher)
    return out


class _RunState:
    """Per-run bookkeeping shared by the hooks of one patched model."""

    def __init__(self) -> None:
        self.prepared = False
        self.device: torch.device | None = None


# Models whose forward updates activations in place (found by a first failed backward): xt mode
# runs them with saved copies (sampler.autograd_compat) from then on, in every later run too.
_SAVED_COPIES_NEEDED: weakref.WeakSet = weakref.WeakSet()


def install_guidance(model, vae, losses, settings: GuidanceSettings) -> tuple[object, GuidanceEngine | None]:
    """Return ``(patched model clone, engine)``, or the model untouched when nothing guides.

    With scale 0 or no active loss the original model comes back unchanged, so the
    output is bit-for-bit that of plain sampling.
    """
    problem = settings.validate()
    if problem:
        raise ValueError(problem)
    if losses is None or losses.is_empty() or not settings.enabled:
        why = "scale is 0" if not settings.enabled else "no loss with a non-zero weight is connected"
        log.info("[Style Guidance] %s: sampling without guidance", why)
        return model, None
    check_vae_matches(model, vae)

    decoder, decoder_patcher = decoder_for(vae)
    latent_format = model.model.latent_format
    engine = GuidanceEngine(losses, lambda x0: decoder(latent_format.process_out(x0)), settings)
    state = _RunState()
    m = model.clone()
    m.set_additional_models(KEY, [decoder_patcher, *_loss_patchers(losses)])

    def prepare(guider_model, extra_models=()) -> None:
        # Models were loaded (possibly inside inference mode) by prepare_sampling: make
        # the ones autograd will traverse safe, and move loss targets to their device.
        if state.prepared:
            return
        state.device = guider_model.load_device
        nets = [decoder, *_loss_models(losses)]
        if settings.mode == "xt":
            nets.append(guider_model.model)
            # Models the sampler loaded for the conditioning (ControlNets, T2I adapters) run inside the
            # prediction, so the backward goes through them too.
            nets += [p.model for p in extra_models if isinstance(getattr(p, "model", None), torch.nn.Module)]
        with torch.inference_mode(False):  # copies made inside inference mode would be inference tensors
            for net in nets:
                autograd_safe_(net)
            losses.to(state.device)
        if state.device.type == "cuda":
            engine.autocast_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        state.prepared = True

    schedule_cache: dict[tuple, torch.Tensor] = {}

    def host_schedule(sample_sigmas: torch.Tensor | None) -> torch.Tensor | None:
        """The run's schedule on the CPU, copied once per run rather than at every evaluation."""
        if sample_sigmas is None:
            return None
        key = (sample_sigmas.data_ptr(), sample_sigmas.numel(), sample_sigmas.device)
        if key not in schedule_cache:
            schedule_cache.clear()
            schedule_cache[key] = sample_sigmas.detach().float().cpu()
        return schedule_cache[key]

    def fraction_of(sigma: float, model_options: dict, model_sampling) -> float:
        frac = step_fraction(sigma, host_schedule(model_options.get("transformer_options", {}).get("sample_sigmas")))
        if frac is None:  # schedule unknown: fall back to ComfyUI's percent convention
            lo, hi = float(model_sampling.sigma_min), float(model_sampling.sigma_max)
            frac = 1.0 - (sigma - lo) / max(hi - lo, 1e-8)
        return frac

    def guarded(fn):
        """Run one guided evaluation: interrupts honoured, OOM turned into advice."""
        comfy.model_management.throw_exception_if_processing_interrupted()
        try:
            with autograd_enabled():
                return fn()
        except torch.OutOfMemoryError as e:
            comfy.model_management.soft_empty_cache(True)
            raise RuntimeError(OOM_ADVICE) from e

    def outer_sample(executor, noise, latent_image, sampler, sigmas, denoise_mask, callback,
                     disable_pbar, seed, *args, **kwargs):
        state.prepared = False
        engine.report = _progress_reporter()
        engine.begin(seed)
        if settings.recurrence > 1 and isinstance(sampler, comfy.samplers.KSAMPLER):
            sampler = _recurrent_sampler(sampler, settings, seed, executor.class_obj)
        return executor(noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed,
                        *args, **kwargs)

    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, KEY, outer_sample)

    if settings.mode == "x0":
        def post_cfg(args: dict) -> torch.Tensor:
            denoised = args["denoised"]
            model_obj = args["model"]
            sigma = float(args["sigma"].flatten()[0])  # the one sync an evaluation needs: where are we?
            frac = fraction_of(sigma, args["model_options"], model_obj.model_sampling)
            if not engine.wants(frac):
                return denoised
            prepare(m)
            return guarded(lambda: engine.guide_x0(args["input"], denoised, sigma, frac))

        m.set_model_sampler_post_cfg_function(post_cfg)
    else:
        def predict_noise(executor, x, timestep, model_options=None, seed=None):
            if model_options is None:
                model_options = {}
            guider = executor.class_obj
            sigma = float(timestep.flatten()[0])  # the one sync an evaluation needs: where are we?
            frac = fraction_of(sigma, model_options, guider.inner_model.model_sampling)
            if not engine.wants(frac):
                return executor(x, timestep, model_options, seed)
            prepare(guider.model_patcher, getattr(guider, "loaded_models", ()))

            def run():
                ts = timestep.detach().clone()  # inference tensors cannot be saved for backward

                def guide():
                    return engine.guide_xt(x, lambda xg: executor(xg, ts, model_options, seed), sigma, frac)

                base_model = guider.model_patcher.model
                if base_model in _SAVED_COPIES_NEEDED:
                    with clone_saved_activations():
                        return guide()
                try:
                    return guide()
                except RuntimeError as e:  # e.g. Flux: residuals added in place; retry with saved copies
                    if not is_inplace_error(e):
                        raise
                    _SAVED_COPIES_NEEDED.add(base_model)
                    log.info("[Style Guidance] xt mode: %s updates activations in place; autograd keeps copies "
                             "of them for this model from now on", type(base_model).__name__)
                    with clone_saved_activations():
                        return guide()

            return guarded(run)

        m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.PREDICT_NOISE, KEY, predict_noise)
    return m, engine


# ---------------------------------------------------------------- recurrence
def _recurrent_sampler(sampler, settings: GuidanceSettings, seed, guider):
    """A copy of a KSAMPLER whose steps inside the recurrence window run k times.

    Time-travel as in FreeDoM / Universal Guidance: take the step, re-noise back to the
    step's noise level, take it again. The sampler function is called on one-step slices
    of the schedule there, so multistep samplers run first-order inside the window.
    """
    inner = sampler.sampler_function
    k = settings.recurrence
    flow = isinstance(guider.model_patcher.model.model_sampling, comfy.model_sampling.CONST)
    renoise = renoise_flow if flow else renoise_ve
    gen = torch.Generator().manual_seed((int(seed or 0) + 0x5EED) % 2**63)

    def recurrent(model, x, sigmas, extra_args=None, callback=None, disable=None, **opts):
        n = len(sigmas) - 1

        def repeats(i: int) -> bool:
            f = i / n
            return settings.recurrence_start_percent <= f < settings.recurrence_end_percent

        def shifted(offset: int):
            if callback is None:
                return None
            return lambda d: callback({**d, "i": d["i"] + offset})

        i = 0
        while i < n:
            if not repeats(i):
                j = i
                while j < n and not repeats(j):
                    j += 1
                x = inner(model, x, sigmas[i:j + 1], extra_args=extra_args, callback=shifted(i), disable=disable, **opts)
                i = j
                continue
            s, s_next = float(sigmas[i]), float(sigmas[i + 1])
            for r in range(k):
                last = r == k - 1
                x_next = inner(model, x, sigmas[i:i + 2], extra_args=extra_args,
                               callback=shifted(i) if last else None, disable=True, **opts)
                if last:
                    x = x_next
                    break
                noise = torch.randn(x.shape, generator=gen).to(device=x.device, dtype=x.dtype)
                x = renoise(x_next, s, s_next, noise)
            i += 1
        return x

    return comfy.samplers.KSAMPLER(recurrent, extra_options=sampler.extra_options,
                                   inpaint_options=sampler.inpaint_options)


# ---------------------------------------------------------------- a KSampler twin
def sample_like_ksampler(model, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str,
                         positive, negative, latent: dict, denoise: float) -> dict:
    """Exactly what the core KSampler node does, on whatever (patched) model it is given."""
    import latent_preview

    latent_image = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    noise = comfy.sample.prepare_noise(latent_image, seed, latent.get("batch_index"))
    callback = latent_preview.prepare_callback(model, steps)
    samples = comfy.sample.sample(
        model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
        denoise=denoise, noise_mask=latent.get("noise_mask"), callback=callback,
        disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed,
    )
    out = latent.copy()
    out["samples"] = samples
    return out


def make_guider(model, positive, negative, cfg: float):
    """A core CFGGuider over the (patched) model: a GUIDER for SamplerCustomAdvanced."""
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    return guider


def sampler_names() -> list[str]:
    return list(comfy.samplers.KSampler.SAMPLERS)


def scheduler_names() -> list[str]:
    return list(comfy.samplers.KSampler.SCHEDULERS)


def decode_for_measure(vae, latent: torch.Tensor) -> torch.Tensor:
    """Decode like VAEDecode does (NHWC in [0,1]); for measuring results outside sampling."""
    return vae.decode(latent)


__all__ = [
    "autograd_enabled", "autograd_safe_", "check_vae_matches", "decoder_for", "frozen_", "install_guidance",
    "make_guider", "resize_for_loss", "sample_like_ksampler", "sampler_names", "scheduler_names",
    "wrap_in_patcher",
]
