"""Input validation helpers and the errors loss constructors give for bad references."""

from __future__ import annotations

import pytest
import torch

from losses import (
    ContentMSELoss,
    GramStyleLoss,
    as_image_batch,
    as_mask_batch,
    comfy_image_to_nchw,
    comfy_mask_to_bhw,
    derive_seed,
    pair_index,
)


def test_single_image_gets_a_batch_dim() -> None:
    out = as_image_batch(torch.rand(3, 8, 10), "content")
    assert out.shape == (1, 3, 8, 10) and out.dtype == torch.float32


def test_grayscale_is_repeated_to_rgb() -> None:
    gray = torch.rand(2, 1, 8, 8)
    out = as_image_batch(gray, "content")
    assert out.shape == (2, 3, 8, 8)
    for c in range(3):
        assert torch.equal(out[:, c], gray[:, 0])


def test_alpha_is_dropped() -> None:
    rgba = torch.rand(1, 4, 8, 8)
    out = as_image_batch(rgba, "style")
    assert torch.equal(out, rgba[:, :3])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_any_float_dtype_becomes_float32(dtype: torch.dtype) -> None:
    x = torch.rand(1, 3, 4, 4).to(dtype)
    out = as_image_batch(x, "img")
    assert out.dtype == torch.float32
    assert torch.allclose(out, x.float())


def test_uint8_is_scaled() -> None:
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    assert torch.allclose(as_image_batch(x, "img"), torch.ones(1, 3, 2, 2))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_or_inf_names_the_input(bad: float) -> None:
    x = torch.rand(1, 3, 8, 8)
    x[0, 1, 2, 3] = bad
    with pytest.raises(ValueError, match=r"^my content image contains NaN or Inf values; check the node"):
        as_image_batch(x, "my content image")


@pytest.mark.parametrize("shape", [(8, 8), (1, 1, 3, 8, 8), (3,)])
def test_wrong_rank_is_rejected(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"^style image: expected an image batch"):
        as_image_batch(torch.rand(*shape), "style image")


@pytest.mark.parametrize("channels", [2, 5])
def test_wrong_channel_count_is_rejected(channels: int) -> None:
    with pytest.raises(ValueError, match=rf"style image: expected 1, 3 or 4 channels.*got {channels}"):
        as_image_batch(torch.rand(1, channels, 8, 8), "style image")


def test_non_tensor_and_empty_are_rejected() -> None:
    with pytest.raises(ValueError, match="img: expected an image tensor"):
        as_image_batch([[0.0]], "img")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="img: the tensor is empty"):
        as_image_batch(torch.rand(0, 3, 8, 8), "img")


def test_comfy_nhwc_to_nchw() -> None:
    img = torch.rand(2, 6, 10, 3)  # ComfyUI IMAGE: B,H,W,C
    out = comfy_image_to_nchw(img, "image")
    assert out.shape == (2, 3, 6, 10)
    assert torch.equal(out, img.permute(0, 3, 1, 2))
    assert out.is_contiguous()


def test_comfy_alpha_grayscale_and_single() -> None:
    rgba = torch.rand(1, 6, 10, 4)
    assert torch.equal(comfy_image_to_nchw(rgba, "image"), rgba[..., :3].permute(0, 3, 1, 2))
    gray = torch.rand(1, 6, 10, 1)
    out = comfy_image_to_nchw(gray, "image")
    assert out.shape == (1, 3, 6, 10) and torch.equal(out[:, 2], gray[..., 0])
    assert comfy_image_to_nchw(torch.rand(6, 10, 3), "image").shape == (1, 3, 6, 10)


def test_comfy_image_errors_name_the_input() -> None:
    bad = torch.rand(1, 6, 10, 3)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="^style image contains NaN or Inf values"):
        comfy_image_to_nchw(bad, "style image")
    with pytest.raises(ValueError, match=r"^style image: expected a ComfyUI IMAGE \(B,H,W,C\) with C"):
        comfy_image_to_nchw(torch.rand(1, 3, 16, 16), "style image")  # NCHW by mistake
    with pytest.raises(ValueError, match=r"^style image: expected a ComfyUI IMAGE"):
        comfy_image_to_nchw(torch.rand(16, 16), "style image")


def test_masks() -> None:
    m = comfy_mask_to_bhw(torch.rand(16, 12), "mask")
    assert m.shape == (1, 16, 12) and m.dtype == torch.float32
    assert comfy_mask_to_bhw(torch.rand(2, 16, 12), "mask").shape == (2, 16, 12)
    assert as_mask_batch(torch.rand(2, 1, 16, 12), "mask").shape == (2, 16, 12)
    clamped = as_mask_batch(torch.tensor([[-1.0, 0.5, 2.0]]), "mask")
    assert torch.equal(clamped, torch.tensor([[[0.0, 0.5, 1.0]]]))
    with pytest.raises(ValueError, match="style mask: mask entry 1 is empty"):
        comfy_mask_to_bhw(torch.stack([torch.ones(4, 4), torch.zeros(4, 4)]), "style mask")
    nan = torch.ones(4, 4)
    nan[1, 1] = float("nan")
    with pytest.raises(ValueError, match="^style mask contains NaN or Inf"):
        comfy_mask_to_bhw(nan, "style mask")
    with pytest.raises(ValueError, match="style mask: expected a mask"):
        comfy_mask_to_bhw(torch.ones(1, 2, 4, 4), "style mask")


def test_loss_constructors_name_their_inputs(vgg) -> None:
    bad = torch.rand(1, 3, 16, 16)
    bad[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="^content image contains NaN or Inf"):
        ContentMSELoss(bad)
    with pytest.raises(ValueError, match="^style image contains NaN or Inf"):
        GramStyleLoss(bad, vgg, layers=("relu1_1",))
    with pytest.raises(ValueError, match="^mask contains NaN or Inf"):
        ContentMSELoss(torch.rand(1, 3, 8, 8), mask=torch.full((8, 8), float("nan")))
    with pytest.raises(ValueError, match="weight must be a finite number"):
        ContentMSELoss(torch.rand(1, 3, 8, 8), weight=float("nan"))
    with pytest.raises(ValueError, match="fit must be one of"):
        ContentMSELoss(torch.rand(1, 3, 8, 8), fit="squash")


def test_generated_batch_shape_is_checked() -> None:
    loss = ContentMSELoss(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"generated images: expected \(B,3,H,W\)"):
        loss(torch.rand(1, 8, 8, 3))


def test_pairing_rule_and_seeds() -> None:
    assert pair_index(5, 2).tolist() == [0, 1, 0, 1, 0]
    assert pair_index(3, 1).tolist() == [0, 0, 0]
    assert derive_seed(1, 2) == derive_seed(1, 2)
    assert len({derive_seed(1, 2), derive_seed(2, 1), derive_seed(1, 3), derive_seed(0, 0)}) == 4
    assert 0 <= derive_seed(-5, 2**70) < 2**63
