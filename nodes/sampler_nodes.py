"""The three ways to run guidance: an all-in-one sampler, a GUIDER, and a MODEL patch."""

from __future__ import annotations

from ..sampler import comfy_adapter as adapter
from ..sampler.latent_checks import check_latent
from ._api import io, optional_schema_args
from ._common import CATEGORY, GuidanceLossType, check_settings, guidance_inputs, settings_from, validated

_VAE_TIP = ("Decoder used to turn predictions into pixels for the losses (any VAE; 'taesd'/'taesdxl' from the core "
            "VAE loader is ~6x cheaper per step). Must match the model family. Not used when every connected term "
            "reads the model's own features.")
_LOSSES_TIP = "The loss chain (content and style terms) to steer by."


def _common_inputs() -> list:
    return [io.Vae.Input("vae", tooltip=_VAE_TIP), GuidanceLossType.Input("losses", tooltip=_LOSSES_TIP)]


def _validated(cls: type) -> type:
    """Float/combo/window checks for a guidance node (ComfyUI checks the rest)."""
    return validated(ints=("recurrence", "loss_resolution"), check=check_settings)(cls)


@_validated
class StyleGuidanceSampler(io.ComfyNode):
    """KSampler with loss guidance: same inputs and results as the core KSampler at scale 0."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            **optional_schema_args(search_aliases=["style transfer", "neural style transfer", "guided sampling", "image guidance"]),
            node_id="StyleGuidanceSampler", display_name="Guided KSampler (Style Guidance)", category=f"{CATEGORY}/sampling",
            description=("A KSampler whose every step is steered by the gradient of the connected losses. Start from the "
                         "VAE-encoded content image with denoise < 1 to keep its layout."),
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model (LoRA, FreeU, ControlNet-conditioned ... all still apply)."),
                io.Conditioning.Input("positive", tooltip="Positive conditioning, as for KSampler."),
                io.Conditioning.Input("negative", tooltip="Negative conditioning, as for KSampler."),
                io.Latent.Input("latent_image", tooltip="Starting latent: usually the VAE-encoded content image."),
                *_common_inputs(),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Noise seed (also reseeds the losses' random cutouts/patches: runs repeat)."),
                io.Int.Input("steps", default=30, min=1, max=10000, tooltip="Sampling steps."),
                io.Float.Input("cfg", default=7.0, min=0.0, max=100.0, step=0.1, round=0.01, tooltip="Classifier-free guidance scale."),
                io.Combo.Input("sampler_name", options=adapter.sampler_names(), default="euler", tooltip="Sampler, as for KSampler."),
                io.Combo.Input("scheduler", options=adapter.scheduler_names(), default="normal", tooltip="Noise schedule, as for KSampler."),
                io.Float.Input("denoise", default=0.7, min=0.0, max=1.0, step=0.01,
                               tooltip="How much of the starting latent is re-noised; below 1 keeps the content's layout."),
                *guidance_inputs(),
                io.Noise.Input("noise", optional=True,
                               tooltip=("Start from this noise instead of the seed's, e.g. the noise output of "
                                        "'Invert Latent' so sampling starts from an inversion of the content "
                                        "(use the same steps, scheduler and denoise there). The seed still seeds the "
                                        "losses' random parts.")),
            ],
            outputs=[io.Latent.Output(tooltip="The guided result; decode with VAE Decode.")],
        )

    @classmethod
    def execute(cls, model, positive, negative, latent_image, vae, losses, seed, steps, cfg, sampler_name, scheduler,
                denoise, noise=None, **options) -> io.NodeOutput:
        check_latent(model, latent_image["samples"], "latent_image", "Guided KSampler")
        sigmas = None
        if getattr(noise, "inversion", None) is not None:  # from 'Invert Latent': its schedule and sampler checked
            from ..sampler.inversion import sigmas_for_sampler

            sigmas = sigmas_for_sampler(noise.inversion, model, steps, sampler_name, scheduler, denoise)
        patched, _ = adapter.install_guidance(model, vae, losses, settings_from(options))
        start = None if noise is None else adapter.noise_for(noise, latent_image)
        return io.NodeOutput(adapter.sample_like_ksampler(patched, seed, steps, cfg, sampler_name, scheduler,
                                                          positive, negative, latent_image, denoise, noise=start,
                                                          sigmas=sigmas))


@_validated
class StyleGuidanceGuider(io.ComfyNode):
    """The same guidance as a GUIDER for SamplerCustomAdvanced (any sampler, sigmas, noise)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StyleGuidanceGuider", display_name="Guided CFG Guider (Style Guidance)", category=f"{CATEGORY}/sampling",
            description="A CFG guider with loss guidance, for SamplerCustomAdvanced and the core custom-sampling nodes.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model."),
                io.Conditioning.Input("positive", tooltip="Positive conditioning."),
                io.Conditioning.Input("negative", tooltip="Negative conditioning."),
                io.Float.Input("cfg", default=7.0, min=0.0, max=100.0, step=0.1, round=0.01, tooltip="Classifier-free guidance scale."),
                *_common_inputs(),
                *guidance_inputs(),
            ],
            outputs=[io.Guider.Output(tooltip="Connect to SamplerCustomAdvanced's guider input.")],
        )

    @classmethod
    def execute(cls, model, positive, negative, cfg, vae, losses, **options) -> io.NodeOutput:
        patched, _ = adapter.install_guidance(model, vae, losses, settings_from(options))
        return io.NodeOutput(adapter.make_guider(patched, positive, negative, cfg))


@_validated
class StyleGuidanceApply(io.ComfyNode):
    """Patches a MODEL so the stock KSampler (and other samplers) apply loss guidance."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StyleGuidanceApply", display_name="Apply Guidance to Model (Style Guidance)", category=f"{CATEGORY}/sampling",
            description=("Adds loss guidance to a model clone through ComfyUI's sampling hooks, so KSampler, KSamplerAdvanced "
                         "and community samplers built on them are guided. Other model patches keep working."),
            inputs=[io.Model.Input("model", tooltip="The model to patch (the input model itself is not modified)."),
                    *_common_inputs(), *guidance_inputs()],
            outputs=[io.Model.Output(tooltip="The patched model; connect it to a sampler.")],
        )

    @classmethod
    def execute(cls, model, vae, losses, **options) -> io.NodeOutput:
        patched, _ = adapter.install_guidance(model, vae, losses, settings_from(options))
        return io.NodeOutput(patched)


NODES = [StyleGuidanceSampler, StyleGuidanceGuider, StyleGuidanceApply]
