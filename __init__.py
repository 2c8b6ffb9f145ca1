"""Style Guidance: training-free, image-guided style transfer for ComfyUI.

ComfyUI's custom-node loader imports this package and calls :func:`comfy_entrypoint`.
Importing it builds no model, touches no GPU and opens no network connection.
"""

from __future__ import annotations

STYLE_GUIDANCE_VERSION = "0.1.0"

# Per-node help pages (web/docs/<NodeId>.md) and any front-end files.
WEB_DIRECTORY = "./web"

try:
    from .nodes._api import ComfyExtension, io
except ImportError:  # imported outside ComfyUI (e.g. by the pure loss tests): nothing to register
    ComfyExtension = None  # type: ignore[assignment,misc]
else:
    from .nodes import collect_nodes

    class StyleGuidanceExtension(ComfyExtension):
        """Registers every node whose module imported; failures are logged, not fatal."""

        async def get_node_list(self) -> list[type[io.ComfyNode]]:
            return collect_nodes()

    async def comfy_entrypoint() -> StyleGuidanceExtension:
        # ComfyUI loads the pack: the shipped workflows' sample images go to its input folder
        # (absent ones only; see nodes/sample_images.py) so a template's first run finds them.
        from .nodes.sample_images import install_sample_images

        install_sample_images()
        return StyleGuidanceExtension()


__all__ = ["STYLE_GUIDANCE_VERSION", "WEB_DIRECTORY", "comfy_entrypoint"]
