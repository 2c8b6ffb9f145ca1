"""What bench_realsize.py compares: the configurations, the published anchors, shared units.

Imported by the measuring script (bench_realsize.py) and its report (_realsize_report.py).
"""

from __future__ import annotations

GIB = 2**30

_FREEDOM = {"start_percent": 0.3, "end_percent": 0.7, "recurrence": 3,
            "recurrence_start_percent": 0.4, "recurrence_end_percent": 0.7}
# name -> (description, settings or None for the core KSampler); "vae": which guidance decoder.
CONFIGS: dict[str, tuple[str, dict | None]] = {
    "plain": ("core KSampler, no guidance", None),
    "fast": ("x0, TAESD decoder, loss_resolution 256", {"vae": "taesd", "mode": "x0", "loss_resolution": 256}),
    "x0-vae": ("x0, full VAE decoder", {"vae": "vae", "mode": "x0"}),
    "xt-taesd": ("xt, TAESD decoder", {"vae": "taesd", "mode": "xt"}),
    "xt-vae": ("xt, full VAE decoder", {"vae": "vae", "mode": "xt"}),
    "freedom-like": ("xt, full VAE, window 0.3-0.7, recurrence 3 in 0.4-0.7", {"vae": "vae", "mode": "xt", **_FREEDOM}),
    "mpgd-like": ("x0, full VAE, window 0.3-0.7", {"vae": "vae", "mode": "x0", "start_percent": 0.3, "end_percent": 0.7}),
}
# Published figures for SD at 512 px (seconds per image, GB): MPGD's table (ICLR 2024), FreeDoM's README.
PUBLISHED = {"freedom-like": ("FreeDoM", 26.5, 17.3), "mpgd-like": ("MPGD-LDM", 19.8, 15.5)}


COMPONENT_ORDER = ["UNet fwd", "UNet bwd", "decoder fwd", "decoder bwd", "VGG fwd", "VGG bwd", "CLIP fwd",
                   "CLIP bwd", "loss arithmetic", "guidance step", "other"]


def loss_side(name: str, size: int) -> int:
    """The side (px) at which a configuration's loss networks see the image."""
    spec = CONFIGS[name][1] or {}
    r = spec.get("loss_resolution", 0)
    return min(r, size) if r else size
