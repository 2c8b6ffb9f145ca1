"""CombinedLoss: shared extraction, zero-weight terms, immutability, totals, devices, inference mode."""

from __future__ import annotations

import pytest
import torch

from headless.testbed.standins.loss_nets import random_vgg19_features
from losses import (
    CLIPStyleLoss,
    CombinedLoss,
    ContentMSELoss,
    GramStyleLoss,
    LossResult,
    RangeLoss,
    VGGContentLoss,
    ZeConLoss,
)


def _vgg_terms(vgg, images, **zecon):
    content = images["smooth"](1)
    style = images["texture"](2)
    return [
        VGGContentLoss(content, vgg, layers=("relu4_2",), weight=2.0),
        GramStyleLoss(style, vgg, weight=1e6),
        ZeConLoss(content, vgg, weight=0.5, **zecon),
    ]


def test_shared_extractor_runs_once_per_evaluation(fresh_vgg, images) -> None:
    terms = _vgg_terms(fresh_vgg, images)
    loss = CombinedLoss([ContentMSELoss(images["smooth"](1)), *terms])
    x = images["noise"](3).requires_grad_(True)
    for _ in range(2):
        before = fresh_vgg.calls
        result = loss(x)
        assert fresh_vgg.calls - before == 1
        result.total.sum().backward()
    # The shared features give the same values as each term run on its own.
    loss.reset_rng(11)
    shared = loss(x).terms
    loss.reset_rng(11)
    for name, term in zip(loss.names, loss.terms, strict=True):
        alone = term(x)
        assert torch.allclose(shared[name], alone, rtol=1e-5, atol=1e-7), name


def test_two_extractors_each_run_once(images) -> None:
    a, b = random_vgg19_features(0), random_vgg19_features(1)
    loss = CombinedLoss(
        [GramStyleLoss(images["texture"](2), a, layers=("relu1_1",)), GramStyleLoss(images["texture"](2), b)]
    )
    ca, cb = a.calls, b.calls
    loss(images["noise"](3))
    assert (a.calls - ca, b.calls - cb) == (1, 1)


def test_zero_weight_term_costs_nothing(fresh_vgg, images) -> None:
    content = images["smooth"](1)
    gram = GramStyleLoss(images["texture"](2), fresh_vgg, weight=0.0)
    loss = CombinedLoss([ContentMSELoss(content), gram])
    assert len(loss) == 2 and loss.active_terms == (loss.terms[0],)
    before = fresh_vgg.calls
    result = loss(images["noise"](3))
    assert fresh_vgg.calls == before  # the Gram term's extractor never ran
    assert list(result.terms) == ["pixel_mse_content"] and list(result.weights) == ["pixel_mse_content"]
    assert "gram_style: weight=0" in loss.describe() and "off" in loss.describe()


def test_empty_chain_gives_a_connected_zero(images) -> None:
    loss = CombinedLoss([RangeLoss(weight=0.0)])
    assert loss.is_empty() and not CombinedLoss([RangeLoss()]).is_empty()
    x = images["noise"](3, batch=2).requires_grad_(True)
    result = loss(x)
    assert torch.equal(result.total, torch.zeros(2)) and result.terms == {}
    (grad,) = torch.autograd.grad(result.total.sum(), x)
    assert torch.equal(grad, torch.zeros_like(x))
    assert CombinedLoss().describe() == "(no loss terms)"


def test_with_term_and_merge_do_not_mutate(images) -> None:
    content = images["smooth"](1)
    first = CombinedLoss([ContentMSELoss(content)])
    second = first.with_term(ContentMSELoss(content, weight=3.0))
    third = second.with_term(RangeLoss())
    assert len(first) == 1 and len(second) == 2 and len(third) == 3
    assert first.names == ("pixel_mse_content",)
    assert second.names == ("pixel_mse_content", "pixel_mse_content#2")
    assert [t.name for t in second.terms] == ["pixel_mse_content", "pixel_mse_content"]  # terms are not renamed
    merged = second.merge(CombinedLoss([ContentMSELoss(content)]))
    assert merged.names == ("pixel_mse_content", "pixel_mse_content#2", "pixel_mse_content#3")
    assert len(second) == 2
    assert list(merged) == [*second.terms, merged.terms[2]]
    with pytest.raises(TypeError):
        CombinedLoss([torch.nn.Identity()])  # type: ignore[list-item]


def test_total_is_weighted_sum_of_reported_terms(vgg, images) -> None:
    terms = [ContentMSELoss(images["smooth"](1), weight=0.7), *_vgg_terms(vgg, images), RangeLoss(weight=5.0)]
    loss = CombinedLoss(terms)
    x = (images["noise"](3, batch=2) * 1.4 - 0.2).requires_grad_(True)
    result = loss(x)
    assert isinstance(result, LossResult)
    assert set(result.terms) == {"pixel_mse_content", "vgg_content", "gram_style", "vgg_patchnce_content", "range"}
    expected = sum(result.weights[n] * v for n, v in result.terms.items())
    assert result.total.shape == (2,) and result.total.dtype == torch.float32
    assert torch.allclose(result.total, expected)
    assert all(v.shape == (2,) and bool((v > 0).all()) for v in result.terms.values())
    assert result.weights["gram_style"] == 1e6


def test_reset_rng_makes_runs_repeatable(vgg, clip_encoder, images) -> None:
    content, style = images["smooth"](1), images["texture"](2, size=48)
    loss = CombinedLoss([ZeConLoss(content, vgg, num_patches=16), CLIPStyleLoss(style, clip_encoder, num_cutouts=3)])
    x = images["noise"](3)
    loss.reset_rng(5)
    a = loss(x).terms
    b = loss(x).terms  # the generators moved on: new patches and cutouts
    loss.reset_rng(5)
    c = loss(x).terms
    loss.reset_rng(6)
    d = loss(x).terms
    for name in a:
        assert torch.equal(a[name], c[name])
        assert not torch.equal(a[name], b[name])
        assert not torch.equal(a[name], d[name])


def test_to_dtype_keeps_references_float32(fresh_vgg, images) -> None:
    content, style = images["smooth"](1), images["texture"](2)
    gram = GramStyleLoss(style, fresh_vgg, mask=torch.ones(32, 32))
    vggc = VGGContentLoss(content, fresh_vgg)
    loss = CombinedLoss([gram, vggc]).to("cpu", torch.bfloat16)
    assert next(fresh_vgg.parameters()).dtype == torch.bfloat16
    assert gram.mask.dtype == torch.float32 and vggc.content.dtype == torch.float32
    assert all(t.dtype == torch.float32 for t in gram._targets.values())
    result = loss(images["noise"](3))
    assert result.total.dtype == torch.float32 and bool(torch.isfinite(result.total).all())
    assert all(v.dtype == torch.float32 for v in vggc.targets_at((32, 32)).values())


def test_built_under_inference_mode_then_differentiated(images) -> None:
    # ComfyUI runs nodes under torch.inference_mode(): references, targets and even the
    # extractor are created there, and the sampler later needs gradients outside it.
    with torch.inference_mode():
        vgg = random_vgg19_features(0)
        content, style = images["smooth"](1), images["texture"](2)
        mask = torch.ones(32, 32)
        assert content.is_inference()
        loss = CombinedLoss(
            [
                ContentMSELoss(content, mask=mask),
                VGGContentLoss(content, vgg),
                ZeConLoss(content, vgg, num_patches=8),
                GramStyleLoss(style, vgg, mask=mask),
            ]
        ).to("cpu", torch.float32)
    with torch.inference_mode(False), torch.enable_grad():
        x = images["noise"](3).requires_grad_(True)
        (grad,) = torch.autograd.grad(loss(x).total.sum(), x)
    assert grad.shape == x.shape and bool(torch.isfinite(grad).all()) and grad.abs().sum() > 0


def test_device_moves_route_every_tensor(images) -> None:
    # No GPU here: the "meta" device stands in for one. Buffers, cached targets and the
    # extractor follow the move; the ZeCon sampling weights stay next to the CPU generator.
    vgg = random_vgg19_features(0)
    mask = torch.zeros(32, 32)
    mask[:, :20] = 1.0
    zecon = ZeConLoss(images["smooth"](1), vgg, mask=mask, num_patches=8)
    zecon(images["noise"](3))  # fills the per-size caches
    assert zecon._host_cache and zecon._cache
    CombinedLoss([zecon]).to("meta")
    assert zecon.content.device.type == "meta" and zecon.mask.device.type == "meta"
    assert next(vgg.parameters()).device.type == "meta"
    assert all(t.device.type == "meta" for t in zecon.targets_at((32, 32)).values())
    assert all(t.device.type == "cpu" for t in zecon._host_cache.values())
    assert zecon.content.dtype == torch.float32
