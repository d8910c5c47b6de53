"""Per-image loss terms, computed from logits for numerical stability."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


def at_least_float32(t: Tensor) -> Tensor:
    """`t` in float32 if it is in a narrower float (bfloat16 or float16 from autocast), else
    as it is: losses keep float32's precision, or float64's where a model runs in it."""
    return t.float() if t.is_floating_point() and t.element_size() < 4 else t


def bernoulli_nll(logits: Tensor, x: Tensor) -> Tensor:
    """Binary cross-entropy summed over pixels, per image: -log p(x | z).

    Summing equals the article's `784 * mean_pixel_BCE` on 28x28 images.
    """
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return bce.flatten(1).sum(1)


def gaussian_kl(z_mean: Tensor, z_log_var: Tensor) -> Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)) per image."""
    return gaussian_kl_per_dim(z_mean, z_log_var).sum(1)


def gaussian_kl_per_dim(z_mean: Tensor, z_log_var: Tensor) -> Tensor:
    """KL(N(mean, exp(log_var)) || N(0, 1)) of each latent dimension of each image, (N, D):
    how much of the image each dimension carries."""
    return -0.5 * (1 + z_log_var - z_mean.square() - z_log_var.exp())


def log_normal(z: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    """log N(z; mean, diag(exp(log_var))), summed over the last (latent) axis."""
    return -0.5 * (LOG_2PI + log_var + (z - mean).square() / log_var.exp()).sum(-1)


def importance_log_weights(
    log_likelihood: Tensor, z: Tensor, mean: Tensor, log_var: Tensor
) -> Tensor:
    """log p(x | z) + log p(z) - log q(z | x) for draws z of q = N(mean, exp(log_var)) and a
    standard normal prior: the log importance weights that the IWAE objective trains on and
    the likelihood estimate averages (`mean` and `log_var` broadcast against z)."""
    zero = torch.zeros_like(mean)
    return log_likelihood + log_normal(z, zero, zero) - log_normal(z, mean, log_var)
