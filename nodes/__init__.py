"""ComfyUI node classes: inputs, tooltips, validation and wiring only (no maths here)."""

from __future__ import annotations

import importlib
import logging

log = logging.getLogger("style_guidance")

# One module per group of nodes. A module that fails to import (say, a broken optional
# dependency) loses only its own nodes; the rest still register.
NODE_MODULES: tuple[str, ...] = (
    "loaders",
    "loss_nodes",
    "measure",
    "sampler_nodes",
    "model_feature_nodes",
)


def collect_nodes() -> list:
    """Import each node module and gather its ``NODES`` list, logging what is unavailable."""
    found: list = []
    for name in NODE_MODULES:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except Exception as e:  # noqa: BLE001 - report any import failure, keep the others
            log.warning("[Style Guidance] nodes in %s are unavailable: %s: %s", name, type(e).__name__, e)
            continue
        found.extend(getattr(module, "NODES", ()))
        for missing, why in getattr(module, "UNAVAILABLE", {}).items():
            log.warning("[Style Guidance] node %s is unavailable: %s", missing, why)
    return found
