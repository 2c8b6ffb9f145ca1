"""Loader nodes for the loss networks: VGG19 and open_clip, from registered model folders."""

from __future__ import annotations

import importlib.util
import os

import folder_paths

from ..losses import load_open_clip_encoder, load_vgg19_features
from ..sampler.comfy_adapter import wrap_in_patcher
from ._api import io
from ._common import CATEGORY, OpenCLIPType, VGGType, building

VGG_FILE = "vgg19-dcbee923.pth"
VGG_URL = "https://download.pytorch.org/models/vgg19-dcbee923.pth"
# torchvision names its files <arch>-<first 8 hex digits of the file's sha256>.pth.
VGG_SHA256_PREFIX = "dcbee923"
WEIGHT_EXTS = {".pth", ".pt", ".bin", ".safetensors"}


def register_folder(name: str) -> None:
    """Add models/<name> (extra_model_paths.yaml may add more folders under the same key)."""
    default = os.path.join(folder_paths.models_dir, name)
    if name not in folder_paths.folder_names_and_paths:
        folder_paths.folder_names_and_paths[name] = ([default], set(WEIGHT_EXTS))
    else:
        paths, exts = folder_paths.folder_names_and_paths[name]
        folder_paths.folder_names_and_paths[name] = (paths, set(exts) | WEIGHT_EXTS)


register_folder("vgg")
register_folder("open_clip")


def _folder_hint(name: str) -> str:
    return " or ".join(folder_paths.get_folder_paths(name)) or os.path.join(folder_paths.models_dir, name)


def download_vgg(folder: str) -> str:
    """Download torchvision's VGG19 into ``folder`` (opt-in), checked against its published hash first.

    ``torch.hub`` writes to a temporary file beside the target, checks the sha256 prefix and only
    then moves it into place, so a wrong or partial download is never used or left behind.
    """
    import torch.hub  # an explicit opt-in; never at import time

    target = os.path.join(folder, VGG_FILE)
    try:
        os.makedirs(folder, exist_ok=True)
        torch.hub.download_url_to_file(VGG_URL, target, hash_prefix=VGG_SHA256_PREFIX, progress=False)
    except RuntimeError as e:
        if "hash" not in str(e):
            raise
        raise RuntimeError(
            f"allow_download: the file downloaded from {VGG_URL} is not torchvision's {VGG_FILE} (its sha256 does "
            f"not start with {VGG_SHA256_PREFIX}: {e}); it was discarded. Download {VGG_FILE} yourself into {folder}."
        ) from e
    except OSError as e:  # URLError, refused/unreachable, timeouts, a folder we cannot write
        raise RuntimeError(
            f"allow_download: could not download {VGG_FILE} from {VGG_URL} into {folder} ({type(e).__name__}: {e}). "
            f"Without internet access, fetch the file on another machine and copy it into {folder}."
        ) from e
    return target


class StyleGuidanceVGGLoader(io.ComfyNode):
    """Loads torchvision's VGG19 feature stack for the VGG content, ZeCon and Gram losses."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        files = folder_paths.get_filename_list("vgg")
        return io.Schema(
            node_id="StyleGuidanceVGGLoader",
            display_name="Load VGG19 (Style Guidance)",
            category=f"{CATEGORY}/loaders",
            description="Loads VGG19 features (torchvision's vgg19-dcbee923.pth or a .safetensors copy) from models/vgg.",
            inputs=[
                io.Combo.Input("vgg_name", options=files if VGG_FILE in files else [*files, VGG_FILE],
                               tooltip=f"VGG19 weights in {_folder_hint('vgg')}: torchvision's {VGG_FILE} ({VGG_URL}) or a safetensors conversion."),
                io.Boolean.Input("allow_download", default=False, optional=True,
                                 tooltip=f"If the file is missing, let torchvision download {VGG_FILE} into models/vgg (needs internet). Off by default."),
            ],
            outputs=[VGGType.Output(display_name="vgg", tooltip="A frozen VGG19 feature extractor; share it between loss nodes so it runs once per step.")],
        )

    @classmethod
    def validate_inputs(cls, vgg_name: str, allow_download: bool = False) -> bool | str:
        if folder_paths.get_full_path("vgg", vgg_name) is None and not allow_download:
            return (f"vgg_name: '{vgg_name}' is not in {_folder_hint('vgg')}. Put torchvision's {VGG_FILE} "
                    f"({VGG_URL}) or a .safetensors conversion there, or switch on allow_download.")
        return True

    @classmethod
    def execute(cls, vgg_name: str, allow_download: bool = False) -> io.NodeOutput:
        path = folder_paths.get_full_path("vgg", vgg_name)
        if path is None:
            if not allow_download:
                raise FileNotFoundError(f"vgg_name: '{vgg_name}' not found in {_folder_hint('vgg')}")
            path = download_vgg(folder_paths.get_folder_paths("vgg")[0])
        with building():
            vgg = load_vgg19_features(path)
        vgg.comfy_patcher = wrap_in_patcher(vgg)
        return io.NodeOutput(vgg)


class StyleGuidanceOpenCLIPLoader(io.ComfyNode):
    """Loads an open_clip vision tower from a local file for the CLIP style loss."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StyleGuidanceOpenCLIPLoader",
            display_name="Load open_clip (Style Guidance)",
            category=f"{CATEGORY}/loaders",
            description="Loads an open_clip image encoder (e.g. ViT-B-32) from models/open_clip; nothing is downloaded.",
            inputs=[
                io.String.Input("arch", default="ViT-B-32",
                                tooltip=("open_clip architecture name the file was trained with, e.g. ViT-B-32, ViT-B-16, ViT-L-14, "
                                         "ViT-B-32-quickgelu (OpenAI weights). For a custom name, a <file>.json open_clip config beside the weights defines it.")),
                io.Combo.Input("clip_name", options=folder_paths.get_filename_list("open_clip"),
                               tooltip=f"Weights file in {_folder_hint('open_clip')} (open_clip_pytorch_model.bin or .safetensors)."),
            ],
            outputs=[OpenCLIPType.Output(display_name="open_clip", tooltip="A frozen, differentiable CLIP image encoder.")],
        )

    @classmethod
    def execute(cls, arch: str, clip_name: str) -> io.NodeOutput:
        path = folder_paths.get_full_path_or_raise("open_clip", clip_name)
        import open_clip

        arch = arch.strip()
        sidecar = path + ".json"
        # A <file>.json config names a custom architecture; it never redefines a built-in name.
        config = sidecar if os.path.isfile(sidecar) and arch not in open_clip.list_models() else None
        with building():
            enc = load_open_clip_encoder(arch, path, config)
        enc.comfy_patcher = wrap_in_patcher(enc)
        return io.NodeOutput(enc)


NODES: list[type[io.ComfyNode]] = [StyleGuidanceVGGLoader]
UNAVAILABLE: dict[str, str] = {}
# open_clip takes ~1 s to import, so it is only looked up here and imported when the node runs.
def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a broken install or an import hook that refuses it
        return False


if _importable("open_clip"):
    NODES.append(StyleGuidanceOpenCLIPLoader)
else:
    UNAVAILABLE["StyleGuidanceOpenCLIPLoader"] = (
        "the Python package open_clip_torch is not installed (install the pack's requirements.txt into ComfyUI's "
        "Python); CLIP style can still use a core CLIP_VISION model")
