"""Stand-in ComfyUI nodes for the newer DiT families (tests only; not part of the node pack).

ComfyUI's detection (``comfy.model_detection.detect_unet_config``) recognises Z-Image, Lumina 2,
Chroma, Flux.2, HiDream and OmniGen2 files by their key names, but then forces real-size widths
(Z-Image 3840 with four refiner blocks, Flux.2 6144, OmniGen2 2520 x 32 layers, HiDream 16 + 32
blocks with mixture-of-experts: 0.7B to 17B parameters), which a CPU test cannot afford. :class:`SGTestDiTLoader` therefore loads a tiny file as
``UNETLoader`` does (ComfyUI's ``load_diffusion_model_state_dict`` steps), with one difference: the
sizes stored in the file's metadata replace the sizes detection assumes. Detection still runs on the
file's keys and must name the family; everything else it returns (including fields a newer ComfyUI
adds, e.g. 0.8.0's ``txt_ids_dims``) is kept, and only arguments the installed model class accepts
are passed (inspected at run time). Self-contained, as ``standin_nodes.py``: ComfyUI loads it as a
module of its own; the stand-in builders import :func:`dit_config` from here so both build alike.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import logging

import torch

META_CLASS = "sg_model_config"  # the comfy.supported_models class
META_CONFIG = "sg_unet_config"  # the sizes that replace detection's
META_LDM = "sg_ldm_class"  # the diffusion model class, "module.Class", for the accepted arguments


def accepted_arguments(ldm_class: str) -> set[str] | None:
    """The keyword arguments ``ldm_class`` accepts (its signature; for ``**kwargs``, its ``*Params`` dataclass)."""
    module_name, _, name = ldm_class.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, name)
    except (ImportError, AttributeError):
        return None  # moved in this ComfyUI: pass everything, let the class say what it lacks
    params = inspect.signature(cls.__init__).parameters
    names = {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)} - {"self"}
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        for obj in vars(module).values():
            if dataclasses.is_dataclass(obj) and isinstance(obj, type) and obj.__name__.endswith("Params"):
                names |= {f.name for f in dataclasses.fields(obj)}
    return names


def dit_config(state_dict: dict, tiny: dict, ldm_class: str) -> dict:
    """Detection's config for ``state_dict``, with ``tiny``'s sizes, filtered to what the class accepts."""
    import comfy.model_detection

    detected = comfy.model_detection.detect_unet_config(state_dict, "")
    if detected is None or detected.get("image_model") != tiny.get("image_model"):
        raise ValueError(f"ComfyUI's detection does not recognise this file as {tiny.get('image_model')!r} "
                         f"(it found {None if detected is None else detected.get('image_model')!r})")
    config = {**detected, **tiny}
    accepted = accepted_arguments(ldm_class)
    if accepted is not None:
        dropped = sorted(k for k in config if k not in accepted)
        if dropped:
            logging.info("SGTestDiTLoader: %s does not take %s; left out", ldm_class, ", ".join(dropped))
        config = {k: v for k, v in config.items() if k in accepted}
    return config


def model_config_for(class_name: str, config: dict):
    """``comfy.supported_models.<class_name>`` for ``config`` (lists in JSON become the lists ComfyUI expects)."""
    import comfy.supported_models

    return getattr(comfy.supported_models, class_name)(dict(config))


class SGTestDiTLoader:
    """A tiny DiT file from models/diffusion_models, loaded as UNETLoader does, at the file's own sizes."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"unet_name": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "run"
    CATEGORY = "_for_testing/style_guidance"

    def run(self, unet_name):
        import comfy.model_management as mm
        import comfy.model_patcher
        import comfy.utils
        import folder_paths

        path = folder_paths.get_full_path_or_raise("diffusion_models", unet_name)
        sd, metadata = comfy.utils.load_torch_file(path, safe_load=True, return_metadata=True)
        metadata = metadata or {}
        if META_CLASS not in metadata:
            raise ValueError(f"unet_name: {unet_name} has no {META_CLASS} metadata; load it with UNETLoader")
        config = dit_config(sd, json.loads(metadata[META_CONFIG]), metadata[META_LDM])
        model_config = model_config_for(metadata[META_CLASS], config)
        # As comfy.sd.load_diffusion_model_state_dict: dtype and manual cast from model_management.
        load_device = mm.get_torch_device()
        unet_dtype = mm.unet_dtype(model_params=comfy.utils.calculate_parameters(sd),
                                   supported_dtypes=list(model_config.supported_inference_dtypes),
                                   weight_dtype=comfy.utils.weight_dtype(sd))
        manual_cast = mm.unet_manual_cast(unet_dtype, load_device, model_config.supported_inference_dtypes)
        model_config.set_inference_dtype(unet_dtype, manual_cast)
        model = model_config.get_model(sd, "").to(mm.unet_offload_device())
        model.load_model_weights(sd, "")
        return (comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=mm.unet_offload_device()),)


class SGTestConditioningExtra:
    """Adds a seeded random tensor ``(1, *shape)`` under ``key`` to every conditioning entry (``ones:<shape>``:
    ones; an empty shape: None).

    For conditioning a text encoder would give beyond the context: HiDream's ``conditioning_llama3``
    (Llama 3.1's hidden states of every layer, stacked); Flux.2's ``pooled_output`` (None: it has none);
    OmniGen2's ``attention_mask`` (its token count comes from it).
    """

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning": ("CONDITIONING",), "key": ("STRING", {"default": "conditioning_llama3"}),
                             "shape": ("STRING", {"default": "2,16,64"}),
                             "seed": ("INT", {"default": 0, "min": 0, "max": 2**31})}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "run"
    CATEGORY = "_for_testing/style_guidance"

    def run(self, conditioning, key, shape, seed):
        if not shape.strip():  # the key with no value, e.g. Flux.2's text encoder: pooled_output None
            return ([[c, {**extra, key: None}] for c, extra in conditioning],)
        ones = shape.startswith("ones:")  # e.g. an attention mask that keeps every token
        dims = tuple(int(s) for s in shape.removeprefix("ones:").split(","))
        gen = torch.Generator().manual_seed(seed)
        value = torch.ones((1, *dims), dtype=torch.long) if ones else torch.randn((1, *dims), generator=gen)
        return ([[c, {**extra, key: value}] for c, extra in conditioning],)


class SGTestHunyuanImageVAE:
    """A narrow HunyuanImage 2.1 VAE from models/vae, in ComfyUI's own VAE class.

    VAELoader detects the file (``decoder.conv_in`` reads 64 channels) and builds the full-width
    autoencoder (~405M parameters, widths fixed in ``comfy.sd.VAE``). This node builds the same
    ``AutoencodingEngine`` of ``comfy.ldm.hunyuan_video.vae`` at the widths the file's weights have, and
    gives it ComfyUI's VAE object with the settings ``comfy.sd.VAE`` gives that family (64 channels,
    32x down/upscale, its memory estimates): VAEEncode/VAEDecode and guidance see what a real file gives.
    """

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae_name": ("STRING", {"default": "sg_tiny_hunyuan_image_vae.safetensors"})}}

    RETURN_TYPES = ("VAE",)
    FUNCTION = "run"
    CATEGORY = "_for_testing/style_guidance"

    @staticmethod
    def ddconfig(sd: dict) -> dict:
        """The config of ``comfy.sd.VAE``'s HunyuanImage 2.1 branch, at the widths of ``sd``'s weights."""
        widths, i = [], 0
        while f"encoder.down.{i}.block.0.conv2.weight" in sd:
            widths.append(int(sd[f"encoder.down.{i}.block.0.conv2.weight"].shape[0]))
            i += 1
        blocks = len({k.split(".")[4] for k in sd if k.startswith("encoder.down.0.block.")})
        return {"block_out_channels": widths, "in_channels": 3, "out_channels": 3, "num_res_blocks": blocks,
                "ffactor_spatial": 32, "downsample_match_channel": True, "upsample_match_channel": True,
                "z_channels": int(sd["decoder.conv_in.weight"].shape[1])}

    def run(self, vae_name):
        import comfy.model_management as mm
        import comfy.model_patcher
        import comfy.sd
        import comfy.utils
        import folder_paths
        from comfy.ldm.models.autoencoder import AutoencoderKL, AutoencodingEngine

        sd = comfy.utils.load_torch_file(folder_paths.get_full_path_or_raise("vae", vae_name), safe_load=True)
        if sd.get("decoder.conv_in.weight") is None or sd["decoder.conv_in.weight"].shape[1] != 64:
            raise ValueError(f"vae_name: {vae_name} is not a HunyuanImage 2.1 VAE (64 latent channels)")
        ddconfig = self.ddconfig(sd)
        # ComfyUI's VAE object (its defaults, as this ComfyUI sets them), first on a one-level placeholder ...
        placeholder = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3,
                       "ch": 32, "ch_mult": [1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
        params = {"ddconfig": placeholder, "embed_dim": 4}
        vae = comfy.sd.VAE(sd=AutoencoderKL(**params).state_dict(), config={"params": params})
        # ... then with the autoencoder and settings comfy.sd.VAE gives a HunyuanImage 2.1 file.
        model = AutoencodingEngine(
            regularizer_config={"target": "comfy.ldm.models.autoencoder.DiagonalGaussianRegularizer"},
            encoder_config={"target": "comfy.ldm.hunyuan_video.vae.Encoder", "params": ddconfig},
            decoder_config={"target": "comfy.ldm.hunyuan_video.vae.Decoder", "params": ddconfig}).eval()
        missing, _ = model.load_state_dict(sd, strict=False)
        if missing:
            raise ValueError(f"vae_name: {vae_name} lacks {missing[:3]}")
        vae.latent_channels = ddconfig["z_channels"]
        vae.downscale_ratio = vae.upscale_ratio = 32
        vae.working_dtypes = [torch.float16, torch.bfloat16, torch.float32]
        vae.memory_used_encode = lambda shape, dtype: (700 * shape[2] * shape[3]) * mm.dtype_size(dtype)
        vae.memory_used_decode = lambda shape, dtype: (700 * shape[2] * shape[3] * 32 * 32) * mm.dtype_size(dtype)
        vae.vae_dtype = mm.vae_dtype(vae.device, vae.working_dtypes)
        vae.first_stage_model = model.to(vae.vae_dtype)
        vae.patcher = comfy.model_patcher.ModelPatcher(model, load_device=vae.device,
                                                       offload_device=mm.vae_offload_device())
        vae.size = None
        vae.model_size()
        return (vae,)


NODE_CLASS_MAPPINGS = {"SGTestDiTLoader": SGTestDiTLoader, "SGTestConditioningExtra": SGTestConditioningExtra,
                       "SGTestHunyuanImageVAE": SGTestHunyuanImageVAE}
