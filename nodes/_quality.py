"""The Measure node's optional quality scores: where the evaluation protocol's networks come from.

The scores themselves are :mod:`evaluation.pairwise` (the same code ``python -m headless
evaluate`` runs). This module only resolves the weight files in ComfyUI's model folders
(``evaluation``: AlexNet and the LPIPS heads; ``vgg``: VGG19 - the folders ``evaluation/``
reads under one models folder, here every folder ComfyUI registers under those names, so
extra_model_paths.yaml works), keeps the loaded networks for the next run and hands them to
ComfyUI's model management. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import comfy.model_management
import folder_paths
import torch

from ..evaluation.pairwise import NEEDS, PairwiseNetworks, batch_pairwise, load_pairwise
from ..evaluation.weights import EVAL_FOLDER, VGG_FOLDER, WeightsMissing, locate_in
from ..sampler.comfy_adapter import wrap_in_patcher
from .loaders import register_folder

register_folder(EVAL_FOLDER)

# The Measure node's choices: which scores to compute (off: no network is loaded).
CHOICES: dict[str, tuple[str, ...]] = {"off": (), "LPIPS + CFSD": ("LPIPS", "CFSD"), "LPIPS": ("LPIPS",),
                                       "CFSD": ("CFSD",)}
_LOADED: dict[tuple, PairwiseNetworks] = {}  # one entry: the last metric set and files loaded


def folders() -> dict[str, list[Path]]:
    """The folders ComfyUI registers for the protocol's files (models/evaluation, models/vgg and extra paths)."""
    return {name: [Path(p) for p in folder_paths.get_folder_paths(name)] for name in (EVAL_FOLDER, VGG_FOLDER)}


def networks(metrics: tuple[str, ...]) -> PairwiseNetworks:
    """The networks ``metrics`` need, loaded once per set of files (WeightsMissing names each missing file)."""
    where = folders()
    files = locate_in(where, tuple(dict.fromkeys(k for m in metrics for k in NEEDS[m])))
    key = (metrics, tuple(sorted((k, str(f.path), f.sha256) for k, f in files.items())))
    nets = _LOADED.get(key)
    if nets is None:
        _LOADED.clear()  # keep one set: the networks are hundreds of MB
        with torch.inference_mode(False):
            nets = load_pairwise(where, metrics, "cpu")
        for net in (nets.lpips, nets.vgg):
            if net is not None:
                net.comfy_patcher = wrap_in_patcher(net)
        _LOADED[key] = nets
    return nets


def scores(quality: str, images: torch.Tensor, content: torch.Tensor) -> dict:
    """{"LPIPS", "CFSD", "note"} for the Measure payload; scores not asked for are None."""
    metrics = CHOICES[quality]
    try:
        nets = networks(metrics)
    except WeightsMissing as e:
        raise WeightsMissing(f"quality '{quality}' needs weight files that are missing:\n{e}") from None
    patchers = [n.comfy_patcher for n in (nets.lpips, nets.vgg) if n is not None]
    comfy.model_management.load_models_gpu(patchers)
    means, notes = batch_pairwise(nets, images, content, metrics)
    used = ", ".join(f"{f.path.name} ({f.sha256[:8]})" for f in nets.files.values())
    return {"LPIPS": means.get("LPIPS"), "CFSD": means.get("CFSD"),
            "note": "; ".join([f"{' and '.join(metrics)} to the content picture, as the evaluation protocol scores "
                               f"a pair (weights: {used})", *notes])}


__all__ = ["CHOICES", "folders", "networks", "scores"]
