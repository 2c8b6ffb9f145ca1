"""Stand-ins under a shipped workflow's own model file names, and the input changes that make it run on them.

:func:`install_for_workflow` writes, for every model file a prompt names, the stand-in that
:mod:`.names` assigns to it (built once into the cache, then placed); :func:`tiny_overrides`
gives the input changes (sizes, steps, the tiny open_clip, text encoders that cannot shrink) and
:func:`tiny_prompt` the whole tiny prompt (those changes, and the text encoders :mod:`.tiny_text`
replaces by seeded conditioning). Used by the runner's tiny mode, the tests and the browser test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .common import cached, place
from .decoders import TAESD_PAIRS, build_taesd_pair, taesd_vae_state_dict
from .extras import CONTROLNET_FILE, build_controlnet, build_empty_lora
from .families import FAMILIES, build_diffusion_model
from .flux2 import VAE_FILE as FLUX2_VAE_FILE
from .flux2 import flux2_vae_state_dict
from .loss_nets import TINY_OPENCLIP, TINY_OPENCLIP_ARCH, build_open_clip, build_vgg, tiny_open_clip_config
from .names import STANDIN_FOR, STANDIN_FOR_FOLDER, TAESD_NAMES, model_files, unsafe_model_name
from .qwen_image import CACHE_PREFIX as QWEN_CACHE
from .qwen_image import FAMILY as QWEN_IMAGE
from .qwen_image import LIGHTTAE_FILE, WAN_VAE_FILE, build_lighttae, build_wan21_vae
from .qwen_image import build_diffusion_model as build_qwen_image_dit
from .text_encoders import build_clip_l, build_t5_placeholder, build_text_encoder_placeholder
from .tiny_dit import tiny_rewrite
from .tiny_text import fixed_text_encoder
from .wan21 import CACHE_PREFIX as WAN21_CACHE
from .wan21 import FAMILY as WAN21
from .wan21 import build_diffusion_model as build_wan21_dit


def build_family_vae(key: str, path: Path, seed: int = 90) -> None:
    """A file VAELoader reads as the family's full VAE (a calibrated TAESD with the family's scale and shift)."""
    fam = FAMILIES[key]
    save_file(taesd_vae_state_dict(fam.latent_channels, seed, fam.vae_scale, fam.vae_shift), str(path))


def _vgg_pth(path: Path) -> None:
    """The cached safetensors VGG in torch format (workflows name torchvision's .pth)."""
    torch.save(load_file(str(standin("vgg19"))), path)


# Stand-in key -> (its file name in the cache, its builder).
STANDINS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "sd15_complete": ("sd15_complete.safetensors", lambda p: build_diffusion_model("sd15", p, complete=True)),
    "sd15_taesd_vae": ("sg_tiny_taesd_vae.safetensors",
                       lambda p: save_file(taesd_vae_state_dict(4, 1, 0.18215, 0.0, calibrate=False), str(p))),
    "empty_lora": ("sg_empty_lora.safetensors", build_empty_lora),
    "vgg19": ("vgg19-random.safetensors", build_vgg),
    "vgg19_pth": ("vgg19-random.pth", _vgg_pth),
    "open_clip": (TINY_OPENCLIP, build_open_clip),
    "sd3_complete": ("sd3_complete.safetensors", lambda p: build_diffusion_model("sd3", p, complete=True)),
    "flux": ("flux.safetensors", lambda p: build_diffusion_model("flux", p)),
    "flux_vae": (FAMILIES["flux"].vae_file, lambda p: build_family_vae("flux", p)),
    "clip_l": ("clip_l.safetensors", build_clip_l),
    "t5xxl_placeholder": ("t5xxl_placeholder.safetensors", build_t5_placeholder),
    "sd15_controlnet": (CONTROLNET_FILE, build_controlnet),
    # Qwen-Image: the names standins.qwen_image.build_qwen_image caches them under (one copy each).
    "qwen_image": (f"{QWEN_CACHE}{QWEN_IMAGE.file}", build_qwen_image_dit),
    "wan21_vae": (f"{QWEN_CACHE}{WAN_VAE_FILE}", build_wan21_vae),
    "lighttaew2_1": (f"{QWEN_CACHE}{LIGHTTAE_FILE}", build_lighttae),
    # Tiny DiTs (SGTestDiTLoader reads them; tiny_dit swaps UNETLoader for it) and Flux.2's narrow VAE
    # (SGTestKLVAE), under the cache names families.diffusion_cached and suite_models use (one copy each).
    "z_image": ("z_image.safetensors", lambda p: build_diffusion_model("z_image", p)),
    "flux2": ("flux2.safetensors", lambda p: build_diffusion_model("flux2", p)),
    "flux2_vae": (FLUX2_VAE_FILE, lambda p: save_file(flux2_vae_state_dict(), str(p))),
    # Wan 2.1 T2V: UNETLoader builds it at the file's own width; the cache name standins.wan21 uses.
    "wan21": (f"{WAN21_CACHE}{WAN21.file}", build_wan21_dit),
    # Under the name of a text encoder tiny mode never loads (tiny_text): only for the loader's choice list.
    "text_encoder_placeholder": ("text_encoder_placeholder.safetensors", build_text_encoder_placeholder),
}


def standin(key: str) -> Path:
    """The stand-in ``key`` of :data:`STANDINS` in the cache (built once)."""
    return cached(*STANDINS[key])


def _standin_key(folder: str, name: str) -> str | None:
    key = STANDIN_FOR.get((folder, name)) or STANDIN_FOR_FOLDER.get(folder)
    if key == "vgg19" and not name.lower().endswith(".safetensors"):
        return "vgg19_pth"
    return key


def install_for_workflow(models_dir: Path, api_prompt: dict) -> list[str]:
    """Write tiny stand-ins under every model file name ``api_prompt`` expects; return them.

    Files that already exist are left alone. Nothing is written when a name could leave
    ``models_dir`` (``ValueError``), or when a stand-in's ``<name>.json`` config would replace a
    different file of that name (``FileExistsError``). Folders and names with no stand-in (other
    ControlNets, CLIP vision, the pixel-space VAE ...) raise ``NotImplementedError`` naming the file.
    A text encoder that cannot shrink (:mod:`.tiny_text`) gets a placeholder: tiny mode drops its
    loader, but the untouched workflow still validates (the loader's choice list offers the name).
    """
    files = model_files(api_prompt)
    bad = [name for _n, _i, name, _f in files if unsafe_model_name(name)]
    if bad:
        raise ValueError(f"model file name(s) outside the models folder: {', '.join(map(repr, bad))}")
    for _n, _i, name, folder in files:
        sidecar = Path(str(models_dir / folder / name) + ".json")
        if folder == "open_clip" and not (models_dir / folder / name).exists() and sidecar.exists() \
                and _json_or_none(sidecar) != tiny_open_clip_config():
            raise FileExistsError(f"{sidecar} exists and is not the tiny open_clip config; the stand-in for "
                                  f"{name} would replace it (move it away, or run with real weights)")
    written = []
    for node_id, _input, name, folder in files:
        if folder == "vae" and name in TAESD_NAMES:  # TAESD pairs go to vae_approx
            if name not in TAESD_PAIRS:
                raise NotImplementedError(f"no tiny stand-in for the '{name}' VAE (only {', '.join(TAESD_PAIRS)})")
            target_dir = models_dir / "vae_approx"
            if not (target_dir / f"{name}_decoder.safetensors").is_file():
                build_taesd_pair(target_dir, name)
                written.append(str(target_dir / f"{name}_decoder.safetensors"))
            continue
        fixed = folder == "text_encoders" and fixed_text_encoder(api_prompt.get(node_id)) is not None
        key = "text_encoder_placeholder" if fixed else _standin_key(folder, name)
        if key is None:
            raise NotImplementedError(f"no tiny stand-in for {folder}/{name}")
        target = models_dir / folder / name
        if target.exists():
            continue
        source = standin(key)
        sidecar = Path(str(source) + ".json")
        if sidecar.is_file() and not Path(str(target) + ".json").exists():  # first: weights never without config
            place(sidecar, Path(str(target) + ".json"))
        place(source, target)
        written.append(str(target))
    return written


def _json_or_none(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def family_overrides(api_prompt: dict) -> dict[str, dict]:
    """Input changes for tiny mode beyond size/steps: the text encoders that cannot be shrunk.

    SDXL checkpoints run as the SD1.5 stand-in, so their ``taesdxl`` guidance decoder becomes ``taesd``.
    DualCLIPLoader of type ``flux`` (CLIP-L + T5-XXL) becomes type ``sd3`` on CLIP-L twice:
    the same CONDITIONING shapes Flux reads ((1, 77, 4096) context; the pooled vector's first
    768 values), with no T5.
    """
    changes: dict[str, dict] = {}
    # A checkpoint with no stand-in of its own gets the SD1.5 one (an SDXL stand-in would need
    # SDXL's CLIP-G, 694M parameters ComfyUI builds from a fixed config): its TAESDXL decoder would
    # then be another family's, which guidance refuses, so it becomes TAESD.
    sd15_standin = any(node.get("class_type") in ("CheckpointLoaderSimple", "CheckpointLoader")
                       and ("checkpoints", node.get("inputs", {}).get("ckpt_name")) not in STANDIN_FOR
                       for node in api_prompt.values())
    for node_id, node in api_prompt.items():
        inputs = node.get("inputs", {})
        if sd15_standin and node.get("class_type") == "VAELoader" and inputs.get("vae_name") == "taesdxl":
            changes[str(node_id)] = {"vae_name": "taesd"}
        if node.get("class_type") == "DualCLIPLoader" and inputs.get("type") == "flux":
            clip_l = next((inputs[k] for k in ("clip_name1", "clip_name2")
                           if isinstance(inputs.get(k), str) and "clip_l" in inputs[k].lower()), None)
            if clip_l:
                changes[str(node_id)] = {"clip_name1": clip_l, "clip_name2": clip_l, "type": "sd3"}
    return changes


def tiny_prompt(api_prompt: dict, size: int = 128, steps: int = 4) -> dict:
    """The prompt tiny mode runs: :func:`.tiny_dit.tiny_rewrite` (text encoders that cannot shrink,
    loaders of full-size builds), then :func:`tiny_overrides` set.

    Needs the SGTest* stand-in nodes when something was replaced (``ValueError`` when a text
    encoder cannot be, see :func:`.tiny_text.replace_fixed_text_encoders`).
    """
    api, _replaced = tiny_rewrite(api_prompt)
    for node_id, changes in tiny_overrides(api, size, steps).items():
        inputs = api[node_id]["inputs"]
        inputs.update({k: v for k, v in changes.items() if not isinstance(inputs.get(k), list)})
    return api


def tiny_overrides(api_prompt: dict, size: int = 128, steps: int = 4, frames: int = 5,
                   video_size: int = 64) -> dict[str, dict]:
    """Input changes that make a real workflow run on the stand-ins, quickly.

    The tiny open_clip file is not the architecture the workflow names; images are scaled
    to ``size``, samplers run ``steps`` steps and a video's kept frames (``ImageFromBatch``'s
    length) are at most ``frames`` (5 = 1 + 4: two Wan latent frames) so a CPU finishes in seconds.
    A video workflow (a ``LoadVideo`` node) is scaled to ``video_size`` at most: guidance decodes and
    scores every frame, so 5 frames at 64 px cost about what one 128 px picture does.
    """
    changes: dict[str, dict] = family_overrides(api_prompt)  # text encoders that cannot shrink
    if any(node.get("class_type") == "LoadVideo" for node in api_prompt.values()):
        size = min(size, video_size)
    for node_id, node in api_prompt.items():
        cls, inputs = node.get("class_type"), node.get("inputs", {})
        new: dict = {}
        if cls == "StyleGuidanceOpenCLIPLoader":
            new["arch"] = TINY_OPENCLIP_ARCH
        if cls in ("ImageScale", "EmptyLatentImage"):
            new.update({k: size for k in ("width", "height") if isinstance(inputs.get(k), int)})
        if "steps" in inputs and isinstance(inputs["steps"], int):
            new["steps"] = min(inputs["steps"], steps)
        if cls == "ImageFromBatch" and isinstance(inputs.get("length"), int) and inputs["length"] > frames:
            new["length"] = frames
        if isinstance(inputs.get("loss_resolution"), int) and inputs["loss_resolution"] > size:
            new["loss_resolution"] = size
        if new:
            changes[str(node_id)] = {**changes.get(str(node_id), {}), **new}
    return changes
