"""The one place the pack imports ComfyUI's V3 node API from (``io``, ``ui``, ``ComfyExtension``).

ComfyUI keeps frozen, versioned copies of the V3 API (``comfy_api.v0_0_2`` exists from
0.3.6x on and in every newer release) next to ``comfy_api.latest``, which changes with
each release. The versioned module is preferred; a ComfyUI without it gets ``latest``.

New ``io.Schema`` arguments appear release by release, and passing one that the running
ComfyUI lacks makes the node fail to load. Such arguments go through
:func:`optional_schema_args`, which keeps only those the running ``io.Schema`` accepts.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

try:
    from comfy_api.v0_0_2 import ComfyExtension, io, ui

    API_MODULE = "comfy_api.v0_0_2"
except ImportError:  # a ComfyUI without the versioned module
    from comfy_api.latest import ComfyExtension, io, ui

    API_MODULE = "comfy_api.latest"


def _schema_parameters() -> frozenset[str]:
    if dataclasses.is_dataclass(io.Schema):
        return frozenset(f.name for f in dataclasses.fields(io.Schema) if f.init)
    return frozenset(inspect.signature(io.Schema).parameters)


SCHEMA_PARAMETERS: frozenset[str] = _schema_parameters()


def optional_schema_args(**kwargs: Any) -> dict[str, Any]:
    """Keep the ``io.Schema`` keyword arguments the running ComfyUI knows; drop the others.

    Use for arguments newer than the oldest supported ComfyUI, e.g.
    ``io.Schema(node_id=..., **optional_schema_args(search_aliases=["style transfer"]))``.
    """
    return {k: v for k, v in kwargs.items() if k in SCHEMA_PARAMETERS}


__all__ = ["API_MODULE", "SCHEMA_PARAMETERS", "ComfyExtension", "io", "optional_schema_args", "ui"]
