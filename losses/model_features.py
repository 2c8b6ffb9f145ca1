"""Terms on the loaded diffusion model's own features: ZeCon (UNet encoder PatchNCE) and Attention Distillation.

Neither needs a decoder or an extra network: the engine hands each term the denoised prediction
``x0`` (model latent space) and a probe (:class:`FeatureProbe`) that runs the loaded, patched model
and reports what it saw. This module holds the maths only; the probe lives in ``sampler/``.

* :class:`ModelZeConLoss` -- ZeCon (Yang et al., AAAI 2023) as published: PatchNCE (CUT, no MLP
  head, N=256 locations, tau 0.07) between the UNet encoder's features of the output and of the
  content, both taken at the model's lowest noise level (timestep 0, ``sigma_min``) with the same
  seeded noise. ZeCon's own layers are its UNet's input blocks 0, 2, 5, 8, 11: the first conv and
  the last block of every resolution level, which on SD1.x/2.x are the same indices.
* :class:`AttentionDistillationLoss` -- the AD loss (Zhou et al., CVPR 2025): at chosen
  self-attention layers, L1 between the output's own attention result Attn(Q, K, V) and its queries
  attending to the style image's keys and values, Attn(Q, K_s, V_s) (the latter a detached
  target, as in the paper), both taken with the style and the output noised to the current sigma.

Batch pairing as everywhere: generated sample i uses reference i % R and mask entry i % M.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

from . import dit_presets
from .content import patch_nce
from .inputs import derive_seed, pair, pair_index, resize_constant
from .terms import LatentGuidanceLoss, ModelProbe

__all__ = [
    "AD_LAYER_PRESETS",
    "DEFAULT_AD_PRESET",
    "DEFAULT_ZECON_MODEL_PRESET",
    "ZECON_BLOCK_PRESETS",
    "AttentionCapture",
    "AttentionDistillationLoss",
    "FeatureProbe",
    "ModelLayout",
    "ModelZeConLoss",
    "ad_loss",
    "resolve_ad_layers",
    "resolve_zecon_blocks",
]

AttentionKey = tuple[str, int, int]  # (block name, block id, transformer index), as ComfyUI keys attn1 patches


@dataclass(frozen=True)
class ModelLayout:
    """What a probe found in the loaded model: enough to turn a layer preset into concrete layers."""

    family: str  # e.g. "SD15", "SDXL" (ComfyUI's model config class name)
    input_blocks: int  # number of UNet input blocks
    level_ends: tuple[int, ...]  # input blocks that close a resolution level (the block before each downsample, and the last)
    attn1: tuple[AttentionKey, ...]  # self-attention layers in forward order (input, middle, output)
    # DiTs: the blocks in forward order, as ComfyUI keys them in patches_replace["dit"] (("double_block", i),
    # ("single_block", i)); empty for a UNet. ZeCon's "blocks" are then indices into it, AD's layers (name, i, 0).
    blocks: tuple[tuple[str, int], ...] = ()


class AttentionCapture(NamedTuple):
    """One self-attention layer as the model ran it: projected q, k, v and its result (B, N, heads*dim)."""

    q: Tensor
    k: Tensor
    v: Tensor
    out: Tensor
    heads: int
    hw: tuple[int, int]  # the token grid (h, w) of the layer (N = h*w)
    # Joint text+image attention (DiTs): the text tokens' keys/values of the same call (B, N_txt, heads*dim).
    # The AD target keeps them beside the style's image keys/values (docs/model_features.md says why).
    k_keep: Tensor | None = None
    v_keep: Tensor | None = None


@runtime_checkable
class FeatureProbe(ModelProbe, Protocol):
    """The probe methods the terms of this module need (see sampler/model_probe.py).

    Passes run the model as ComfyUI loaded and patched it; they record an autograd graph when grad
    is enabled and the input requires grad, so the gradient reaches x0 through the features only.
    """

    sigma_min: float  # the model's lowest noise level (timestep 0)
    cache_token: Hashable  # equal for probes whose model, conditioning and seed are the same (within a run)

    def layout(self) -> ModelLayout:
        """The model's blocks and self-attention layers."""
        ...

    def noised(self, x0: Tensor, noise: Tensor, sigma: float) -> Tensor:
        """x0 (model space) noised to ``sigma`` with ``noise``, as the model's sampling adds noise."""
        ...

    def input_block_features(self, x: Tensor, sigma: float, blocks: Sequence[int],
                             recompute: bool = False) -> dict[int, Tensor]:
        """Outputs (B,C,h,w) of the given UNet input blocks for the noisy latent ``x`` at ``sigma``; ``recompute``:
        on a DiT, keep only each block's inputs for the backward and recompute the block there (less memory)."""
        ...

    def self_attention(self, x: Tensor, sigma: float, layers: Sequence[AttentionKey],
                       reference: bool = False, recompute: bool = False) -> dict[AttentionKey, AttentionCapture]:
        """Self-attention q, k, v and result at ``layers``; ``reference``: a picture other than the output
        (spatial conditioning such as ControlNet is left out of that pass); ``recompute`` as above."""
        ...


# --------------------------------------------------------------------------------------------
# Layer presets (pure functions of the layout, so check_supported can validate them early)
# --------------------------------------------------------------------------------------------

ZECON_BLOCK_PRESETS: dict[str, Callable[[ModelLayout], tuple[int, ...]]] = {
    # ZeCon's own choice (its UNet's input blocks 0,2,5,8,11): the first conv and each level's last block.
    "all levels (ZeCon: input blocks 0,2,5,8,11 on SD1.5)": lambda lay: (0, *lay.level_ends),
    # Stops the UNet after the second level: the cheapest, fine structure and edges.
    "fine levels (input blocks 0,2,5; cheapest)": lambda lay: (0, *lay.level_ends[:2]),
    # The two deepest levels: object layout rather than edges (runs the whole encoder).
    "coarse levels (input blocks 8,11 on SD1.5)": lambda lay: tuple(lay.level_ends[-2:]),
    # DiT presets (losses/dit_presets.py); refused on a UNet.
    **{name: None for name in dit_presets.ZECON_DIT_PRESETS},
}
DEFAULT_ZECON_MODEL_PRESET = next(iter(ZECON_BLOCK_PRESETS))


def _decoder(lay: ModelLayout) -> tuple[AttentionKey, ...]:
    return tuple(k for k in lay.attn1 if k[0] == "output")


AD_LAYER_PRESETS: dict[str, Callable[[ModelLayout], tuple[AttentionKey, ...]]] = {
    # The paper's layers: the last 6 self-attentions of the UNet (SD1.5: output blocks 6-11, its
    # self_layers 10..15; SDXL: output blocks 3-5, self_layers 64..69).
    "decoder, last 6 self-attentions (paper)": lambda lay: _decoder(lay)[-6:],
    "decoder, all self-attentions": _decoder,
    "encoder + middle self-attentions": lambda lay: tuple(k for k in lay.attn1 if k[0] != "output"),
    "all self-attentions": lambda lay: lay.attn1,
    **{name: None for name in dit_presets.AD_DIT_PRESETS},
}
DEFAULT_AD_PRESET = next(iter(AD_LAYER_PRESETS))


def resolve_zecon_blocks(preset: str, layout: ModelLayout, who: str = "ZeCon (model features)") -> tuple[int, ...]:
    """The input blocks a ZeCon preset names on this model (sorted, unique); ValueError if none."""
    if preset not in ZECON_BLOCK_PRESETS:
        raise ValueError(f"{who}: unknown layer preset {preset!r}; choose one of {list(ZECON_BLOCK_PRESETS)}")
    if layout.blocks:  # a DiT: indices into its blocks in forward order
        return dit_presets.dit_zecon_blocks(preset, len(layout.blocks), who, layout.family)
    if ZECON_BLOCK_PRESETS[preset] is None:
        raise ValueError(f"{who}: the preset {preset!r} is for DiT models; on this {layout.family} UNet choose one of "
                         f"{[k for k, v in ZECON_BLOCK_PRESETS.items() if v is not None]}")
    blocks = tuple(sorted({b for b in ZECON_BLOCK_PRESETS[preset](layout) if 0 <= b < layout.input_blocks}))
    if not blocks:
        raise ValueError(f"{who}: the preset {preset!r} names no input block of this {layout.family} model")
    return blocks


def resolve_ad_layers(preset: str, layout: ModelLayout, who: str = "Attention Distillation") -> tuple[AttentionKey, ...]:
    """The self-attention layers an AD preset names on this model (forward order); ValueError if none."""
    if preset not in AD_LAYER_PRESETS:
        raise ValueError(f"{who}: unknown layer preset {preset!r}; choose one of {list(AD_LAYER_PRESETS)}")
    if layout.blocks:  # a DiT: the joint attention of whole blocks
        return tuple((*layout.blocks[i], 0) for i in dit_presets.dit_ad_layers(preset, len(layout.blocks), who, layout.family))
    if AD_LAYER_PRESETS[preset] is None:
        raise ValueError(f"{who}: the preset {preset!r} is for DiT models; on this {layout.family} UNet choose one of "
                         f"{[k for k, v in AD_LAYER_PRESETS.items() if v is not None]}")
    layers = AD_LAYER_PRESETS[preset](layout)
    if not layers:
        raise ValueError(f"{who}: the preset {preset!r} names no self-attention layer of this {layout.family} "
                         "model; pick another preset")
    return tuple(layers)


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _as_latent_batch(latent: Tensor, name: str) -> Tensor:
    """Validate a LATENT's samples (R,C,h,w) and return an ordinary float32 copy."""
    if not isinstance(latent, Tensor):
        raise ValueError(f"{name}: expected a latent tensor, got {type(latent).__name__}")
    if latent.dim() == 3:
        latent = latent.unsqueeze(0)
    if latent.dim() == 5 and latent.shape[2] == 1:  # Qwen-Image's one-frame latents (B,C,1,h,w)
        latent = latent[:, :, 0]
    if latent.dim() != 4 or latent.numel() == 0:
        raise ValueError(f"{name}: expected an image latent (B,C,h,w), got shape {tuple(latent.shape)} "
                         "(video/audio latents of more than one frame are not supported)")
    with torch.inference_mode(False):
        out = latent.detach().float().clone().contiguous()
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{name} contains NaN or Inf values; check the node that produced it")
    return out


def _split_heads(t: Tensor, heads: int) -> Tensor:
    """(B, N, heads*dim) -> (B, heads, N, dim)."""
    b, n, hd = t.shape
    return t.view(b, n, heads, hd // heads).transpose(1, 2)


def _check_x0(x0: Tensor, who: str) -> None:
    if not (x0.dim() == 4 or (x0.dim() == 5 and x0.shape[2] == 1)):
        raise ValueError(f"{who}: expected an image latent (B,C,h,w) or a one-frame latent (B,C,1,h,w), "
                         f"got shape {tuple(x0.shape)}")


def ad_loss(out: Tensor, q: Tensor, k_ref: Tensor, v_ref: Tensor, heads: int, scale: float = 1.0,
            token_weight: Tensor | None = None, k_keep: Tensor | None = None, v_keep: Tensor | None = None) -> Tensor:
    """Per-sample AD loss (B,) of one layer: mean |out - Attn(scale*q, k_ref, v_ref)| (target detached).

    ``out``/``q`` are the output's attention result and queries (B, N, heads*dim), ``k_ref``/``v_ref``
    the reference's keys/values (B, N_ref, heads*dim; N_ref may differ from N). ``token_weight``
    (B, N) restricts the mean to (weighted) output tokens. ``k_keep``/``v_keep`` (B, N_txt, heads*dim):
    keys/values the target attends to beside the reference's (a DiT's text tokens, as in ``out``).
    """
    qh = _split_heads(q, heads)
    if k_keep is not None and v_keep is not None:
        k_ref = torch.cat([k_keep.to(k_ref.dtype), k_ref], dim=1)
        v_ref = torch.cat([v_keep.to(v_ref.dtype), v_ref], dim=1)
    with torch.no_grad():
        target = F.scaled_dot_product_attention(qh * scale, _split_heads(k_ref, heads).to(qh.dtype),
                                                _split_heads(v_ref, heads).to(qh.dtype))
    err = (_split_heads(out, heads).float() - target.float()).abs().mean(dim=(1, 3))  # (B, N)
    if token_weight is None:
        return err.mean(dim=1)
    w = token_weight.to(err.dtype)
    return (err * w).sum(dim=1) / (w.sum(dim=1) + 1e-8)


def sample_locations(generator: torch.Generator, b: int, hw: int, n: int, probs: Tensor | None) -> Tensor:
    """(B, n') flat location indices into an h*w grid: one shared random set, or per-sample inside a mask.

    ``probs`` (M, h*w) are sampling weights per mask entry (sample i uses entry i % M); n' is n capped
    by the grid and by the smallest mask support.
    """
    if probs is None:
        k = min(n, hw)
        return torch.randperm(hw, generator=generator)[:k].unsqueeze(0).expand(b, k)
    m = probs.shape[0]
    rows = [probs[i % m] for i in range(b)]
    rows = [r if bool((r > 0).any()) else torch.ones_like(r) for r in rows]  # the mask vanished at this size
    k = min([n, *(int((r > 0).sum()) for r in rows)])
    return torch.stack([torch.multinomial(r, k, replacement=False, generator=generator) for r in rows])


class _ModelFeatureTerm(LatentGuidanceLoss):
    """Shared plumbing: a reference latent (VAE space) and a per-run cache of reference features."""

    node_name: str = "model-feature term"

    def __init__(self, reference: Tensor, name: str, weight: float, mask: Tensor | None, seed: int,
                 recompute: bool = False, **window: float) -> None:
        super().__init__(weight=weight, mask=mask, seed=seed, **window)
        self.register_buffer("reference", _as_latent_batch(reference, name), persistent=False)
        # On a DiT: the gradient pass keeps each block's inputs only and recomputes the block in the backward.
        self.recompute = bool(recompute)

    def reset_rng(self, seed: int) -> None:
        # Called once per sampling run (and per measurement): reference features computed with the
        # previous run's model, conditioning or seed must not be reused.
        super().reset_rng(seed)
        self._cache.clear()
        self._host_cache.clear()

    def reference_at(self, probe: ModelProbe, size: tuple[int, int] | None, device: torch.device,
                     ndim: int = 4) -> Tensor:
        """The reference latents in model space (R,C,h,w), stretched to ``size`` when one is given;
        ``ndim`` 5: with the frame axis of a one-frame latent (R,C,1,h,w)."""
        ref = self.reference.to(device)
        if size is not None and tuple(ref.shape[-2:]) != tuple(size):
            ref = resize_constant(ref, tuple(size))
        if ndim == 5:
            ref = ref.unsqueeze(2)
        return probe.to_model_space(ref).float()

    def token_weights(self, hw: tuple[int, int], b: int, device: torch.device) -> Tensor | None:
        """The mask resized to a token grid and flattened: (B, h*w), or None."""
        m = self.mask_at(hw, b, device)
        return None if m is None else m.flatten(1)


# --------------------------------------------------------------------------------------------
# ZeCon on the UNet encoder
# --------------------------------------------------------------------------------------------


class ModelZeConLoss(_ModelFeatureTerm):
    """ZeCon's PatchNCE on the diffusion UNet's input-block features of x0 vs the content latent.

    Both latents are noised to the model's lowest noise level (``probe.sigma_min``, ZeCon's t=0) with
    the same seeded noise (fixed for a run), and run through the model up to the deepest chosen input
    block. Content features are computed once per run and cached; the output's features carry the
    gradient to x0. Locations: N per block, the same for content and output, fresh each evaluation
    from the term's generator (inside the mask when one is given); content features are detached.
    """

    kind = "zecon_content"
    node_name = "ZeCon Content Loss (Style Guidance)"

    def __init__(self, content: Tensor, preset: str = DEFAULT_ZECON_MODEL_PRESET, num_patches: int = 256,
                 tau: float = 0.07, weight: float = 1.0, mask: Tensor | None = None, seed: int = 0,
                 recompute: bool = False, **window: float) -> None:
        if preset not in ZECON_BLOCK_PRESETS:
            raise ValueError(f"{self.node_name}: unknown layer preset {preset!r}; choose one of {list(ZECON_BLOCK_PRESETS)}")
        if int(num_patches) < 2:
            raise ValueError(f"{self.node_name}: num_patches must be at least 2 (one positive, one negative), got {num_patches}")
        if not float(tau) > 0:
            raise ValueError(f"{self.node_name}: tau must be positive, got {tau}")
        super().__init__(content, "content latent", weight, mask, seed, recompute, **window)
        self.preset = preset
        self.num_patches = int(num_patches)
        self.tau = float(tau)

    def blocks(self, layout: ModelLayout) -> tuple[int, ...]:
        """The input blocks this term reads on a model with ``layout``."""
        return resolve_zecon_blocks(self.preset, layout, self.node_name)

    def _noise(self, probe: ModelProbe, shape: torch.Size, device: torch.device) -> Tensor:
        # Deterministic for a run (sampling seed, node seed): content and output see the same noise.
        gen = torch.Generator().manual_seed(derive_seed(self.seed, int(probe.seed), 0x2EC0))
        return torch.randn(tuple(shape), generator=gen).to(device)

    def content_features(self, probe: FeatureProbe, x0_shape: torch.Size, device: torch.device) -> dict[int, Tensor]:
        """Detached content features per block, for a batch shaped like x0 (cached for the run)."""
        b, (h, w) = x0_shape[0], x0_shape[-2:]
        blocks = self.blocks(probe.layout())
        sigma = float(probe.sigma_min)

        def make() -> dict[int, Tensor]:
            content = pair(self.reference_at(probe, (h, w), device, len(x0_shape)), b)
            x = probe.noised(content, self._noise(probe, x0_shape, device), sigma)
            return {k: v.detach() for k, v in probe.input_block_features(x, sigma, blocks).items()}

        return self.cached(("content_feats", probe.cache_token, tuple(x0_shape), str(device)), make)

    def _locations(self, b: int, h: int, w: int) -> Tensor:
        probs = None
        if self.mask is not None:
            probs = self.cached(("zecon_probs", h, w),
                                lambda: resize_constant(self.mask.unsqueeze(1).cpu(), (h, w)).flatten(1), host=True)
        return sample_locations(self.generator, b, h * w, self.num_patches, probs)

    def forward_latent(self, x0: Tensor, probe: FeatureProbe) -> Tensor:
        """Per-sample PatchNCE loss (B,) summed over the chosen input blocks."""
        _check_x0(x0, self.node_name)
        blocks = self.blocks(probe.layout())
        targets = self.content_features(probe, x0.shape, x0.device)
        sigma = float(probe.sigma_min)
        x = probe.noised(x0, self._noise(probe, x0.shape, x0.device).to(x0.dtype), sigma)
        feats = probe.input_block_features(x, sigma, blocks, recompute=self.recompute)
        total = x0.new_zeros(x0.shape[0], dtype=torch.float32)
        for blk in blocks:
            f, t = feats[blk], targets[blk]
            idx = self._locations(f.shape[0], f.shape[-2], f.shape[-1]).to(f.device)
            total = total + patch_nce(f, t.to(f.device), idx, self.tau)
        return total

    def describe(self) -> str:
        r, c, h, w = self.reference.shape
        mask = "none" if self.mask is None else "x".join(str(s) for s in self.mask.shape)
        return (f"{type(self).__name__}(content latent {r}x{c}x{h}x{w}, preset={self.preset!r}, "
                f"patches={self.num_patches}, tau={self.tau:g}, seed={self.seed}, mask={mask}"
                f"{', recompute' if self.recompute else ''}{self.window_text()})")


# --------------------------------------------------------------------------------------------
# Attention Distillation
# --------------------------------------------------------------------------------------------


class AttentionDistillationLoss(_ModelFeatureTerm):
    """Attention Distillation's style loss on the model's own self-attention.

    Per guided evaluation: noise (fresh from the term's generator, repeatable per run) brings the
    style latent and x0 to the current sigma (the same noise when their sizes match; style r uses the
    output's noise row r % B); a no-grad pass over the style gives K_s, V_s; a grad pass over the
    re-noised x0 gives Q, K, V and the model's own result Attn(Q, K, V) at each chosen layer. The loss
    per layer is mean |Attn(Q,K,V) - Attn(scale*Q, K_s, V_s)| over heads, channels and (masked)
    tokens, with the second term a detached target as in the paper; mean over layers. The style
    latent keeps its own size (attention takes any number of keys).
    """

    kind = "attention_distillation_style"
    node_name = "Attention Distillation Style Loss (Style Guidance)"

    def __init__(self, style: Tensor, preset: str = DEFAULT_AD_PRESET, weight: float = 1.0,
                 mask: Tensor | None = None, seed: int = 0, attn_scale: float = 1.0, recompute: bool = False,
                 **window: float) -> None:
        if preset not in AD_LAYER_PRESETS:
            raise ValueError(f"{self.node_name}: unknown layer preset {preset!r}; choose one of {list(AD_LAYER_PRESETS)}")
        if not float(attn_scale) > 0:
            raise ValueError(f"{self.node_name}: attn_scale must be positive, got {attn_scale}")
        super().__init__(style, "style latent", weight, mask, seed, recompute, **window)
        self.preset = preset
        self.attn_scale = float(attn_scale)

    def layers(self, layout: ModelLayout) -> tuple[AttentionKey, ...]:
        """The self-attention layers this term reads on a model with ``layout``."""
        return resolve_ad_layers(self.preset, layout, self.node_name)

    def forward_latent(self, x0: Tensor, probe: FeatureProbe) -> Tensor:
        """Per-sample AD loss (B,), mean over the chosen layers."""
        _check_x0(x0, self.node_name)
        layers = self.layers(probe.layout())
        sigma = float(probe.sigma)
        b = x0.shape[0]
        style = self.reference_at(probe, None, x0.device, x0.dim())
        r = style.shape[0]
        noise = torch.randn(tuple(x0.shape), generator=self.generator).to(x0.device)
        if style.shape[1:] == x0.shape[1:]:
            style_noise = noise[pair_index(r, b, noise.device)]
        else:
            style_noise = torch.randn(tuple(style.shape), generator=self.generator).to(x0.device)
        with torch.no_grad():
            ref = probe.self_attention(probe.noised(style, style_noise, sigma), sigma, layers, reference=True)
        caps = probe.self_attention(probe.noised(x0, noise.to(x0.dtype), sigma), sigma, layers, recompute=self.recompute)
        total = x0.new_zeros(b, dtype=torch.float32)
        for key in layers:
            c, s = caps[key], ref[key]
            weight = self.token_weights(c.hw, b, c.q.device)
            total = total + ad_loss(c.out, c.q, pair(s.k, b).to(c.q.device), pair(s.v, b).to(c.q.device), c.heads,
                                    self.attn_scale, weight, c.k_keep, c.v_keep)
        return total / len(layers)

    def describe(self) -> str:
        r, c, h, w = self.reference.shape
        mask = "none" if self.mask is None else "x".join(str(s) for s in self.mask.shape)
        return (f"{type(self).__name__}(style latent {r}x{c}x{h}x{w}, preset={self.preset!r}, "
                f"attn_scale={self.attn_scale:g}, seed={self.seed}, mask={mask}"
                f"{', recompute' if self.recompute else ''}{self.window_text()})")
