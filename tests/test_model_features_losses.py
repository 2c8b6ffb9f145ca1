"""The model-feature terms' maths in plain torch, through a small probe of our own (no ComfyUI).

``ToyProbe`` implements the FeatureProbe protocol with two convolutions as "input blocks" and a
single-head self-attention over their tokens; what the terms do with what a probe returns
(pairing, noise, caching, masks, the AD target) is tested here; the ComfyUI probe itself in
test_model_features.py.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from losses.chain import CombinedLoss
from losses.model_features import (
    AD_LAYER_PRESETS,
    AttentionCapture,
    AttentionDistillationLoss,
    FeatureProbe,
    ModelLayout,
    ModelZeConLoss,
    ad_loss,
    resolve_ad_layers,
    resolve_zecon_blocks,
    sample_locations,
)

pytestmark = pytest.mark.compat  # also run against the newer ComfyUI tree (.ci/run)

LAYOUT = ModelLayout("Toy", 2, (0, 1), (("input", 1, 0), ("output", 0, 0)))


class ToyProbe:
    """A FeatureProbe over a tiny conv net; counts its passes."""

    def __init__(self, sigma: float = 1.0, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(0)
        self.w0 = torch.randn(8, 4, 3, 3, generator=gen) / 6
        self.w1 = torch.randn(8, 8, 3, 3, generator=gen) / 8
        self.wq, self.wk, self.wv = (torch.randn(8, 8, generator=gen) / 3 for _ in range(3))
        self.sigma, self.seed, self.sigma_min = sigma, seed, 0.03
        self.cache_token = ("toy", seed)
        self.passes = 0
        self.recompute_seen: list[bool] = []  # the recompute flag of each pass (the terms' switch reaches the probe)

    def to_model_space(self, latent):
        return latent * 0.5

    def layout(self):
        return LAYOUT

    def noised(self, x0, noise, sigma):
        return x0 + sigma * noise

    def _blocks(self, x):
        self.passes += 1
        h0 = F.conv2d(x, self.w0, padding=1)
        return h0, F.conv2d(h0.relu(), self.w1, stride=2, padding=1)

    def input_block_features(self, x, sigma, blocks, recompute=False):
        self.recompute_seen.append(recompute)
        h = self._blocks(x)
        return {b: h[b] for b in blocks}

    def self_attention(self, x, sigma, layers, reference=False, recompute=False):
        self.recompute_seen.append(recompute)
        out = {}
        for i, key in enumerate(layers):
            h = self._blocks(x)[1 if i == 0 else 0]
            t = h.flatten(2).transpose(1, 2)
            q, k, v = t @ self.wq, t @ self.wk, t @ self.wv
            out[key] = AttentionCapture(q, k, v, F.scaled_dot_product_attention(q, k, v), 1, tuple(h.shape[-2:]))
        return out


def _grad(term, x0, probe):
    x = x0.clone().requires_grad_(True)
    v = term.forward_latent(x, probe)
    (g,) = torch.autograd.grad(v.sum(), x)
    return v.detach(), g


def test_the_toy_probe_follows_the_protocol():
    assert isinstance(ToyProbe(), FeatureProbe)


def test_presets_resolve_and_refuse_unknown_names():
    assert resolve_zecon_blocks("all levels (ZeCon: input blocks 0,2,5,8,11 on SD1.5)", LAYOUT) == (0, 1)
    assert resolve_ad_layers("decoder, last 6 self-attentions (paper)", LAYOUT) == (("output", 0, 0),)
    assert resolve_ad_layers("all self-attentions", LAYOUT) == LAYOUT.attn1
    with pytest.raises(ValueError, match="unknown layer preset"):
        resolve_ad_layers("nope", LAYOUT)
    with pytest.raises(ValueError, match="unknown layer preset"):
        ModelZeConLoss(torch.zeros(1, 4, 8, 8), preset="nope")
    assert len(AD_LAYER_PRESETS) == 7  # 4 UNet presets + 3 DiT ones (refused on a UNet)
    with pytest.raises(ValueError, match="is for DiT models"):
        resolve_ad_layers("early blocks (DiT: the pass stops after them)", LAYOUT)


def test_ad_loss_is_zero_when_the_reference_is_the_output_itself():
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 16, 8, generator=gen) for _ in range(3))
    own = F.scaled_dot_product_attention(q.view(2, 16, 2, 4).transpose(1, 2), k.view(2, 16, 2, 4).transpose(1, 2),
                                         v.view(2, 16, 2, 4).transpose(1, 2)).transpose(1, 2).reshape(2, 16, 8)
    assert torch.allclose(ad_loss(own, q, k, v, heads=2), torch.zeros(2), atol=1e-6)
    other = torch.randn(2, 24, 8, generator=gen)  # another picture, another token count
    assert (ad_loss(own, q, other, other, heads=2) > 1e-3).all()
    # a token mask restricts the mean to the weighted tokens
    w = torch.zeros(2, 16)
    w[:, :4] = 1
    err = ad_loss(own, q, other, other, heads=2, token_weight=w)
    assert torch.allclose(err, ad_loss(own[:, :4], q[:, :4], other, other, heads=2), atol=1e-6)


def test_ad_term_is_zero_for_the_style_itself_and_pairs_by_index():
    probe = ToyProbe()
    styles = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    term = AttentionDistillationLoss(styles, preset="all self-attentions")
    term.reset_rng(0)
    x0 = probe.to_model_space(styles)[[0, 1, 0, 1]]
    v, g = _grad(term, x0, probe)
    # rows 0, 1 meet their own style with the same noise: distance 0; rows 2, 3 share it with other noise
    assert torch.allclose(v[:2], torch.zeros(2), atol=1e-6) and (v[2:] > 1e-4).all()
    assert torch.isfinite(g).all() and g[2:].abs().sum() > 0


def test_ad_term_handles_a_style_of_another_size():
    probe = ToyProbe()
    term = AttentionDistillationLoss(torch.randn(1, 4, 12, 6), seed=3)
    term.reset_rng(0)
    v, g = _grad(term, torch.randn(3, 4, 8, 8), probe)
    assert v.shape == (3,) and (v > 0).all() and torch.isfinite(g).all()


def test_zecon_term_prefers_the_content_and_caches_it_per_run():
    probe = ToyProbe()
    content = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    term = ModelZeConLoss(content, num_patches=16, seed=1)
    term.reset_rng(0)
    same, g = _grad(term, probe.to_model_space(content), probe)
    other, _ = _grad(term, torch.randn(1, 4, 8, 8), probe)
    assert same < other and torch.isfinite(g).all()
    # content features once per run: 1 content pass + 1 output pass, then only output passes
    probe.passes = 0
    term.reset_rng(0)
    for _ in range(3):
        term.forward_latent(probe.to_model_space(content), probe)
    assert probe.passes == 4
    term.reset_rng(1)  # a new run: recomputed
    term.forward_latent(probe.to_model_space(content), probe)
    assert probe.passes == 6


def test_recompute_reaches_the_probe_on_the_gradient_pass_only():
    """The nodes' recompute switch asks the probe to checkpoint the output's pass; the content / style pass (no
    gradient) is asked for nothing, and a term without the switch asks for nothing either."""
    for recompute in (True, False):
        for term in (ModelZeConLoss(torch.randn(1, 4, 8, 8), num_patches=8, recompute=recompute),
                     AttentionDistillationLoss(torch.randn(1, 4, 8, 8), recompute=recompute)):
            probe = ToyProbe()
            term.reset_rng(0)
            _grad(term, torch.randn(1, 4, 8, 8), probe)
            assert probe.recompute_seen == [False, recompute], (type(term).__name__, probe.recompute_seen)
            assert ("recompute" in term.describe()) == recompute


def test_zecon_gradient_reaches_x0_only_through_the_features():
    probe = ToyProbe()
    content = torch.randn(2, 4, 8, 8)
    term = ModelZeConLoss(content, num_patches=8)
    term.reset_rng(0)
    probe.w0 = torch.zeros_like(probe.w0)  # features no longer depend on x0
    _, g = _grad(term, torch.randn(2, 4, 8, 8), probe)
    assert torch.count_nonzero(g) == 0


def test_mask_keeps_zecon_locations_inside_it():
    probs = torch.zeros(1, 64)
    probs[0, 10:20] = 1.0
    idx = sample_locations(torch.Generator().manual_seed(0), 3, 64, 256, probs)
    assert idx.shape == (3, 10) and ((idx >= 10) & (idx < 20)).all()
    mask = torch.zeros(8, 8)
    mask[:4] = 1
    term = ModelZeConLoss(torch.randn(1, 4, 8, 8), mask=mask, num_patches=16)
    term.reset_rng(0)
    v, _ = _grad(term, torch.randn(2, 4, 8, 8), ToyProbe())
    assert torch.isfinite(v).all()


def test_latent_terms_refuse_images_and_chain_like_the_others():
    term = AttentionDistillationLoss(torch.zeros(1, 4, 8, 8))
    with pytest.raises(TypeError, match="latent"):
        term(torch.zeros(1, 3, 16, 16))
    chain = CombinedLoss().with_term(ModelZeConLoss(torch.zeros(1, 4, 8, 8))).with_term(term)
    assert [t.space for t in chain.terms] == ["latent", "latent"]
    with pytest.raises(ValueError, match="image latent"):
        AttentionDistillationLoss(torch.zeros(4, 8))
    with pytest.raises(ValueError, match="NaN"):
        ModelZeConLoss(torch.full((1, 4, 8, 8), float("nan")))
