"""The guidance engine. Only ``comfy_adapter`` knows ComfyUI's sampling internals."""
