"""Tiny stand-ins of the newer DiT families, built through ComfyUI's own model classes.

ComfyUI's detection names these families from their key names but forces real-size widths on
them (``headless/testbed/standin_dit_nodes.py`` says which and why), so each stand-in is a
:class:`DiTSpec`: the ``comfy.supported_models`` class, the sizes that replace detection's, and the
keys detection reads. The builder runs ComfyUI's detection on those keys (so a newer ComfyUI's new
constructor fields come from the ComfyUI that builds it), keeps only arguments the installed class
accepts, builds the model through ``supported_models.<class>.get_model``, fills it with seeded
weights and rescales its output layer to unit RMS. The file (fp32, a few MB) carries the class and
sizes in its metadata, for ``SGTestDiTLoader``, which repeats the same steps on the file's keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from .common import calibrate_output, seeded_fill_


@dataclass(frozen=True)
class DiTSpec:
    """What a tiny DiT stand-in is, for ComfyUI: its class, its sizes, the keys detection reads."""

    model_config: str  # comfy.supported_models class (ZImage, Lumina2, Chroma, Flux2, HiDream)
    ldm_class: str  # the diffusion model's class, "module.Class" (for the arguments it accepts)
    tiny: dict  # the sizes that replace detection's (JSON-able)
    skeleton: dict  # key -> shape: what comfy.model_detection reads to name the family
    run: Callable[[torch.nn.Module, torch.Generator], torch.Tensor]  # one calibration forward
    last: Callable[[torch.nn.Module], torch.nn.Module]  # the output layer to rescale


def config(spec: DiTSpec) -> dict:
    """The constructor config: ComfyUI's detection on the skeleton, the tiny sizes on top, filtered."""
    from headless.testbed.standin_dit_nodes import dit_config

    skeleton = {k: torch.empty(tuple(s), device="meta") for k, s in spec.skeleton.items()}
    return dit_config(skeleton, spec.tiny, spec.ldm_class)


def build(spec: DiTSpec, seed: int) -> torch.nn.Module:
    """The seeded, calibrated tiny diffusion model (fp32): unit-RMS prediction on unit-variance inputs."""
    from headless.testbed.standin_dit_nodes import model_config_for

    model_config = model_config_for(spec.model_config, config(spec))
    model_config.set_inference_dtype(torch.float32, None)
    net = model_config.get_model({}).diffusion_model
    seeded_fill_(net, seed)
    gen = torch.Generator().manual_seed(seed + 2)
    state = gen.get_state()

    def run() -> torch.Tensor:
        gen.set_state(state)  # the same inputs before and after the rescale
        return spec.run(net, gen)

    calibrate_output(spec.last(net), run)
    return net


def save(net: torch.nn.Module, path: Path, spec: DiTSpec) -> None:
    """fp32 file of ``net`` with the metadata ``SGTestDiTLoader`` reads."""
    from headless.testbed.standin_dit_nodes import META_CLASS, META_CONFIG, META_LDM

    sd = {k: v.detach().float().contiguous() for k, v in net.state_dict().items()}
    bad = [k for k, v in sd.items() if not torch.isfinite(v).all()]
    if bad:
        raise RuntimeError(f"stand-in {path.name}: {bad[:3]} not finite")
    save_file(sd, str(path), metadata={META_CLASS: spec.model_config, META_CONFIG: json.dumps(spec.tiny),
                                        META_LDM: spec.ldm_class})
