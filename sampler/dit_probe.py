"""What the model-feature probe reads inside a DiT (Flux, Flux.2, Chroma, Qwen-Image, SD3, Lumina 2, Z-Image).

Two of ComfyUI's own extension points, installed only in the probe's private copy of
``model_options`` (so the sampler's own passes and other packs' passes never see them):

* ``transformer_options["patches_replace"]["dit"][(name, i)]``: a replacement for every block up to the
  deepest wanted one. It calls the replacement another pack put there (with the same arguments), or
  the block itself, and reads what the block gave: the image tokens of its output hidden states
  (ZeCon), laid back on the latent's token grid (patch size handled; a one-frame latent's frame axis
  is one grid), and which block runs (AD). After the deepest wanted block (or attention) the probe
  raises its private stop exception: the rest of the model is never computed.
* ``transformer_options["optimized_attention_override"]`` (``comfy.ldm.modules.attention.wrap_attn``,
  ComfyUI 0.3.7x and 0.8.0): sees q, k, v of every attention call after RoPE. Inside a wanted block the
  first call (the joint text+image attention) is recorded: the image tokens' queries, keys, values and
  the attention result the model computed (another pack's override, when there is one, computes it:
  the probe calls it and records its inputs and output), plus the text tokens' keys/values.

Lumina 2's NextDiT (Lumina 2, Z-Image) has no block-replacement point in ComfyUI 0.3.75 (0.8.0 has a
``patches["double_block"]`` that cannot stop the pass): its main layers are reached with forward hooks
on the layer modules, registered for one probe pass and removed after it, which act only when the call's
``transformer_options`` carry the probe's own mark (another pass through the same layers is left alone).
Its joint sequence is [text (padded), picture (padded to a multiple of 32 on Z-Image)]; the
attention override reads its attention as for the others (the padding tokens' keys kept beside the
text's), but Attention Distillation is refused there (:func:`attention_problem`).

Token order in the joint sequence: text first, then the image stream (Flux, Chroma and Flux.2 double
and single blocks, Qwen-Image, SD3; a Flux double block with ``flipped_img_txt`` puts the image first).
The image stream may carry reference latents after the picture's own tokens (Kontext, edit models):
only the first h*w tokens are the picture.

This module reads ComfyUI internals (class names, block lists, the transformer_options keys); it is
kept apart so that a ComfyUI upgrade touches one file.
"""

from __future__ import annotations

import contextlib
import math
import types
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..losses.model_features import AttentionCapture, AttentionKey

__all__ = ["DiTInfo", "StopForward", "attention_override_available", "attention_options", "attention_problem",
           "block_options", "dit_info", "token_grid"]

# diffusion model class -> (block list attribute, ComfyUI's key name) in forward order
_FAMILIES: dict[str, tuple[tuple[str, str], ...]] = {
    "comfy.ldm.flux.model.Flux": (("double_blocks", "double_block"), ("single_blocks", "single_block")),
    "comfy.ldm.chroma.model.Chroma": (("double_blocks", "double_block"), ("single_blocks", "single_block")),
    "comfy.ldm.qwen_image.model.QwenImageTransformer2DModel": (("transformer_blocks", "double_block"),),
    "comfy.ldm.modules.diffusionmodules.mmdit.OpenAISignatureMMDITWrapper": (("joint_blocks", "double_block"),),
    "comfy.ldm.lumina.model.NextDiT": (("layers", "layer"),),
}
# Families reached through forward hooks on the block modules (no replacement point): one joint sequence per block.
_HOOKED = frozenset({"comfy.ldm.lumina.model.NextDiT"})
# Families whose replaced blocks ComfyUI itself runs under activation checkpointing (SD3's block mixing).
_RECOMPUTING = frozenset({"comfy.ldm.modules.diffusionmodules.mmdit.OpenAISignatureMMDITWrapper"})
# The key of the probe's mark in a pass's transformer_options (hooked families: a hook acts only on its own pass).
_MARK = "style_guidance_probe_pass"
SUPPORTED_TEXT = "Flux.1, Flux.2, Chroma, Qwen-Image, SD3/SD3.5, Lumina 2 and Z-Image"


class StopForward(Exception):
    """Raised by the probe's own patch once everything wanted is captured (never escapes the probe)."""


@dataclass(frozen=True)
class DiTInfo:
    """A DiT's blocks in forward order, its patch size and the double blocks that put the image first."""

    blocks: tuple[tuple[str, int], ...]
    patch: int
    flipped: frozenset[tuple[str, int]]
    # Hooked families: the block modules in forward order and the picture's token padding multiple (0: none).
    modules: tuple[torch.nn.Module, ...] = field(default=(), compare=False, repr=False)
    pad_multiple: int = 0
    recomputes: bool = False  # the model already recomputes its replaced blocks in the backward


def _class_path(module: object) -> str:
    return f"{type(module).__module__}.{type(module).__qualname__}"


def dit_info(dm: torch.nn.Module) -> DiTInfo | None:
    """The block layout of a supported DiT, or None for any other model."""
    families = _FAMILIES.get(_class_path(dm))
    if families is None:
        return None
    blocks: list[tuple[str, int]] = []
    flipped = set()
    for attr, name in families:
        for i, blk in enumerate(getattr(dm, attr, None) or ()):
            blocks.append((name, i))
            if getattr(blk, "flipped_img_txt", False):
                flipped.add((name, i))
    p = getattr(dm, "patch_size", 1)
    p = int(p[-1] if isinstance(p, (tuple, list)) else p)
    if _class_path(dm) not in _HOOKED:
        return DiTInfo(tuple(blocks), p, frozenset(flipped), recomputes=_class_path(dm) in _RECOMPUTING)
    modules = tuple(blk for attr, _ in families for blk in (getattr(dm, attr, None) or ()))
    return DiTInfo(tuple(blocks), p, frozenset(flipped), modules, int(getattr(dm, "pad_tokens_multiple", None) or 0))


def attention_override_available() -> bool:
    """Whether this ComfyUI routes attention through ``transformer_options["optimized_attention_override"]``."""
    import comfy.ldm.modules.attention as attention

    return callable(getattr(attention, "wrap_attn", None))


def attention_problem(dm: torch.nn.Module, family: str) -> str | None:
    """Why Attention Distillation cannot run on this DiT (None: it can): no attention override in this ComfyUI,
    or a family whose attention guidance was not shown to work (Lumina 2's NextDiT: Lumina 2, Z-Image)."""
    if not attention_override_available():
        return (f"this ComfyUI has no attention override (transformer_options['optimized_attention_override']) to "
                f"read the {family} DiT's attention; update ComfyUI, or use the VGG/CLIP style terms")
    if _class_path(dm) in _HOOKED:
        # The probe reads its attention exactly (tests/test_model_features_dit.py), but on test models the guided
        # result's attention moved away from the style by an independent twin's score: not offered until it does.
        return (f"Attention Distillation is not offered on {family} (Lumina 2's NextDiT); ZeCon Content Loss works "
                "on it. Use the CLIP or Gram style terms for the look")
    return None


def token_grid(x: torch.Tensor, patch: int) -> tuple[int, int]:
    """The (h, w) token grid of a latent (B,C,h,w) or one-frame (B,C,1,h,w) after patching (padded up)."""
    h, w = x.shape[-2:]
    return math.ceil(h / patch), math.ceil(w / patch)


def _dit_patches(opts: dict) -> tuple[dict, dict]:
    """The probe's own copies of transformer_options and its patches_replace["dit"] (opts is already a copy)."""
    to = opts["transformer_options"]
    replace = dict(to.get("patches_replace", {}))
    dit = dict(replace.get("dit", {}))
    replace["dit"] = dit
    to["patches_replace"] = replace
    return to, dit


class _Pass:
    """One probe pass: which block runs, the text length it was given, the picture's token count."""

    def __init__(self, info: DiTInfo, grid: tuple[int, int]) -> None:
        self.info = info
        self.grid = grid
        self.n = grid[0] * grid[1]
        self.block: tuple[str, int] | None = None
        self.calls = 0
        self.txt = 0  # text tokens in the joint sequence (from the last double block's arguments)
        self.img_stream = 0  # tokens of the image stream of the running double block
        self.done = False  # the pass is over: a block recomputed in the backward records and stops nothing

    def image_start(self, key: tuple[str, int], joint: bool) -> int:
        """Where the picture's tokens start: in a block's image stream (``joint`` False) or the joint sequence."""
        if key[0] in ("single_block", "layer"):  # the joint sequence is the block's own stream: text first
            return self.txt
        if not joint or key in self.info.flipped:
            return 0
        return self.txt

    def text_slice(self, key: tuple[str, int]) -> slice:
        if key[0] == "double_block" and key in self.info.flipped:
            return slice(self.img_stream, None)
        return slice(0, self.txt)


def _install(opts: dict, info: DiTInfo, upto: int, st: _Pass,
             after: Callable[[tuple[str, int], dict, dict], None],
             recompute: bool = False, read_inside: frozenset[int] = frozenset()) -> contextlib.AbstractContextManager:
    """Replace every block up to forward index ``upto``: track the pass, call the block, then ``after``.

    ``recompute``: with grad on, every block before the deepest runs under activation checkpointing (its
    inputs kept, the block recomputed in the backward) but those whose insides are read (``read_inside``,
    forward indices: AD's attention); the deepest, where the pass stops, runs as it is. Hooked families, and
    SD3 (whose replaced blocks ComfyUI already recomputes), ignore it. Returns what to run the pass inside (it marks the pass done on exit, and
    removes a hooked family's hooks).
    """
    if info.modules:
        return _hook(opts, info, upto, st, after)
    recompute = recompute and not info.recomputes
    _, dit = _dit_patches(opts)
    for i, key in enumerate(info.blocks[: upto + 1]):
        existing = dit.get(key)
        checkpointed = recompute and i < upto and i not in read_inside

        def replace(args: dict, extra: dict, key=key, existing=existing, checkpointed=checkpointed) -> dict:
            if st.done:  # recomputed in the backward: the block as it ran, nothing recorded
                return existing(args, extra) if existing is not None else extra["original_block"](args)
            if key[0] != "single_block":
                txt = args.get("txt")
                st.txt = int(txt.shape[1]) if isinstance(txt, torch.Tensor) else 0
                st.img_stream = int(args["img"].shape[1])
            st.block, st.calls = key, 0
            try:
                if checkpointed and torch.is_grad_enabled():
                    out = _checkpointed(args, extra, existing)
                else:
                    out = existing(args, extra) if existing is not None else extra["original_block"](args)
            finally:
                st.block = None
            after(key, args, out)
            return out

        dit[key] = replace
    return _finishing(st)


@contextlib.contextmanager
def _finishing(st: _Pass):
    try:
        yield
    finally:
        st.done = True


def _checkpointed(args: dict, extra: dict, existing: Callable | None) -> dict:
    """The block run without a graph and recomputed in the backward (activation checkpointing): autograd keeps its
    tensor arguments only. ComfyUI's ``original_block`` closures read their loop's variables (``block``, ``i``)
    when called, which in the backward name the last block the loop reached: the recomputation calls a copy of
    the function bound to this block. The block gets copies of its inputs (Flux's blocks add to them in place)."""
    names = [k for k, v in args.items() if isinstance(v, torch.Tensor)]
    block = _bound_now(extra["original_block"])
    extra = {**extra, "original_block": block}

    def call(tensors: tuple[torch.Tensor, ...]) -> dict:
        fresh = {**args, **{k: t.clone() for k, t in zip(names, tensors, strict=True)}}
        return existing(fresh, extra) if existing is not None else block(fresh)

    keys: list[str] = []
    outs = _Recompute.apply(call, keys, *(args[k] for k in names))
    return dict(zip(keys, outs, strict=True))


class _Recompute(torch.autograd.Function):
    """Forward without a graph; the backward runs the block again with one (saved activations copied, as
    autograd_compat does for in-place models) and takes the gradient of its tensor arguments through it."""

    @staticmethod
    def forward(ctx, call: Callable, keys: list, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ctx.call = call
        ctx.save_for_backward(*tensors)
        with torch.no_grad():
            out = call(tensors)
        keys.extend(k for k, v in out.items() if isinstance(v, torch.Tensor))
        ctx.keys = list(keys)
        return tuple(out[k] for k in keys)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor | None):
        from .autograd_compat import clone_saved_activations

        inputs = [t.detach().requires_grad_(t.requires_grad) for t in ctx.saved_tensors]
        with torch.enable_grad(), clone_saved_activations():
            out = ctx.call(tuple(inputs))
        pairs = [(out[k], g) for k, g in zip(ctx.keys, grads, strict=True) if g is not None and out[k].requires_grad]
        wanted = [t for t in inputs if t.requires_grad]
        got = iter(torch.autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs], allow_unused=True)
                   if pairs and wanted else ())
        return (None, None, *(next(got) if t.requires_grad else None for t in inputs))


def _bound_now(fn: Callable) -> Callable:
    """``fn`` with the current values of its closure's variables frozen (a late-binding loop closure made early)."""
    cells = getattr(fn, "__closure__", None)
    if not cells or not isinstance(fn, types.FunctionType):
        return fn
    frozen = []
    for cell in cells:
        try:
            frozen.append(types.CellType(cell.cell_contents))
        except ValueError:  # an empty cell: nothing to freeze
            frozen.append(cell)
    bound = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, tuple(frozen))
    bound.__kwdefaults__ = fn.__kwdefaults__
    return bound


@contextlib.contextmanager
def _hook(opts: dict, info: DiTInfo, upto: int, st: _Pass, after: Callable[[tuple[str, int], dict, dict], None]):
    """Forward hooks on the blocks up to ``upto`` for one pass (marked in its transformer_options), removed after."""
    opts["transformer_options"][_MARK] = st
    pad = (-st.n) % info.pad_multiple if info.pad_multiple else 0

    def ours(kwargs: dict) -> bool:
        to = kwargs.get("transformer_options")
        return isinstance(to, dict) and to.get(_MARK) is st

    handles = []
    try:
        for key, module in zip(info.blocks[: upto + 1], info.modules, strict=False):

            def before(module, args, kwargs, key=key) -> None:
                if ours(kwargs):
                    st.txt = int(args[0].shape[1]) - st.n - pad  # [text, picture, padding]
                    st.block, st.calls = key, 0

            def done(module, args, kwargs, out, key=key) -> None:
                if ours(kwargs):
                    st.block = None
                    after(key, {"img": args[0]}, {"img": out})

            handles.append(module.register_forward_pre_hook(before, with_kwargs=True))
            handles.append(module.register_forward_hook(done, with_kwargs=True))
        yield
    finally:
        st.done = True
        for h in handles:
            h.remove()


def block_options(opts: dict, info: DiTInfo, x: torch.Tensor, indices: dict[int, int],
                  got: dict[int, torch.Tensor], recompute: bool = False) -> contextlib.AbstractContextManager:
    """Make ``opts`` record the image tokens of the blocks at forward ``indices`` (index -> result key) into ``got``
    as (B, C, h, w) feature maps, and stop after the deepest one. Run the pass inside what it returns.
    ``recompute``: activation checkpointing of the blocks before the deepest (see :func:`_install`)."""
    st = _Pass(info, token_grid(x, info.patch))
    deepest = max(indices)
    position = {key: i for i, key in enumerate(info.blocks)}

    def after(key: tuple[str, int], args: dict, out: dict) -> None:
        i = position[key]
        if i not in indices:
            return
        img = out["img"]
        start = st.image_start(key, joint=False)
        tokens = img[:, start: start + st.n]
        b, n, c = tokens.shape
        if n != st.n:
            raise RuntimeError(f"model features: block {key} gave {n} picture tokens where the latent has {st.n}")
        # a copy: later blocks (and ControlNet residuals) update hidden states in place
        got[indices[i]] = tokens.transpose(1, 2).reshape(b, c, *st.grid).clone()
        if i == deepest:
            raise StopForward

    return _install(opts, info, deepest, st, after, recompute)


def _to_tokens(t: torch.Tensor, heads_first: bool) -> torch.Tensor:
    """(B, heads, N, dim) -> (B, N, heads*dim); (B, N, heads, dim) (SD3's values) and (B, N, heads*dim) alike."""
    if heads_first:
        b, h, n, d = t.shape
        return t.transpose(1, 2).reshape(b, n, h * d)
    return t.reshape(t.shape[0], t.shape[1], -1) if t.ndim == 4 else t


def attention_options(opts: dict, info: DiTInfo, x: torch.Tensor, layers: dict[int, AttentionKey],
                      got: dict[AttentionKey, AttentionCapture],
                      recompute: bool = False) -> contextlib.AbstractContextManager:
    """Make ``opts`` record the joint attention of the blocks at forward indices ``layers`` (index -> key) into
    ``got``, and stop once the deepest one has run. Run the pass inside what it returns."""
    st = _Pass(info, token_grid(x, info.patch))
    deepest = max(layers)
    position = {key: i for i, key in enumerate(info.blocks)}
    to = opts["transformer_options"]
    existing = to.get("optimized_attention_override")

    def override(func, *args, **kwargs):
        out = existing(func, *args, **kwargs) if existing is not None else func(*args, **kwargs)
        key = st.block
        if st.done or key is None or position[key] not in layers or st.calls > 0:
            st.calls += 1
            return out
        st.calls += 1
        q, k, v = (args[i] if len(args) > i else kwargs[n] for i, n in enumerate(("q", "k", "v")))
        heads = int(args[3] if len(args) > 3 else kwargs["heads"])
        first = bool(kwargs.get("skip_reshape", False))
        q, k, v = (_to_tokens(t, first) for t in (q, k, v))
        res = _to_tokens(out, bool(kwargs.get("skip_output_reshape", False)))
        start = st.image_start(key, joint=True)
        img, txt = slice(start, start + st.n), st.text_slice(key)
        if q.shape[1] < start + st.n:
            raise RuntimeError(f"model features: the attention of block {key} has {q.shape[1]} tokens, fewer than "
                               f"text + picture ({start} + {st.n})")
        if key[0] == "layer":  # NextDiT: the text and the picture's padding tokens are what the picture also sees
            k_keep, v_keep = (torch.cat((t[:, :start], t[:, start + st.n:]), 1) for t in (k, v))
        else:
            k_keep, v_keep = k[:, txt], v[:, txt]
        got[layers[position[key]]] = AttentionCapture(q[:, img], k[:, img], v[:, img], res[:, img], heads, st.grid,
                                                      k_keep, v_keep)
        if position[key] == deepest:
            raise StopForward
        return out

    to["optimized_attention_override"] = override
    return _install(opts, info, deepest, st, lambda *a: None, recompute, frozenset(layers))
