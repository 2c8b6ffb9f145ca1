"""The harness itself: the pack loads through ComfyUI's loader; a smoke graph runs both ways."""

from __future__ import annotations

from pathlib import Path

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


def test_every_node_has_a_help_page_and_description(comfy_base):
    import nodes
    from headless.testbed.base import REPO_ROOT

    ours = {k: v for k, v in nodes.NODE_CLASS_MAPPINGS.items() if k.startswith("StyleGuidance")}
    assert len(ours) >= 12
    for node_id, cls in ours.items():
        assert (REPO_ROOT / "web" / "docs" / f"{node_id}.md").is_file(), f"no web/docs page for {node_id}"
        schema = cls.define_schema()
        assert schema.description, f"{node_id} has no description"
        assert all(i.tooltip for i in schema.inputs), f"{node_id} has an input without a tooltip"


BLOCK_OPEN_CLIP = '''
import sys, importlib.abc
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "open_clip" or name.startswith("open_clip."):
            raise ImportError("open_clip blocked by the test")
        return None
sys.meta_path.insert(0, _Block())
'''


def test_missing_open_clip_loses_only_its_node(comfy_root, comfy_base, tmp_path):
    """With open_clip unimportable, the other nodes still register and the log says why."""
    import subprocess
    import sys

    script = BLOCK_OPEN_CLIP + f'''
sys.path.append({str(Path(__file__).resolve().parents[1])!r})
from pathlib import Path
from headless.testbed import base as hc
hc.configure_comfy(Path({str(comfy_root)!r}), Path({str(comfy_base)!r}))
hc.init_nodes()
import nodes
print("REGISTERED", sorted(k for k in nodes.NODE_CLASS_MAPPINGS if k.startswith("StyleGuidance")))
'''
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    registered = next(line for line in proc.stdout.splitlines() if line.startswith("REGISTERED"))
    assert "StyleGuidanceOpenCLIPLoader" not in registered
    assert "StyleGuidanceSampler" in registered and "StyleGuidanceGramStyle" in registered
    assert "StyleGuidanceOpenCLIPLoader is unavailable" in out
