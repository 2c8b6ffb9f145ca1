"""The guidance maths in plain torch: normalised steps, NaN handling, windows, resizing."""

from __future__ import annotations

import torch

from sampler.guidance import guided_prediction, renoise_ve, resize_for_loss, step_fraction
from sampler.settings import GuidanceSettings


def _batch():
    gen = torch.Generator().manual_seed(0)
    x_t = torch.randn(3, 4, 8, 8, generator=gen) * 3
    denoised = torch.randn(3, 4, 8, 8, generator=gen)
    grad = torch.randn(3, 4, 8, 8, generator=gen)
    return x_t, denoised, grad


def test_step_is_invariant_to_gradient_magnitude():
    x_t, d, g = _batch()
    a = guided_prediction(x_t, d, g, 0.5)
    b = guided_prediction(x_t, d, g * 1e4, 0.5)
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, d)


def test_step_size_is_scale_times_update_rms():
    x_t, d, g = _batch()
    out = guided_prediction(x_t, d, g, 0.25)
    step = (d - out).flatten(1).pow(2).mean(1).sqrt()
    update = (x_t - d).flatten(1).pow(2).mean(1).sqrt()
    assert torch.allclose(step, 0.25 * update, rtol=1e-4)


def test_non_finite_gradient_leaves_only_that_sample_unguided():
    x_t, d, g = _batch()
    g[1, 0, 0, 0] = float("nan")
    g[2, 1, 2, 3] = float("inf")
    out = guided_prediction(x_t, d, g, 0.5)
    assert torch.isfinite(out).all()
    assert torch.equal(out[1], d[1]) and torch.equal(out[2], d[2])
    assert not torch.allclose(out[0], d[0])


def test_grad_clip_bounds_the_normalised_step():
    x_t, d, g = _batch()
    g[0, 0, 0, 0] = 1e3  # one outlier
    out = guided_prediction(x_t, d, g, 1.0, grad_clip=2.0)
    update = (x_t - d)[0].pow(2).mean().sqrt()
    assert ((d - out)[0].abs().max() / update) <= 2.0 + 1e-4


def test_step_fraction_counts_steps_and_intermediate_evaluations():
    s = torch.tensor([10.0, 5.0, 2.0, 1.0, 0.0])
    assert [step_fraction(v, s) for v in (10.0, 7.0, 5.0, 3.0, 2.0, 1.0, 0.5)] == [0, 0, 0.25, 0.25, 0.5, 0.75, 0.75]
    assert step_fraction(1.0, None) is None


def test_resize_for_loss_downscales_keeping_aspect_and_never_below_32px():
    img = torch.rand(1, 3, 128, 256, requires_grad=True)
    small = resize_for_loss(img, 64)
    assert small.shape[-2:] == (32, 64)
    small.sum().backward()
    assert img.grad is not None and torch.isfinite(img.grad).all()
    assert resize_for_loss(img, 0) is img and resize_for_loss(img, 512) is img
    # The networks need a few pixels: a 64 px limit on a 64x128 picture keeps its short side at 32,
    # and tiny decodes are upsampled (VGG19's pooling fails below 16 px).
    assert resize_for_loss(torch.rand(1, 3, 64, 128), 32).shape[-2:] == (32, 64)
    assert resize_for_loss(torch.rand(1, 3, 8, 12), 0).shape[-2:] == (32, 48)


def test_the_window_rule_is_half_open_and_partitions_the_steps():
    from sampler.guidance import in_window, steps_in_window

    assert steps_in_window(10, 0.3, 0.7) == [3, 4, 5, 6]
    assert steps_in_window(10, 0.0, 0.5) + steps_in_window(10, 0.5, 1.0) == list(range(10))
    assert in_window(0.0, 0.0, 1.0) and not in_window(1.0, 0.0, 1.0)


def test_percent_of_sigma_inverts_a_schedule():
    from sampler.guidance import percent_of_sigma

    def to_sigma(p: float) -> float:  # an exponential (Karras-like) schedule
        return 14.6 * (0.03 / 14.6) ** p

    for p in (0.0, 0.2, 0.5, 0.8, 1.0):
        assert abs(percent_of_sigma(to_sigma(p), to_sigma) - p) < 1e-4


def test_renoise_restores_the_noise_level():
    x = torch.zeros(20000)
    out = renoise_ve(x, 2.0, 1.0, torch.randn(20000, generator=torch.Generator().manual_seed(0)))
    assert abs(out.std().item() - 3**0.5) < 0.05


def test_settings_validation_messages():
    assert GuidanceSettings().validate() is None
    assert "start_percent" in GuidanceSettings(start_percent=0.5, end_percent=0.5).validate()
    assert "recurrence" in GuidanceSettings(recurrence=0).validate()
    assert "mode" in GuidanceSettings(mode="eps").validate()


def test_thin_pictures_are_stretched_to_the_minimum_not_blown_up():
    """Raising a 1 px side to 32 px keeps the aspect only up to a 256 px longer side."""
    from sampler.guidance import loss_size

    assert loss_size(1, 4097, 0) == (32, 4097)
    assert loss_size(4097, 1, 512) == (512, 32)
    assert loss_size(2, 100, 0) == (32, 256)  # keeps the aspect up to 256 px, then stretches
    assert loss_size(16, 16, 0) == (32, 32) and loss_size(1, 1, 0) == (32, 32)
    assert loss_size(1, 300, 0) == (32, 300)
