"""The guidance engine. ComfyUI's sampling internals are touched only by the modules that
``comfy_adapter``'s docstring lists (the adapter, ``model_probe``, ``inversion``, ``recurrence``,
``clip_vision``, ``families``); the engine, guidance maths, settings and autograd plumbing see
plain tensors and modules."""
