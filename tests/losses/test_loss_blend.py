"""Blends of several styles (losses/blend.py): one target, the weighted mean of the per-image targets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from losses import CLIPStyleLoss, GramStyleLoss, gram_matrix
from losses.blend import blend_targets, parse_blend_weights, resolve_blend_weights


def test_weights_parse_and_normalise() -> None:
    assert parse_blend_weights("1, 0.5") == (1.0, 0.5)
    assert parse_blend_weights("2 1;1") == (2.0, 1.0, 1.0)
    assert parse_blend_weights("") == () and parse_blend_weights(None) == ()
    assert resolve_blend_weights("1, 0.5", 2).tolist() == pytest.approx([2 / 3, 1 / 3])
    assert resolve_blend_weights("", 4).tolist() == pytest.approx([0.25] * 4)
    assert resolve_blend_weights([3, 1], 2).tolist() == pytest.approx([0.75, 0.25])


@pytest.mark.parametrize(("text", "count", "match"), [
    ("1, x", 2, "'x' is not a number"), ("1, -1", 2, ">= 0"), ("0, 0", 2, "all weights are 0"),
    ("1, 2, 3", 2, "3 weight.*batch of 2"), ("nan, 1", 2, "finite"),
])
def test_bad_weights_are_refused_naming_the_input(text, count, match) -> None:
    with pytest.raises(ValueError, match=f"blend_weights: .*{match}|blend_weights.*{match}"):
        resolve_blend_weights(text, count)


def test_blend_is_the_weighted_mean() -> None:
    t = torch.randn(3, 4, 4)
    w = resolve_blend_weights("1, 2, 1", 3)
    expected = (t[0] + 2 * t[1] + t[2]) / 4
    assert torch.allclose(blend_targets(t, w)[0], expected, atol=1e-6)


def test_gram_blend_target_is_the_mean_of_grams_and_a_one_hot_blend_is_that_style(vgg, images) -> None:
    a, b = images["texture"](1), images["texture"](2)
    both = torch.cat([a, b])
    only_a = GramStyleLoss(a, vgg)
    one_hot = GramStyleLoss(both, vgg, style_batch="blend", blend_weights="1, 0")
    mix = GramStyleLoss(both, vgg, style_batch="blend", blend_weights="3, 1")
    paired = GramStyleLoss(both, vgg)
    x = images["smooth"](5, batch=2)
    assert torch.allclose(one_hot(x), only_a(x), rtol=1e-5, atol=1e-12)
    feats = vgg.reference_features(both, mix.layers)
    for layer in mix.layers:
        g = gram_matrix(feats[layer])
        assert torch.allclose(mix._targets[layer][0], 0.75 * g[0] + 0.25 * g[1], rtol=1e-5, atol=1e-9)
    # pairing is unchanged: sample 1 follows style b
    assert float(paired(x)[1]) == pytest.approx(float(GramStyleLoss(b, vgg)(x)[1]), rel=1e-5)
    assert "blend 0.75:0.25" in mix.describe()


def test_clip_blend_target_is_the_normalised_weighted_mean(clip_encoder, images) -> None:
    both = torch.cat([images["texture"](1, 64), images["smooth"](3, 64)])
    mix = CLIPStyleLoss(both, clip_encoder, num_cutouts=0, style_batch="blend", blend_weights="1, 3")
    emb = F.normalize(clip_encoder(both).float(), dim=-1)
    expected = F.normalize(0.25 * emb[0] + 0.75 * emb[1], dim=-1)
    assert mix.style_target.shape[0] == 1
    assert torch.allclose(mix.style_target[0], expected, atol=1e-5)


def test_weights_without_blend_and_a_wrong_count_are_refused(vgg, images) -> None:
    both = torch.cat([images["texture"](1), images["texture"](2)])
    with pytest.raises(ValueError, match="only with style_batch='blend'"):
        GramStyleLoss(both, vgg, blend_weights="1, 2")
    with pytest.raises(ValueError, match="1 weight.*batch of 2"):
        GramStyleLoss(both, vgg, style_batch="blend", blend_weights="1")
    with pytest.raises(ValueError, match="style_batch must be one of"):
        GramStyleLoss(both, vgg, style_batch="mix")
