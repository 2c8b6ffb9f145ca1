"""ComfyUI's CLIP_VISION made differentiable: same embeddings as encode_image, real gradients."""

from __future__ import annotations

import hashlib
import importlib
from types import SimpleNamespace

import pytest
import torch

KINDS = ("clip", "siglip")


@pytest.fixture(scope="module")
def adapter(pack):
    """The pack's sampler.clip_vision module, imported through the package ComfyUI loaded."""
    return importlib.import_module(f"{pack.__name__}.sampler.clip_vision")


def _clip_vision(comfy, kind: str, seed: int = 0):
    """Run a prompt holding only SGTestClipVision and return the ClipVisionModel it produced."""
    prompt = {"1": {"class_type": "SGTestClipVision", "inputs": {"kind": kind, "seed": seed}}}
    comfy.run(prompt)
    out = comfy.node_output("1")
    obj = out[0][0] if isinstance(out[0], (list, tuple)) else out[0]
    import comfy.clip_vision as ccv

    assert isinstance(obj, ccv.ClipVisionModel)
    return obj


@pytest.fixture(scope="module")
def models(comfy):
    """One tiny ClipVisionModel per kind, made during prompt execution (inference tensors)."""
    return {kind: _clip_vision(comfy, kind) for kind in KINDS}


def _checksum(module: torch.nn.Module) -> str:
    """Hash of every parameter's bytes."""
    h = hashlib.sha256()
    for name, p in module.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _quantised_image(size: int, seed: int) -> torch.Tensor:
    """A (1,S,S,3) NHWC image whose values are k/255: ComfyUI's rounding leaves it unchanged."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, size, size, 3), generator=gen).float() / 255.0


@pytest.mark.parametrize("kind", KINDS)
def test_matches_comfy_encode_image(adapter, models, kind):
    cv = models[kind]
    assert cv.model.vision_model.embeddings.patch_embedding.weight.is_inference()  # realistic weights
    image = torch.cat([_quantised_image(cv.image_size, s) for s in (1, 2)])
    with torch.no_grad():
        ref = cv.encode_image(image)["image_embeds"].float()

    enc = adapter.clip_vision_encoder(cv)
    mean = torch.tensor(cv.image_mean).view(3, 1, 1)
    std = torch.tensor(cv.image_std).view(3, 1, 1)
    pixels = (image.movedim(-1, 1) - mean) / std  # ComfyUI's normalisation, same arithmetic
    with torch.no_grad():
        tokens = enc.model.image_embeds(pixels)
        pooled = enc.model(pixels)
        wrapped = enc(image.movedim(-1, 1))  # CLIPImageEncoder at the native size: no resize

    assert tokens.shape == ref.shape
    diff = (tokens - ref).abs().max().item()
    print(f"\n{kind}: image_embeds {tuple(ref.shape)}, max |ours - ComfyUI| = {diff:.3e}")
    assert diff < 1e-4 * max(1.0, ref.abs().max().item())
    expected = ref.mean(dim=1) if kind == "siglip" else ref  # SigLIP: token mean is the (B,D) embedding
    assert pooled.shape == (2, expected.shape[-1])
    torch.testing.assert_close(pooled, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(wrapped, expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(pooled[0], pooled[1])  # the images are actually told apart


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_through_image_encoder(adapter, models, kind):
    cv = models[kind]
    enc = adapter.clip_vision_encoder(cv)
    with torch.inference_mode(False):
        gen = torch.Generator().manual_seed(7)
        image = torch.rand((2, 3, 80, 96), generator=gen).requires_grad_(True)  # not the model's size
        dim = enc.model.projection.weight.shape[0] if enc.model.projection is not None else 64  # SigLIP: width
        target = torch.randn((2, dim), generator=gen)
        with torch.enable_grad():
            emb = enc(image)
            loss = (1 - torch.nn.functional.cosine_similarity(emb, target, dim=-1)).sum()
            (grad,) = torch.autograd.grad(loss, image)
    assert emb.shape == target.shape
    assert torch.isfinite(grad).all()
    assert grad.abs().sum() > 0
    assert (grad[0].abs().sum() > 0) and (grad[1].abs().sum() > 0)


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_matches_finite_difference(adapter, models, kind):
    """A float64 copy: analytic directional derivative equals the central difference."""
    enc = adapter.ComfyClipVisionEncoder(models[kind].model, dtype=torch.float64)
    size = enc.image_size
    with torch.inference_mode(False), torch.enable_grad():
        gen = torch.Generator().manual_seed(3)
        x = torch.randn((1, 3, size, size), generator=gen, dtype=torch.float64).requires_grad_(True)
        v = torch.randn(x.shape, generator=gen, dtype=torch.float64)
        w = torch.randn(enc(x.detach()).shape, generator=gen, dtype=torch.float64)
        (grad,) = torch.autograd.grad((enc(x) * w).sum(), x)
        eps = 1e-5
        with torch.no_grad():
            fd = ((enc(x + eps * v) * w).sum() - (enc(x - eps * v) * w).sum()) / (2 * eps)
    analytic = (grad * v).sum()
    assert abs(analytic.item() - fd.item()) <= 1e-6 * max(1.0, abs(fd.item()))


@pytest.mark.parametrize("kind", KINDS)
def test_original_model_untouched(adapter, models, kind):
    cv = models[kind]
    before = _checksum(cv.model)
    # ComfyUI leaves nn.Parameter's default requires_grad=True on its (inference) weights;
    # what matters is that this adapter neither changes the flags nor accumulates grads there.
    flags = [p.requires_grad for p in cv.model.parameters()]
    enc = adapter.clip_vision_encoder(cv)
    with torch.inference_mode(False), torch.enable_grad():
        image = torch.rand((1, 3, 64, 64)).requires_grad_(True)
        enc(image).square().sum().backward()
        enc.to(torch.float64)  # moving/casting the copy must not reach the original either
    enc.to(torch.float32)
    assert [p.requires_grad for p in cv.model.parameters()] == flags
    assert all(p.grad is None for p in cv.model.parameters())
    assert not any(p.requires_grad for p in enc.parameters())
    assert _checksum(cv.model) == before
    originals = {p.data_ptr() for p in cv.model.parameters()}
    assert not any(p.data_ptr() in originals for p in enc.parameters())  # a real copy, no aliasing
    assert not any(p.is_inference() for p in enc.parameters())


def test_one_copy_per_clip_vision_object(adapter, models):
    cv = models["clip"]
    first, second = adapter.clip_vision_encoder(cv), adapter.clip_vision_encoder(cv)
    assert first.model is second.model
    assert adapter.clip_vision_encoder(models["siglip"]).model is not first.model


def test_encoder_built_inside_inference_mode_still_differentiable(adapter, models):
    """Nodes run under inference_mode: the copy made there must still be usable by autograd."""
    cv = models["clip"]
    with torch.inference_mode():
        enc = adapter.ComfyClipVisionEncoder(cv.model)
        enc.to("cpu", torch.float32)
    assert not any(p.is_inference() for p in enc.parameters())
    with torch.enable_grad():
        x = torch.randn((1, 3, enc.image_size, enc.image_size), requires_grad=True)
        enc(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_unsupported_encoders_raise(adapter):
    import comfy.image_encoders.dino2 as dino2
    import comfy.ops

    config = {
        "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1, "layer_norm_eps": 1e-6,
        "use_swiglu_ffn": False, "patch_size": 14, "image_size": 56,
    }  # fmt: skip
    fake = SimpleNamespace(
        model=dino2.Dinov2Model(config, torch.float32, "cpu", comfy.ops.manual_cast),
        image_size=56, image_mean=[0.5] * 3, image_std=[0.5] * 3,
    )
    with pytest.raises(ValueError, match="dinov2"):
        adapter.clip_vision_encoder(fake)
    with pytest.raises(ValueError, match="CLIP_VISION"):
        adapter.clip_vision_encoder(object())


def test_wrong_input_size_is_a_clear_error(adapter, models):
    enc = adapter.clip_vision_encoder(models["clip"])
    with pytest.raises(ValueError, match="expected normalised images"):
        enc.model(torch.zeros((1, 3, 32, 32)))
