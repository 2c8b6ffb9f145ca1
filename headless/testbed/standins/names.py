"""The model file names: which files a prompt names, the real file names shipped workflows use, and
which stand-in takes each one's place. Plain data and string functions (no torch, no ComfyUI):
``scripts/workflows.py``, the runner and the tests read them from here.
"""

from __future__ import annotations

import os
from pathlib import Path

# (class_type, input name) -> ComfyUI model folder, for the loaders a shipped workflow may use.
MODEL_INPUTS: dict[tuple[str, str], str] = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("CheckpointLoader", "ckpt_name"): "checkpoints",
    ("ImageOnlyCheckpointLoader", "ckpt_name"): "checkpoints",
    ("VAELoader", "vae_name"): "vae",
    ("LoraLoader", "lora_name"): "loras",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("ControlNetLoader", "control_net_name"): "controlnet",
    ("DiffControlNetLoader", "control_net_name"): "controlnet",
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name1"): "text_encoders",
    ("TripleCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name3"): "text_encoders",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("StyleGuidanceVGGLoader", "vgg_name"): "vgg",
    ("StyleGuidanceOpenCLIPLoader", "clip_name"): "open_clip",
    # The test loaders tiny mode puts in place of UNETLoader / VAELoader (tiny_dit): same file, same folder.
    ("SGTestDiTLoader", "unet_name"): "diffusion_models",
    ("SGTestKLVAE", "vae_name"): "vae",
}
# VAELoader names that are not files in models/vae but TAESD pairs in models/vae_approx.
TAESD_NAMES = ("taesd", "taesdxl", "taesd3", "taef1", "pixel_space")
# VAELoader file names (without extension) that ComfyUI reads from models/vae_approx: the video
# tiny autoencoders it lists beside the VAEs (nodes.VAELoader.video_taes, 0.3.75 and 0.8.0).
VIDEO_TAE_NAMES = ("taehv", "lighttaew2_2", "lighttaew2_1", "lighttaehy1_5")

# The tests' own model files (built by suite_models.build_all).
TINY_CKPT = "sg_tiny_sd15.safetensors"
TINY_KL_VAE = "sg_tiny_kl_vae.safetensors"

# Real file names (as ComfyUI's examples and the model pages call them) that have their own stand-in.
SD35_CKPT = "sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors"
FLUX_UNET = "flux1-dev.safetensors"
FLUX_VAE = "ae.safetensors"
CLIP_L = "clip_l.safetensors"
T5XXL = "t5xxl_fp16.safetensors"
SD15_CANNY = "control_v11p_sd15_canny_fp16.safetensors"
# Qwen-Image as ComfyUI's own template (image_qwen_image.json) names its files (Comfy-Org/Qwen-Image_ComfyUI).
QWEN_IMAGE_UNET = "qwen_image_fp8_e4m3fn.safetensors"
QWEN_IMAGE_TEXT_ENCODER = "qwen_2.5_vl_7b_fp8_scaled.safetensors"
QWEN_IMAGE_VAE = "qwen_image_vae.safetensors"
LIGHTTAEW2_1 = "lighttaew2_1.safetensors"
# Z-Image Turbo as ComfyUI's own template (image_z_image_turbo.json) names its files (Comfy-Org/z_image_turbo);
# its VAE is Flux's ae.safetensors (FLUX_VAE).
Z_IMAGE_UNET = "z_image_turbo_bf16.safetensors"
Z_IMAGE_TEXT_ENCODER = "qwen_3_4b.safetensors"
# Flux.2 dev as ComfyUI's own templates (image_flux2.json, image_flux2_text_to_image.json) name its files
# (Comfy-Org/flux2-dev).
FLUX2_UNET = "flux2_dev_fp8mixed.safetensors"
FLUX2_TEXT_ENCODER = "mistral_3_small_flux2_bf16.safetensors"
FLUX2_VAE = "flux2-vae.safetensors"
# Wan 2.1 T2V 1.3B as ComfyUI's own template (text_to_video_wan.json) names its files
# (Comfy-Org/Wan_2.1_ComfyUI_repackaged).
WAN21_UNET = "wan2.1_t2v_1.3B_fp16.safetensors"
WAN21_TEXT_ENCODER = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
WAN21_VAE = "wan_2.1_vae.safetensors"

# (folder, real file name) -> the stand-in written under that name (a key of install.STANDINS).
STANDIN_FOR: dict[tuple[str, str], str] = {
    ("checkpoints", SD35_CKPT): "sd3_complete",
    ("diffusion_models", FLUX_UNET): "flux",
    ("vae", FLUX_VAE): "flux_vae",
    ("text_encoders", CLIP_L): "clip_l",
    ("text_encoders", T5XXL): "t5xxl_placeholder",
    ("controlnet", SD15_CANNY): "sd15_controlnet",
    ("diffusion_models", QWEN_IMAGE_UNET): "qwen_image",
    ("vae", QWEN_IMAGE_VAE): "wan21_vae",
    ("vae_approx", LIGHTTAEW2_1): "lighttaew2_1",
    ("diffusion_models", Z_IMAGE_UNET): "z_image",
    ("diffusion_models", FLUX2_UNET): "flux2",
    ("vae", FLUX2_VAE): "flux2_vae",
    ("diffusion_models", WAN21_UNET): "wan21",
    ("vae", WAN21_VAE): "wan21_vae",  # the same causal 3-D VAE as Qwen-Image's
}
# Diffusion-model files whose stand-in is a tiny DiT (standins.dit): UNETLoader would build it at the
# width detection forces, so tiny mode loads it with SGTestDiTLoader (tiny_dit). File -> family key.
DIT_UNETS: dict[str, str] = {Z_IMAGE_UNET: "z_image", FLUX2_UNET: "flux2"}
# VAE files whose stand-in is a narrow KL VAE VAELoader cannot build (its config is fixed at full width):
# tiny mode loads them with SGTestKLVAE and these inputs (tiny_dit). File -> (z_channels, batch_norm_latent).
NARROW_VAES: dict[str, tuple[int, bool]] = {FLUX2_VAE: (32, True)}
# Any other file name in these folders -> this stand-in (a VGG named like torchvision's .pth: "vgg19_pth").
STANDIN_FOR_FOLDER: dict[str, str] = {
    "checkpoints": "sd15_complete",
    "vae": "sd15_taesd_vae",
    "loras": "empty_lora",
    "vgg": "vgg19",
    "open_clip": "open_clip",
}


def model_files(api_prompt: dict) -> list[tuple[str, str, str, str]]:
    """Every model file a prompt names: (node id, input name, file name, folder).

    A VAELoader name that is a video tiny autoencoder (``lighttaew2_1.safetensors``) is in
    ``vae_approx``, where ComfyUI reads it.
    """
    found = []
    for node_id, node in api_prompt.items():
        for (cls, name), folder in MODEL_INPUTS.items():
            value = node.get("inputs", {}).get(name)
            if node.get("class_type") == cls and isinstance(value, str):
                if cls == "VAELoader" and os.path.splitext(value)[0] in VIDEO_TAE_NAMES:
                    folder = "vae_approx"
                found.append((str(node_id), name, value, folder))
    return found


def unsafe_model_name(name: str) -> bool:
    """Whether a model file name could point outside its folder (absolute, drive, '..', NUL)."""
    parts = name.replace("\\", "/").split("/")
    return (not name or "\0" in name or name.startswith(("/", "\\")) or Path(name).is_absolute()
            or (len(name) > 1 and name[1] == ":") or ".." in parts)
