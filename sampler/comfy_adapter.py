"""The guidance hooks on ComfyUI's sampler: the main module that touches its sampling internals.

Guidance is installed on a ``model.clone()`` with ComfyUI's own extension points, so it
composes with every other patch (LoRA, ControlNet, FreeU, PAG, IP-Adapter ...):
- x0 mode: a post-CFG function (fires once per model evaluation, on any sampler);
- xt mode: a PREDICT_NOISE wrapper that re-runs the prediction with autograd on;
- an OUTER_SAMPLE wrapper starts each run (seeding, progress) and adds recurrence;
- the decoder copy and loss networks ride along as "additional models", so ComfyUI's
  memory manager loads and offloads them with the diffusion model;
- when a gradient must pass through the diffusion model (xt mode, terms on its own
  features), its inference-mode weights are swapped for ordinary copies for that one
  forward and put back right after (``autograd_compat.ordinary_weights``); the shared
  model is never left modified.

The modules that touch ComfyUI's sampling internals, and so need a look on a ComfyUI upgrade
(everything else in ``sampler/`` sees plain tensors or plain modules):
- this one (patcher wrappers and post-CFG functions, ``CFGGuider``/``KSAMPLER``, model management);
- ``sampler/model_probe.py`` (runs the diffusion model through ``calc_cond_batch`` and reads its
  blocks and self-attention through ``transformer_options`` patches; ControlNet chains in conds);
- ``sampler/inversion.py`` (a KSAMPLER run through ``CFGGuider``, the inverse of ``noise_scaling``);
- ``sampler/recurrence.py`` (the k-diffusion sampler-function calling convention);
- ``sampler/clip_vision.py`` (an out-of-place copy of ComfyUI's CLIP/SigLIP vision forward);
- ``sampler/op_fallbacks.py`` (module-level bindings of ComfyUI's custom ops without backward,
  e.g. comfy_kitchen's RoPE, swapped for differentiable equivalents in grad-enabled passes);
- ``sampler/families.py`` (reads the latent format and VAE attributes of ComfyUI's objects to
  name model families).
``sampler/autograd_compat.py`` holds the autograd plumbing (grad on, ordinary copies, the
in-place and custom-op retries; the ops themselves are named in ``op_fallbacks``).
"""

from __future__ import annotations

import contextlib
import logging
import traceback
import weakref
from collections.abc import Callable, Iterator

import comfy.model_management
import comfy.model_patcher
import comfy.model_sampling
import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import comfy.utils
import torch

from ..protocol import STEP_EVENT
from . import families, frames, model_probe
from .autograd_compat import (
    autograd_enabled,
    backward_through,
    make_ordinary_,
    model_and_controls,
    ordinary_copy,
    ordinary_weights,
    with_ordinary_tensors,
)
from .engine import OOM_ADVICE, GuidanceEngine, StepReport
from .guidance import percent_of_sigma, renoise_flow, renoise_ve, step_fraction
from .recurrence import recurrent_sampler_function
from .settings import GuidanceSettings

log = logging.getLogger("style_guidance")
KEY = "style_guidance"


# ---------------------------------------------------------------- model management
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
    intermediate device and returns NHWC, so it cannot be used for gradients. 5-D latents go in
    intact; their F decoded frames come out stacked along the channels, (B, 3 F, H, W) (see
    :mod:`sampler.frames`): one picture per sample for Qwen-Image's one-frame latents, a video for Wan 2.1.
    """

    def __init__(self, first_stage_model: torch.nn.Module) -> None:
        super().__init__()
        encoders = [getattr(first_stage_model, n) for n in ("encoder", "taesd_encoder")
                    if isinstance(getattr(first_stage_model, n, None), torch.nn.Module)]
        # A video tiny autoencoder (TAEHV) gives [0, 1] pixels already (ComfyUI maps them by identity).
        self.unit_range = type(first_stage_model).__name__ == "TAEHV"
        # The encoder is never used for guidance: leave it out of the copy.
        self.model = ordinary_copy(first_stage_model, leave_out=encoders).eval().requires_grad_(False)
        if self.unit_range:
            # Its frame-by-frame mode detaches the frames it remembers; parallel mode: same sums, with gradient.
            self.model.parallel, self.model.show_progress_bar = True, False

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        dtype = next(self.model.parameters()).dtype
        out = self.model.decode(z.to(dtype))
        out = (frames.pack_frames(out) if out.ndim == 5 else out).float()  # (B, 3, F, H, W) -> (B, 3 F, H, W)
        return out if self.unit_range else out * 0.5 + 0.5  # [-1,1] -> [0,1], no clamp: keep the gradient


# Keyed weakly on ComfyUI's VAE object: when ComfyUI's cache drops a VAE, its copy goes too.
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


# ---------------------------------------------------------------- progress text and step events
def _progress_reporter(steps: Callable[[], int | None]) -> Callable[[StepReport], None] | None:
    """Show each guided evaluation as the node's progress text and send it as a step event.

    ``steps()``: the run's number of sampling steps when known, so an event carries its step
    index (an evaluation of step i of n is at fraction i/n; Heun/SDE stages and recurrence
    repeats share their step) besides its running evaluation number.
    """
    try:
        from comfy_execution.utils import get_executing_context
        from server import PromptServer
    except ImportError:
        return None
    ctx = get_executing_context()
    server = getattr(PromptServer, "instance", None)
    if ctx is None or server is None:
        return None
    node_id = ctx.node_id
    prompt_id = getattr(ctx, "prompt_id", None)
    counter = iter(range(1 << 30))

    def report(step: StepReport) -> None:
        evaluation = next(counter)
        n = steps()
        index = round(step.fraction * n) if n else evaluation
        text = step.text(min(index + 1, n) if n else None, n)  # step i of n, from 1 as the progress bar counts
        log.debug("[Style Guidance] %s", text)
        if hasattr(server, "send_progress_text"):
            server.send_progress_text(text, node_id)
        event = {"node": node_id, "prompt_id": prompt_id, "evaluation": evaluation, **step.as_event(index)}
        server.send_sync(STEP_EVENT, event, getattr(server, "client_id", None))

    return report


# ---------------------------------------------------------------- the hooks
def _loss_models(losses) -> list[torch.nn.Module]:
    """The distinct networks (extractors/encoders) the chain's image terms use."""
    seen: dict[int, torch.nn.Module] = {}
    for _name, term in losses.image_terms:
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


class GuidanceHooks:
    """The sampling hooks of one guided model clone, and the state of its current run."""

    def __init__(self, patcher, engine: GuidanceEngine, settings: GuidanceSettings,
                 decoder: torch.nn.Module | None, losses) -> None:
        self.patcher = patcher
        self.engine = engine
        self.settings = settings
        self.decoder = decoder
        self.losses = losses
        self.prepared = False
        self.seed = 0
        self._schedule: tuple[tuple, torch.Tensor] | None = None
        self.vae = None  # the guidance VAE: its temporal stride tells the frames a video latent decodes to

    def install(self) -> None:
        """Register the hooks on the clone (never on the model it was cloned from)."""
        m = self.patcher
        m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, KEY, self.outer_sample)
        if self.settings.mode == "x0":
            m.set_model_sampler_post_cfg_function(self.post_cfg)
        else:
            m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.PREDICT_NOISE, KEY, self.predict_noise)

    # -- per run -------------------------------------------------------------------
    def outer_sample(self, executor, noise, latent_image, sampler, sigmas, denoise_mask, callback,
                     disable_pbar, seed, *args, **kwargs):
        """Start a run: fresh state, reseeded losses, progress reporting, recurrence."""
        families.check_latent(self.patcher, latent_image)
        self.check_video(latent_image)
        self.prepared = False
        self.seed = int(seed or 0)
        self._schedule = None
        self.engine.report = _progress_reporter(self._steps)
        self.engine.begin(seed)
        s = self.settings
        if s.recurrence > 1:
            if isinstance(sampler, comfy.samplers.KSAMPLER):
                flow = isinstance(executor.class_obj.model_patcher.model.model_sampling, comfy.model_sampling.CONST)
                fn = recurrent_sampler_function(sampler.sampler_function, s.recurrence, s.recurrence_start_percent,
                                                s.recurrence_end_percent, renoise_flow if flow else renoise_ve,
                                                self.seed)
                sampler = comfy.samplers.KSAMPLER(fn, extra_options=sampler.extra_options,
                                                  inpaint_options=sampler.inpaint_options)
            else:
                log.warning("[Style Guidance] recurrence %d ignored: the sampler %s is not a k-diffusion KSAMPLER, so "
                            "its steps cannot be repeated (guidance itself still runs)", s.recurrence,
                            type(sampler).__name__)
        return executor(noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed,
                        *args, **kwargs)

    def check_video(self, latent_image: torch.Tensor) -> None:
        """A video latent: the content videos must pair with its decoded frames, and model-feature terms wait.

        Checked here, before the first step, with the frames the guidance VAE decodes the latent to.
        """
        if latent_image.ndim != 5 or int(latent_image.shape[2]) == 1 or not families.is_video_model(self.patcher):
            return
        if self.losses.latent_terms:
            names = ", ".join(sorted({getattr(t, "node_name", t.kind) for _, t in self.losses.latent_terms}))
            raise ValueError(f"losses: {names} read the model's own features, which are not yet supported on video "
                             "latents; use the VGG/CLIP/pixel loss nodes for video")
        t = int(latent_image.shape[2])
        n = families.decoded_frames(self.vae, t)
        label = families.VIDEO_FORMATS.get(families.model_family(self.patcher).latent_format, "its VAE")
        rule = f"{label}: 1 + 4 x (T - 1) for T latent frames" if n == 1 + 4 * (t - 1) else ""
        frames.check_content_frames(self.losses, n, int(latent_image.shape[0]), t, stride=rule)

    def prepare(self, patcher) -> None:
        """Once per run, at the first guided evaluation: make what autograd traverses usable.

        Models were loaded (possibly inside inference mode) by ComfyUI: the pack's own
        copies become ordinary tensors, loss targets move to the device.
        """
        if self.prepared:
            return
        device = patcher.load_device
        nets = [n for n in (self.decoder, *_loss_models(self.losses)) if n is not None]
        with torch.inference_mode(False):
            for net in nets:
                make_ordinary_(net)
            self.losses.to(device)
        if device.type == "cuda":
            self.engine.autocast_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.prepared = True

    def fraction(self, sigma: float, model_options: dict, model_sampling) -> float:
        """Fraction of the schedule done at this evaluation (the run's own steps when known)."""
        sample_sigmas = model_options.get("transformer_options", {}).get("sample_sigmas")
        frac = step_fraction(sigma, self._host_schedule(sample_sigmas))
        if frac is None:  # schedule unknown: ComfyUI's own percent convention for this model
            frac = percent_of_sigma(sigma, lambda p: float(model_sampling.percent_to_sigma(p)))
        return frac

    def _steps(self) -> int | None:
        """Sampling steps of the current run (from its schedule), when the sampler published it."""
        return None if self._schedule is None else int(self._schedule[1].numel()) - 1

    def _host_schedule(self, sample_sigmas: torch.Tensor | None) -> torch.Tensor | None:
        """The run's schedule on the CPU, copied once per run rather than at every evaluation."""
        if sample_sigmas is None:
            return None
        key = (sample_sigmas.data_ptr(), sample_sigmas.numel(), sample_sigmas.device)
        if self._schedule is None or self._schedule[0] != key:
            self._schedule = (key, sample_sigmas.detach().float().cpu())
        return self._schedule[1]

    @contextlib.contextmanager
    def _guarded(self, through_model: list[torch.nn.Module] | None = None,
                 device: torch.device | None = None) -> Iterator[None]:
        """One guided evaluation: interrupts honoured, autograd on, OOM turned into advice.

        ``through_model``: ComfyUI networks the gradient passes through (xt mode), given
        ordinary weights for the evaluation (see :func:`ordinary_weights`).
        """
        comfy.model_management.throw_exception_if_processing_interrupted()
        weights = ordinary_weights(through_model, device) if through_model else contextlib.nullcontext()
        try:
            with autograd_enabled(), weights:
                yield
        except torch.OutOfMemoryError as e:
            # The failed evaluation's graph (decoded batch, activations) lives on in the frames of
            # the traceback, which ComfyUI keeps until a garbage collection: drop those locals now,
            # so the cache can really be emptied and the advice's "released" holds at once.
            traceback.clear_frames(e.__traceback__)
            comfy.model_management.soft_empty_cache(True)
            raise RuntimeError(OOM_ADVICE) from e

    def _probe_maker(self, **ctx) -> Callable | None:
        """A zero-argument probe factory for latent terms (None when the chain has none)."""
        if not self.losses.latent_terms:
            return None
        return lambda: model_probe.make_probe(model_probe.ProbeContext(seed=self.seed, **ctx))

    # -- the two guidance hooks ---------------------------------------------------
    def post_cfg(self, args: dict) -> torch.Tensor:
        """x0 mode: replace the CFG-combined prediction by the guided one."""
        denoised = args["denoised"]
        model_obj = args["model"]
        sigma_t = args["sigma"]
        sigma = float(sigma_t.flatten()[0])  # the one sync an evaluation needs: where are we?
        frac = self.fraction(sigma, args["model_options"], model_obj.model_sampling)
        if not self.engine.wants(frac):
            return denoised
        self.prepare(self.patcher)
        probe = self._probe_maker(model=model_obj, positive=args.get("cond"), negative=args.get("uncond"),
                                  model_options=args["model_options"], sigma=sigma_t, x_t=args["input"])
        # Model-feature terms: the model's weights stay ordinary until their backward has run (a block it
        # recomputes then, under activation checkpointing, reads them).
        nets = (None if probe is None
                else model_and_controls(model_obj.diffusion_model, args.get("cond"), args.get("uncond")))
        with self._guarded(nets, args["input"].device):
            if probe is None:
                return self.engine.guide_x0(args["input"], denoised, sigma, frac, probe)
            # Model-feature terms take a gradient through the model: the same retries as xt mode.
            return backward_through(model_obj, lambda: self.engine.guide_x0(args["input"], denoised, sigma, frac, probe))

    def predict_noise(self, executor, x, timestep, model_options=None, seed=None):
        """xt mode: re-run the prediction with autograd and take the gradient back to x_t."""
        if model_options is None:
            model_options = {}
        guider = executor.class_obj
        sigma = float(timestep.flatten()[0])  # the one sync an evaluation needs: where are we?
        frac = self.fraction(sigma, model_options, guider.inner_model.model_sampling)
        if not self.engine.wants(frac):
            return executor(x, timestep, model_options, seed)
        self.prepare(guider.model_patcher)
        conds = getattr(guider, "conds", {}) or {}
        probe = self._probe_maker(model=guider.inner_model, positive=conds.get("positive"),
                                  negative=conds.get("negative"), model_options=model_options, sigma=timestep, x_t=x)
        nets = model_and_controls(guider.inner_model.diffusion_model, conds.get("positive"), conds.get("negative"))
        with self._guarded(nets, x.device):
            ts = timestep.detach().clone()  # inference tensors cannot be saved for backward

            def guide() -> torch.Tensor:
                return self.engine.guide_xt(x, lambda xg: executor(xg, ts, model_options, seed), sigma, frac, probe)

            return backward_through(guider.model_patcher.model, guide)


# ---------------------------------------------------------------- installing guidance
def install_guidance(model, vae, losses, settings: GuidanceSettings) -> tuple[object, GuidanceEngine | None]:
    """Return ``(patched model clone, engine)``, or the model untouched when nothing guides.

    With scale 0 or no active loss the original model comes back unchanged, so the
    output is bit-for-bit that of plain sampling. Every check that can fail runs here,
    before sampling starts.
    """
    problem = settings.validate()
    if problem:
        raise ValueError(problem)
    if losses is None or losses.is_empty() or not settings.enabled:
        why = "scale is 0" if not settings.enabled else "no loss with a non-zero weight is connected"
        log.info("[Style Guidance] %s: sampling without guidance", why)
        return model, None
    # Every chain, latent terms alone included, meets the family check before anything else.
    families.check_model(model)
    decoder = None
    additional = []
    if losses.image_terms:
        check_vae_matches(model, vae)
        decoder, decoder_patcher = decoder_for(vae)
        additional = [decoder_patcher, *_loss_patchers(losses)]
    if losses.latent_terms:
        model_probe.check_supported(model, [t for _, t in losses.latent_terms])
    latent_format = model.model.latent_format

    def decode(x0: torch.Tensor) -> torch.Tensor:
        return decoder(with_ordinary_tensors(latent_format).process_out(x0))  # Wan 2.1's mean/std

    # Video models: decoded frames folded into the loss batch, per-sample values the mean over frames.
    chain = frames.FrameChain(losses) if families.is_video_model(model) else losses
    engine = GuidanceEngine(chain, decode, settings)
    m = model.clone()
    if additional:
        m.set_additional_models(KEY, additional)
    hooks = GuidanceHooks(m, engine, settings, decoder, losses)
    hooks.vae = vae
    hooks.install()
    return m, engine


# ---------------------------------------------------------------- a KSampler twin
def sample_like_ksampler(model, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str,
                         positive, negative, latent: dict, denoise: float, noise: torch.Tensor | None = None,
                         sigmas: torch.Tensor | None = None) -> dict:
    """Exactly what the core KSampler node does, on whatever (patched) model it is given.

    ``noise``: a noise tensor to start from instead of the seed's (e.g. an inverted latent's);
    ``sigmas``: a schedule to follow instead of the one steps/scheduler/denoise give (an inversion's).
    """
    import latent_preview

    latent_image = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    if noise is None:
        noise = comfy.sample.prepare_noise(latent_image, seed, latent.get("batch_index"))
    callback = latent_preview.prepare_callback(model, steps)
    samples = comfy.sample.sample(
        model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
        denoise=denoise, noise_mask=latent.get("noise_mask"), callback=callback, sigmas=sigmas,
        disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed,
    )
    out = latent.copy()
    out["samples"] = samples
    return out


def noise_for(noise, latent: dict) -> torch.Tensor:
    """The tensor a NOISE object (SamplerCustomAdvanced's noise socket) gives for this latent."""
    latent_image = latent["samples"]
    out = noise.generate_noise({**latent, "samples": latent_image})
    if tuple(out.shape) != tuple(latent_image.shape):
        raise ValueError(f"noise: its shape {tuple(out.shape)} does not match the latent's {tuple(latent_image.shape)}; "
                         "invert the same latent you sample from")
    return out


def make_guider(model, positive, negative, cfg: float):
    """A core CFGGuider over the (patched) model: a GUIDER for SamplerCustomAdvanced."""
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    return guider


def sampler_names() -> list[str]:
    """The sampler names the core KSampler offers."""
    return list(comfy.samplers.KSampler.SAMPLERS)


def scheduler_names() -> list[str]:
    """The scheduler names the core KSampler offers."""
    return list(comfy.samplers.KSampler.SCHEDULERS)


__all__ = [
    "GuidanceHooks", "check_vae_matches", "decoder_for", "install_guidance",
    "make_guider", "noise_for", "sample_like_ksampler", "sampler_names", "scheduler_names", "wrap_in_patcher",
]
