"""FID as the ArtFID protocol computes it: Gaussian statistics of pool features, Frechet distance."""

from __future__ import annotations

import logging
import warnings

import numpy as np
from scipy import linalg

log = logging.getLogger(__name__)


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased (N-1) covariance of (N, D) features, in float64."""
    a = np.asarray(features, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(f"FID needs at least 2 feature vectors, got array of shape {a.shape}")
    return a.mean(axis=0), np.cov(a, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """||mu1-mu2||^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2)).

    When the product's square root is not finite (singular product), both covariances get
    ``eps`` on their diagonal and the root is taken again, as the protocol does. A small
    imaginary part from numerical error is dropped; a large one is an error.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ValueError(f"feature statistics differ in size: {mu1.shape}/{s1.shape} vs {mu2.shape}/{s2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # "matrix is singular" is expected with fewer images than dimensions
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        log.warning("FID: singular covariance product; adding %g to the diagonals", eps)
        offset = np.eye(s1.shape[0]) * eps
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: matrix square root has an imaginary part of {np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def trace_sqrt_product_svd(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """tr(sqrt(S_a S_b)) from the features themselves, without a D x D square root.

    With A, B the centred feature matrices, S_a S_b's non-zero eigenvalues are the squared
    singular values of A B^T / sqrt((n_a - 1)(n_b - 1)), so the trace of the root is that
    matrix's nuclear norm: exact, and O(n_a n_b D) instead of O(D^3) when N is below D.
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    c = (a @ b.T) / np.sqrt((a.shape[0] - 1) * (b.shape[0] - 1))
    return float(np.linalg.svd(c, compute_uv=False).sum())


def frechet_distance_of(features_a: np.ndarray, features_b: np.ndarray, method: str = "sqrtm") -> float:
    """Frechet distance between the Gaussians fitted to two (N, D) feature sets.

    ``sqrtm``: the protocol's computation (scipy's matrix square root with its eps fallback).
    ``svd``: the same quantity through :func:`trace_sqrt_product_svd` (fast when N << D).
    """
    mu_a, s_a = gaussian_stats(features_a)
    mu_b, s_b = gaussian_stats(features_b)
    if method == "sqrtm":
        return frechet_distance(mu_a, s_a, mu_b, s_b)
    if method != "svd":
        raise ValueError(f"FID method must be 'sqrtm' or 'svd', not {method!r}")
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(s_a) + np.trace(s_b)
                 - 2.0 * trace_sqrt_product_svd(features_a, features_b))
