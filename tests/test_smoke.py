"""The harness itself: the pack loads through ComfyUI's loader; a smoke graph runs both ways."""

from __future__ import annotations

import numpy as np
from PIL import Image


def smoke_prompt(models: dict, prefix: str = "smoke") -> dict:
    """Load checkpoint, VAE-encode a picture with taesd, KSampler at denoise 0.6, decode, save."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": models["ckpt"]}},
        "2": {"class_type": "VAELoader", "inputs": {"vae_name": "taesd"}},
        "3": {"class_type": "SGTestImage", "inputs": {"width": 64, "height": 64, "seed": 1, "batch_size": 1}},
        "4": {"class_type": "VAEEncode", "inputs": {"pixels": ["3", 0], "vae": ["2", 0]}},
        "5": {"class_type": "SGTestConditioning", "inputs": {"text": "a painting", "seed": 0}},
        "6": {"class_type": "SGTestConditioning", "inputs": {"text": "", "seed": 0}},
        "7": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["5", 0], "negative": ["6", 0], "latent_image": ["4", 0],
            "seed": 42, "steps": 4, "cfg": 2.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 0.6}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["2", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": prefix}},
    }


def _saved_image(base, entry: dict) -> np.ndarray:
    img = entry["images"][0]
    path = base / "output" / img["subfolder"] / img["filename"]
    return np.asarray(Image.open(path))


def test_pack_loaded_by_comfy_loader(comfy_base, pack):
    import nodes

    assert "StyleGuidanceSampler" in nodes.NODE_CLASS_MAPPINGS
    assert pack.__file__.startswith(str(comfy_base / "custom_nodes"))


def test_smoke_graph_in_process(comfy, comfy_base, tiny_models):
    result = comfy.run(smoke_prompt(tiny_models, "smoke_inproc"))
    pixels = _saved_image(comfy_base, result.outputs["9"])
    assert pixels.shape == (64, 64, 3)
    assert pixels.std() > 0  # an actual picture came out, not a constant


def test_smoke_graph_on_server(comfy_server, comfy_base, tiny_models):
    entry = comfy_server.run(smoke_prompt(tiny_models, "smoke_server"))
    assert entry["status"]["status_str"] == "success"
    pixels = _saved_image(comfy_base, entry["outputs"]["9"])
    assert pixels.shape == (64, 64, 3)
