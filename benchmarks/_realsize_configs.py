"""What bench_realsize.py compares: the configurations, the published anchors, shared units.

Imported by the measuring script (bench_realsize.py) and its report (_realsize_report.py).
The "fast" configuration and the loss chain of every guided configuration are read from the
shipped workflow ``workflows/api/style_transfer_fast.json`` (sampler settings, loss weights,
patches, cutouts), so the benchmark measures what that workflow runs.
"""

from __future__ import annotations

import json
from pathlib import Path

GIB = 2**30
REPO_ROOT = Path(__file__).resolve().parents[1]
FAST_WORKFLOW = REPO_ROOT / "workflows" / "api" / "style_transfer_fast.json"

# Sampler inputs that are guidance settings (GuidanceSettings' fields; scale comes from --scale).
_SETTINGS = ("mode", "start_percent", "end_percent", "recurrence", "recurrence_start_percent",
             "recurrence_end_percent", "grad_clip", "loss_resolution")
# Loss node class -> the key headless.testbed.graphs.add_all_losses uses for it.
LOSS_NODES = {"StyleGuidanceContentMSE": "mse", "StyleGuidanceVGGContent": "vgg", "StyleGuidanceZeCon": "zecon",
              "StyleGuidanceCLIPStyle": "clip", "StyleGuidanceGramStyle": "gram"}


def _fast_workflow() -> tuple[dict, dict[str, dict], int]:
    """(the fast config's settings, scalar inputs of each loss node by term key, steps) from the shipped workflow."""
    try:
        graph = json.loads(FAST_WORKFLOW.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SystemExit(f"bench_realsize: cannot read the fast preset's workflow {FAST_WORKFLOW}: {e}") from e
    samplers = [n for n in graph.values() if n["class_type"] == "StyleGuidanceSampler"]
    if len(samplers) != 1:
        raise SystemExit(f"bench_realsize: {FAST_WORKFLOW.name} must hold one StyleGuidanceSampler, found {len(samplers)}")
    inputs = samplers[0]["inputs"]
    vae_node = graph[inputs["vae"][0]]
    vae_name = vae_node["inputs"].get("vae_name", "") if vae_node["class_type"] == "VAELoader" else ""
    spec = {"vae": "taesd" if vae_name.startswith("taesd") else "vae",
            **{k: inputs[k] for k in _SETTINGS if k in inputs}}
    chain = {LOSS_NODES[n["class_type"]]: {k: v for k, v in n["inputs"].items() if not isinstance(v, list)}
             for n in graph.values() if n["class_type"] in LOSS_NODES}
    return spec, chain, int(inputs["steps"])


FAST, CHAIN, FAST_STEPS = _fast_workflow()


def _describe_fast(spec: dict) -> str:
    rec = (f", recurrence {spec['recurrence']} in {spec['recurrence_start_percent']:g}-{spec['recurrence_end_percent']:g}"
           if spec.get("recurrence", 1) > 1 else "")
    return (f"{spec['mode']}, {spec['vae'].upper() if spec['vae'] == 'vae' else 'TAESD'} decoder, "
            f"window {spec.get('start_percent', 0.0):g}-{spec.get('end_percent', 1.0):g}, "
            f"loss_resolution {spec.get('loss_resolution', 0)}{rec} (as workflows/style_transfer_fast)")


_FREEDOM = {"start_percent": 0.3, "end_percent": 0.7, "recurrence": 3,
            "recurrence_start_percent": 0.4, "recurrence_end_percent": 0.7}
# name -> (description, settings or None for the core KSampler); "vae": which guidance decoder;
# "chain": which loss chain ("image": the five image losses of the fast workflow, the default;
# "zecon-model" / "ad": one term on the diffusion model's own features, no decoder used).
CONFIGS: dict[str, tuple[str, dict | None]] = {
    "plain": ("core KSampler, no guidance", None),
    "fast": (_describe_fast(FAST), FAST),
    "x0-vae": ("x0, full VAE decoder", {"vae": "vae", "mode": "x0"}),
    "xt-taesd": ("xt, TAESD decoder", {"vae": "taesd", "mode": "xt"}),
    "xt-vae": ("xt, full VAE decoder", {"vae": "vae", "mode": "xt"}),
    "freedom-like": ("xt, full VAE, window 0.3-0.7, recurrence 3 in 0.4-0.7", {"vae": "vae", "mode": "xt", **_FREEDOM}),
    "mpgd-like": ("x0, full VAE, window 0.3-0.7", {"vae": "vae", "mode": "x0", "start_percent": 0.3, "end_percent": 0.7}),
    "zecon-model": ("x0, ZeCon on the UNet's own encoder features (input blocks 0,2,5,8,11) alone; no decoder",
                    {"vae": "taesd", "mode": "x0", "chain": "zecon-model"}),
    "ad": ("x0, Attention Distillation (last 6 self-attentions) alone; no decoder",
           {"vae": "taesd", "mode": "x0", "chain": "ad"}),
}
# Published figures for SD at 512 px (seconds per image, GB): MPGD's table (ICLR 2024), FreeDoM's README.
PUBLISHED = {"freedom-like": ("FreeDoM", 26.5, 17.3), "mpgd-like": ("MPGD-LDM", 19.8, 15.5)}


COMPONENT_ORDER = ["UNet fwd", "UNet bwd", "decoder fwd", "decoder bwd", "VGG fwd", "VGG bwd", "CLIP fwd",
                   "CLIP bwd", "loss arithmetic", "model features fwd", "model features bwd",
                   "model features (per run)", "guidance step", "other"]
# The parts of one guided evaluation (bench_realsize.guided_parts), in the order the engine runs them.
PART_ORDER = ["decoder fwd", "chain fwd: VGG", "chain fwd: CLIP", "chain fwd: loss arithmetic", "model passes fwd",
              "latent terms' loss arithmetic", "term bwd", "decoder bwd", "per run: reference features"]


def chain_of(name: str) -> str:
    """The loss chain a configuration guides with ('' for plain)."""
    spec = CONFIGS[name][1]
    return "" if spec is None else spec.get("chain", "image")


def loss_side(name: str, size: int) -> int:
    """The side (px) at which a configuration's loss networks see the image."""
    spec = CONFIGS[name][1] or {}
    r = spec.get("loss_resolution", 0)
    return min(r, size) if r else size


def guided_key(name: str, size: int) -> str:
    """What one guided evaluation of ``name`` computes besides the UNet: configurations with equal keys share a count."""
    chain = chain_of(name)
    if chain != "image":
        return chain
    return f"{CONFIGS[name][1]['vae']} decoder, losses at {loss_side(name, size)} px"
