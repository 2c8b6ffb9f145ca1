"""Which family a MODEL and a VAE belong to, told from their latent format; mismatches refused by name.

Reads attributes of ComfyUI's objects only (``model.model.model_config``, ``latent_format``,
the VAE's ``latent_channels`` and a TAESD's ``vae_scale``/``vae_shift``); imports nothing
from ComfyUI, so the rules are testable on their own. Used by :mod:`sampler.comfy_adapter`.
"""

from __future__ import annotations

from dataclasses import dataclass

# ComfyUI latent format class -> (family, the decoders that fit it).
LATENT_FAMILIES: dict[str, tuple[str, str]] = {
    "SD15": ("SD1.x/SD2.x", "taesd or an SD1.x/SD2.x VAE"),
    "SDXL": ("SDXL", "taesdxl or the SDXL VAE"),
    "SDXL_Playground_2_5": ("Playground 2.5", "the SDXL VAE"),
    "SD3": ("SD3", "taesd3 or the SD3 VAE"),
    "Flux": ("Flux.1", "taef1 or the Flux VAE (ae.safetensors)"),
    "Flux2": ("Flux.2", "the Flux.2 VAE"),
}
CHANNELS = {"SD15": 4, "SDXL": 4, "SD3": 16, "Flux": 16}
# (vae_scale, vae_shift) that ComfyUI's VAELoader gives each TAESD -> (its name, latent format).
TAESD_BY_SCALE: dict[tuple[float, float], tuple[str, str]] = {
    (0.18215, 0.0): ("taesd", "SD15"),
    (0.13025, 0.0): ("taesdxl", "SDXL"),
    (1.5305, 0.0609): ("taesd3", "SD3"),
    (0.3611, 0.1159): ("taef1", "Flux"),
}


@dataclass(frozen=True)
class ModelFamily:
    """What a MODEL is, in words a user recognises."""

    name: str  # ComfyUI's model class (SD15, SD20, SDXL, SD3, Flux, ...)
    latent_format: str
    channels: int | None
    dimensions: int  # 2 for images, 3 for video, 1 for audio

    def describe(self) -> str:
        family = LATENT_FAMILIES.get(self.latent_format, (self.latent_format, ""))[0]
        ch = f", {self.channels} channels" if self.channels is not None else ""
        return f"{self.name} ({family} latents{ch})"


def model_family(model) -> ModelFamily:
    """The family of a ComfyUI MODEL (a ModelPatcher)."""
    base = model.model
    fmt = base.latent_format
    config = getattr(base, "model_config", None)
    name = type(config).__name__ if config is not None else type(base).__name__
    return ModelFamily(name, type(fmt).__name__, getattr(fmt, "latent_channels", None),
                       int(getattr(fmt, "latent_dimensions", 2)))


def _taesd_of(vae) -> tuple[str, str] | None:
    """(name, latent format) when the VAE is a TAESD whose scale/shift VAELoader gives a known family."""
    fsm = getattr(vae, "first_stage_model", None)
    if fsm is None or not hasattr(fsm, "taesd_decoder"):
        return None
    try:
        scale, shift = float(fsm.vae_scale), float(fsm.vae_shift)
    except (AttributeError, TypeError, ValueError):
        return None
    for (s, t), found in TAESD_BY_SCALE.items():
        if abs(scale - s) < 1e-4 and abs(shift - t) < 1e-4:
            return found
    return None


def describe_vae(vae) -> str:
    """E.g. 'taesd3 (SD3 latents, 16 channels)' or 'a VAE with 4 latent channels (SD1.x/SD2.x or SDXL)'."""
    channels = getattr(vae, "latent_channels", None)
    taesd = _taesd_of(vae)
    if taesd is not None:
        return f"{taesd[0]} ({LATENT_FAMILIES[taesd[1]][0]} latents, {channels} channels)"
    fits = [LATENT_FAMILIES[fmt][0] for fmt, ch in CHANNELS.items() if ch == channels]
    return f"a VAE with {channels} latent channels" + (f" ({' or '.join(fits)})" if fits else "")


# Latent formats with image-shaped (2-D) latents that do not decode to pictures.
NOT_IMAGES = {"ACEAudio": "audio"}


def check_model(model) -> None:
    """Refuse, before sampling, a model whose latents do not decode to one picture per sample.

    Video-shaped latents (B, C, T, H, W: WAN, HunyuanVideo, LTXV, Mochi, Cosmos, also QwenImage's),
    1-D ones (audio, 3-D meshes) and audio in 2-D are named and refused; the loss networks score images.
    """
    fam = model_family(model)
    kind = NOT_IMAGES.get(fam.latent_format)
    if fam.dimensions == 3:
        kind = "video-shaped (batch, channels, frames, height, width)"
    elif fam.dimensions != 2:
        kind = f"{fam.dimensions}-D (audio or 3-D shape)"
    if kind:
        raise ValueError(
            f"model: {fam.name} makes {kind} latents ({fam.latent_format} format); Style Guidance steers models whose "
            "latents decode to pictures (SD1.x, SD2.x, SDXL, SD3, Flux and others with 2-D image latents). "
            "Connect an image model.")


def check_vae_matches(model, vae) -> None:
    """Clear error naming both families when the VAE cannot decode the model's latents faithfully.

    Channel counts must agree; a TAESD must also be the one of the model's latent format (taesd3 and
    taef1 both have 16 channels but scale latents differently).
    """
    fam = model_family(model)
    vae_ch = getattr(vae, "latent_channels", None)
    taesd = _taesd_of(vae)
    wrong_channels = fam.channels is not None and vae_ch is not None and fam.channels != vae_ch
    wrong_taesd = taesd is not None and fam.latent_format in LATENT_FAMILIES and taesd[1] != fam.latent_format
    if wrong_channels or wrong_taesd:
        fits = LATENT_FAMILIES.get(fam.latent_format, ("", "the VAE of the model's family"))[1]
        raise ValueError(
            f"vae: {describe_vae(vae)} does not match the model, {fam.describe()}. "
            f"Connect the decoder of the model's family: {fits}.")
