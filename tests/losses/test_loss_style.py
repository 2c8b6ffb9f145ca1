"""Style terms: Gram, CLIP and range."""

from __future__ import annotations

import pytest
import torch

from losses import CLIPStyleLoss, GramStyleLoss, RangeLoss, gram_matrix


def _grad(loss, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(x).sum(), x)
    return g


# -- Gram ------------------------------------------------------------------------------------------


def test_gram_zero_at_identity_and_grows(vgg, images) -> None:
    style = images["texture"](2)
    loss = GramStyleLoss(style, vgg)
    noise = images["noise"](9) - 0.5
    values = [float(loss(style + a * noise)) for a in (0.0, 0.1, 0.3)]
    assert values[0] < 1e-15
    assert values[0] < values[1] < values[2]


def test_gram_gradient_and_batch(vgg, images) -> None:
    loss = GramStyleLoss(images["texture"](2), vgg)
    x = images["noise"](3, batch=3)
    assert loss(x).shape == (3,)
    g = _grad(loss, x)
    assert g.shape == x.shape and bool(torch.isfinite(g).all()) and g.abs().sum() > 0


def test_gram_definition(vgg, images) -> None:
    f = vgg(images["noise"](1), ["relu1_1"])["relu1_1"]
    c, h, w = f.shape[1:]
    flat = f[0].reshape(c, h * w)
    assert torch.allclose(gram_matrix(f)[0], flat @ flat.T / (h * w), rtol=1e-5, atol=1e-8)
    # A 0/1 mask gives the Gram of the masked region alone (normalised by its own size).
    m = torch.zeros(1, 1, h, w)
    m[..., : w // 2] = 1.0
    assert torch.allclose(gram_matrix(f, m), gram_matrix(f[..., : w // 2]), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("size", [(24, 40), (64, 20), (32, 32)])
def test_gram_accepts_any_style_size(vgg, images, size) -> None:
    style = images["smooth"](2, size=size)
    out = GramStyleLoss(style, vgg)(images["noise"](3, size=40))
    assert out.shape == (1,) and bool(torch.isfinite(out).all()) and float(out) > 0


def test_gram_nearly_invariant_to_tiling_a_seamless_texture(vgg, images) -> None:
    # Gram statistics are spatial averages: a seamless texture tiled 2x2 has (up to the zero
    # padding at the image border) the same statistics as one tile. This holds at layers whose
    # receptive field is small next to the image; a different texture moves them much more.
    tile, other = images["texture"](1), images["texture"](2)
    tiled = tile.repeat(1, 1, 2, 2)
    layers = ("relu1_1", "relu2_1")
    t_tile, t_tiled, t_other = (GramStyleLoss(s, vgg, layers=layers)._targets for s in (tile, tiled, other))
    for layer in layers:
        ref = t_tile[layer].norm()
        assert (t_tiled[layer] - t_tile[layer]).norm() / ref < 0.15
        assert (t_tiled[layer] - t_tile[layer]).norm() < 0.5 * (t_other[layer] - t_tile[layer]).norm()
    # As a loss on those layers, the tiled target still scores the tile as close. (Deeper layers
    # see a 32 px tile as 2x2 cells dominated by the border padding; with Gatys' per-layer
    # normalisation they count fully, so they are left out of this property.)
    near = float(GramStyleLoss(tiled, vgg, layers=layers)(tile))
    far = float(GramStyleLoss(other, vgg, layers=layers)(tile))
    assert near < 0.1 * far


def test_gram_pairs_styles_with_samples(vgg, images) -> None:
    styles = torch.cat([images["texture"](1), images["texture"](2)])
    loss = GramStyleLoss(styles, vgg, layers=("relu1_1", "relu2_1"))
    out = loss(styles[torch.tensor([0, 1, 0, 1])])
    assert out.shape == (4,) and float(out.max()) < 1e-15
    assert bool((loss(styles[torch.tensor([1, 0, 1, 0])]) > 0).all())


def test_gram_mask_keeps_gradient_near_the_region(vgg, images) -> None:
    mask = torch.zeros(48, 48)
    mask[:, :24] = 1.0
    loss = GramStyleLoss(images["texture"](2), vgg, layers=("relu1_1", "relu2_1"), mask=mask)
    g = _grad(loss, images["noise"](3, size=48)).abs().sum(dim=(0, 1, 2))
    # relu2_1 sees about 10 px; with bilinear mask resizing the fringe stays within ~8 px.
    assert torch.equal(g[32:], torch.zeros_like(g[32:]))
    assert bool((g[:20] > 0).all())
    assert g[24:].sum() < 0.1 * g[:24].sum()


def test_gram_style_size_option(vgg, images) -> None:
    loss = GramStyleLoss(images["texture"](2, size=64), vgg, layers=("relu1_1",), style_size=32)
    assert loss.style_shape == (1, 3, 32, 32)


# -- CLIP ------------------------------------------------------------------------------------------


def test_clip_whole_image_identity_is_zero(clip_encoder, images) -> None:
    style = images["texture"](2, size=48)
    for distance in ("spherical", "cosine"):
        loss = CLIPStyleLoss(style, clip_encoder, num_cutouts=0, distance=distance)
        assert float(loss(style)) < 1e-6
        assert float(loss(images["noise"](3, size=48))) > 1e-3


def test_clip_style_scores_itself_closer_than_another_image(clip_encoder, images) -> None:
    style = images["texture"](2, size=64)
    loss = CLIPStyleLoss(style, clip_encoder, num_cutouts=8, seed=1)
    loss.reset_rng(0)
    own = float(loss(style))
    loss.reset_rng(0)
    other = float(loss(images["noise"](3, size=64)))
    assert own < 0.5 * other


def test_clip_grows_with_perturbation_and_has_gradient(clip_encoder, images) -> None:
    style = images["smooth"](2, size=64)
    whole = CLIPStyleLoss(style, clip_encoder, num_cutouts=0)
    noise = images["noise"](9, size=64) - 0.5
    values = [float(whole(style + a * noise)) for a in (0.0, 0.2, 0.6)]
    assert values[0] < values[1] < values[2]
    loss = CLIPStyleLoss(style, clip_encoder, num_cutouts=4)
    x = images["noise"](3, size=(40, 56), batch=2)
    assert loss(x).shape == (2,)
    g = _grad(loss, x)
    assert g.shape == x.shape and bool(torch.isfinite(g).all()) and g.abs().sum() > 0


def test_clip_gradient_finite_at_identity(clip_encoder, images) -> None:
    style = images["smooth"](2, size=64)
    g = _grad(CLIPStyleLoss(style, clip_encoder, num_cutouts=0), style)
    assert bool(torch.isfinite(g).all())


def test_clip_mask_blocks_gradient_outside(clip_encoder, images) -> None:
    # A disc: its bounding box holds unmasked corners, which the grey fill must cut off too.
    yy, xx = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    mask = (((yy - 20) ** 2 + (xx - 22) ** 2) < 12**2).float()
    loss = CLIPStyleLoss(images["texture"](2), clip_encoder, num_cutouts=4, mask=mask)
    g = _grad(loss, images["noise"](3, size=48)).abs().sum(dim=(0, 1))
    assert float(g[mask == 0].sum()) == 0.0 and float(g[mask == 1].sum()) > 0
    # Pixels outside the mask cannot change the value either.
    x = images["noise"](3, size=48)
    y = x.clone()
    y[..., mask == 0] = 0.0
    loss.reset_rng(4)
    a = loss(x)
    loss.reset_rng(4)
    assert torch.equal(loss(y), a)


def test_clip_style_batch_pairs(clip_encoder, images) -> None:
    styles = torch.cat([images["texture"](1, size=64), images["texture"](2, size=64)])
    loss = CLIPStyleLoss(styles, clip_encoder, num_cutouts=0)
    assert float(loss(styles[torch.tensor([0, 1, 0])]).max()) < 1e-6
    assert bool((loss(styles[torch.tensor([1, 0, 1])]) > 1e-4).all())


def test_clip_rejects_bad_settings(clip_encoder, images) -> None:
    style = images["texture"](2)
    with pytest.raises(ValueError, match="distance"):
        CLIPStyleLoss(style, clip_encoder, distance="euclid")
    with pytest.raises(ValueError, match="cut_min"):
        CLIPStyleLoss(style, clip_encoder, cut_min=0.0)
    with pytest.raises(ValueError, match="num_cutouts"):
        CLIPStyleLoss(style, clip_encoder, num_cutouts=-1)


# -- range -----------------------------------------------------------------------------------------


def test_range_loss() -> None:
    loss = RangeLoss()
    assert torch.equal(loss(torch.rand(2, 3, 8, 8)), torch.zeros(2))
    x = torch.full((1, 3, 4, 4), 1.5)
    x[..., :2, :] = -0.5
    assert float(loss(x)) == pytest.approx(0.25)
    assert loss.kind == "range" and loss.extractor is None
    g = _grad(loss, x)
    assert bool((g[..., 2:, :] > 0).all()) and bool((g[..., :2, :] < 0).all())
