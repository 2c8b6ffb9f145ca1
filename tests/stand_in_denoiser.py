"""A denoiser stand-in that behaves like a trained one where sampling and inversion depend on it.

The tests' tiny UNet has random weights: its denoised prediction D(x, sigma) grows with sigma
(it is x - sigma * eps for an eps unrelated to x), so sampled latents end far outside the data's
range and the sampling ODE expands every error. A trained model's D is a posterior mean: bounded
by the data and contracting. This wraps the model (ComfyUI's own ``model_function_wrapper``, on a
clone) so that D is the posterior mean of a Gaussian prior of the data's variance v (model latent
space), D_g = x * v / (v + sigma^2), plus the random UNet's prediction as a perturbation that fades
with sigma:

    D = D_g + lam * (D_unet - D_g) / (1 + sigma)

For flow models (CONST sampling, x = (1 - sigma) x0 + sigma n) the posterior mean is
D_g = (1 - sigma) v x / ((1 - sigma)^2 v + sigma^2).

The UNet still runs on every call (its features, attention and patches are the real ones).
"""

from __future__ import annotations


def smooth_denoiser(model_patcher, lam: float = 0.5, data_var: float = 1.0):
    """A clone of ``model_patcher`` (eps/v sampling) whose predictions behave like a trained denoiser's."""
    import comfy.model_sampling

    m = model_patcher.clone()
    flow = isinstance(m.get_model_object("model_sampling"), comfy.model_sampling.CONST)

    def wrapper(apply_model, args):
        x, t, c = args["input"], args["timestep"], args["c"]
        d_unet = apply_model(x, t, **c)
        s = t.view(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        if flow:
            d_gauss = x * (1 - s) * data_var / ((1 - s) ** 2 * data_var + s * s)
        else:
            d_gauss = x * data_var / (data_var + s * s)
        return d_gauss + lam * (d_unet - d_gauss) / (1 + s)

    m.set_model_unet_function_wrapper(wrapper)
    return m
