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
    "Wan21": ("Wan 2.1", "lighttaew2_1 or the Wan 2.1 VAE (Qwen-Image's VAE)"),
    "HunyuanImage21": ("HunyuanImage 2.1", "the HunyuanImage 2.1 VAE"),
}
CHANNELS = {"SD15": 4, "SDXL": 4, "SD3": 16, "Flux": 16, "Flux2": 128, "Wan21": 16, "HunyuanImage21": 64}
# Image models ComfyUI names by class whose latents are another family's (names a user recognises).
MODEL_LABELS = {"ZImage": "Z-Image", "Lumina2": "Lumina 2", "Chroma": "Chroma", "HiDream": "HiDream",
                "Omnigen2": "OmniGen2", "Flux2": "Flux.2", "HunyuanImage21": "HunyuanImage 2.1"}
# Models whose 5-D latents (batch, channels, frames, height, width) hold pictures: one frame each.
IMAGE_MODELS_WITH_FRAMES = {"QwenImage": "Qwen-Image"}
# Video latent formats guided frame by frame (first step of video: Wan 2.1's format, T2V models).
VIDEO_FORMATS = {"Wan21": "Wan 2.1"}
# Video models ComfyUI names by class -> a name a user recognises.
VIDEO_LABELS = {"WAN21_T2V": "Wan 2.1 T2V", "WAN21_I2V": "Wan 2.1 I2V", "WAN21_Vace": "Wan 2.1 VACE"}
# comfy.taesd.taehv.TAEHV by its latent channels and ComfyUI's latent format for it -> (name, latent format).
TAEHV_KINDS: dict[tuple[int, str | None], tuple[str, str]] = {
    (16, None): ("lighttaew2_1", "Wan21"),
    (16, "HunyuanVideo"): ("taehv", "HunyuanVideo"),
    (48, None): ("lighttaew2_2", "Wan22"),
    (32, "HunyuanVideo15"): ("lighttaehy1_5", "HunyuanVideo15"),
}
# Full VAEs told apart by their class (module, class name) -> (name, latent format).
VAE_CLASSES: dict[tuple[str, str], tuple[str, str]] = {
    ("comfy.ldm.wan.vae", "WanVAE"): ("the Wan 2.1 VAE", "Wan21"),
    ("comfy.ldm.wan.vae2_2", "WanVAE"): ("the Wan 2.2 VAE", "Wan22"),
}
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
        label = MODEL_LABELS.get(self.name)
        return f"{self.name} ({label + '; ' if label and label != family else ''}{family} latents{ch})"


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


def _known_vae(vae) -> tuple[str, str] | None:
    """(name, latent format) of a decoder told by its kind: a TAESD, a video tiny autoencoder, a Wan VAE."""
    found = _taesd_of(vae)
    if found is not None:
        return found
    fsm = getattr(vae, "first_stage_model", None)
    if fsm is None:
        return None
    cls = type(fsm)
    if cls.__name__ == "AutoencoderKL" and getattr(fsm, "bn", None) is not None:  # latents packed 2x2, batch-norm
        return ("the Flux.2 VAE", "Flux2")
    if cls.__name__ == "TAEHV":  # VAELoader's video tiny autoencoders (taehv, lighttaew2_1, ...)
        fmt = getattr(fsm, "latent_format", None)
        key = (getattr(fsm, "latent_channels", None), fmt.__name__ if fmt is not None else None)
        return TAEHV_KINDS.get(key, (f"a video tiny autoencoder ({key[0]} channels)", "unknown video"))  # type: ignore[arg-type]
    return VAE_CLASSES.get((cls.__module__, cls.__name__))


def describe_vae(vae) -> str:
    """E.g. 'taesd3 (SD3 latents, 16 channels)' or 'a VAE with 4 latent channels (SD1.x/SD2.x or SDXL)'."""
    channels = getattr(vae, "latent_channels", None)
    known = _known_vae(vae)
    if known is not None:
        return f"{known[0]} ({LATENT_FAMILIES.get(known[1], (known[1],))[0]} latents, {channels} channels)"
    fits = [LATENT_FAMILIES[fmt][0] for fmt, ch in CHANNELS.items()
            if ch == channels and _dims(fmt) == int(getattr(vae, "latent_dim", 2))]
    return f"a VAE with {channels} latent channels" + (f" ({' or '.join(fits)})" if fits else "")


def _dims(latent_format: str) -> int:
    """Spatial dimensions of a latent format's latents (3: batch, channels, frames, height, width)."""
    return 3 if latent_format in ("Wan21", "Wan22", "HunyuanVideo", "HunyuanVideo15") else 2


# Latent formats with image-shaped (2-D) latents that do not decode to pictures.
NOT_IMAGES = {"ACEAudio": "audio"}


def is_video_model(model) -> bool:
    """Whether the MODEL makes video latents that guidance decodes frame by frame (Wan 2.1's format)."""
    fam = model_family(model)
    return fam.dimensions == 3 and fam.name not in IMAGE_MODELS_WITH_FRAMES and fam.latent_format in VIDEO_FORMATS


def check_model(model) -> None:
    """Refuse, before sampling, a model whose latents do not decode to pictures guidance can score.

    Image models pass, and so do video models in Wan 2.1's format (frames decoded and scored one by
    one). Other video models (B, C, T, H, W latents: Wan 2.2 5B, HunyuanVideo, LTXV, Mochi, Cosmos),
    1-D latents (audio, 3-D meshes) and audio in 2-D are named and refused. Image models with
    one-frame 5-D latents (Qwen-Image, in Wan 2.1's format) pass; their latents are checked by
    :func:`check_latent`.
    """
    fam = model_family(model)
    kind = NOT_IMAGES.get(fam.latent_format)
    if fam.dimensions == 3 and fam.name not in IMAGE_MODELS_WITH_FRAMES and fam.latent_format not in VIDEO_FORMATS:
        kind = "video-shaped (batch, channels, frames, height, width)"
    elif fam.dimensions not in (2, 3):
        kind = f"{fam.dimensions}-D (audio or 3-D shape)"
    if kind:
        video = (" Of the video models, only those with Wan 2.1 latents (Wan 2.1 T2V) are guided yet."
                 if fam.dimensions == 3 else "")
        raise ValueError(
            f"model: {fam.name} makes {kind} latents ({fam.latent_format} format); Style Guidance steers models whose "
            "latents decode to pictures (SD1.x, SD2.x, SDXL, SD3, Flux, Qwen-Image and others)."
            f"{video} Connect an image model or Wan 2.1.")


def check_latent(model, latent) -> None:
    """Refuse, before sampling, a video latent (more than one frame) for an image model with 5-D latents.

    Video models (:func:`is_video_model`) take any number of frames.
    """
    fam = model_family(model)
    if fam.dimensions != 3 or getattr(latent, "ndim", 0) != 5 or int(latent.shape[2]) == 1 or is_video_model(model):
        return
    label = IMAGE_MODELS_WITH_FRAMES.get(fam.name, fam.name)
    raise ValueError(
        f"latent_image: a video latent of {int(latent.shape[2])} frames {tuple(latent.shape)} for {label} "
        f"({fam.name}), an image model that makes one picture per sample. "
        "Use an image latent (one frame, e.g. EmptySD3LatentImage or VAE Encode of a picture), "
        "or a video model (Wan 2.1) for video.")


def decoded_frames(vae, latent_frames: int) -> int:
    """How many frames the VAE decodes ``latent_frames`` latent frames to (its own temporal stride).

    ComfyUI's video VAEs carry ``upscale_ratio`` = (frames rule, h, w), e.g. 1 + 4 (T - 1) for Wan 2.1's
    VAE and lighttaew2_1; a VAE without a rule keeps the count.
    """
    ratio = getattr(vae, "upscale_ratio", None)
    rule = ratio[0] if isinstance(ratio, (tuple, list)) and ratio and callable(ratio[0]) else None
    return int(rule(latent_frames)) if rule is not None else int(latent_frames)


def check_vae_matches(model, vae) -> None:
    """Clear error naming both families when the VAE cannot decode the model's latents faithfully.

    Channel counts and latent dimensions (2-D images or 5-D frames) must agree; a decoder whose
    kind is known (a TAESD, a video tiny autoencoder, a Wan VAE) must also be the one of the
    model's latent format: taesd3, taef1 and Wan 2.1's decoders all have 16 channels.
    """
    fam = model_family(model)
    vae_ch = getattr(vae, "latent_channels", None)
    known = _known_vae(vae)
    wrong_channels = fam.channels is not None and vae_ch is not None and fam.channels != vae_ch
    wrong_kind = known is not None and fam.latent_format in LATENT_FAMILIES and known[1] != fam.latent_format
    wrong_dims = int(getattr(vae, "latent_dim", 2)) != fam.dimensions
    if wrong_channels or wrong_kind or wrong_dims:
        fits = LATENT_FAMILIES.get(fam.latent_format, ("", "the VAE of the model's family"))[1]
        raise ValueError(
            f"vae: {describe_vae(vae)} does not match the model, {fam.describe()}. "
            f"Connect the decoder of the model's family: {fits}.")
