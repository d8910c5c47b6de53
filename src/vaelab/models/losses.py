"""Per-image loss terms, computed from logits for numerical stability."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bernoulli_nll(logits: Tensor, x: Tensor) -> Tensor:
    """Binary cross-entropy summed over pixels, per image: -log p(x | z).

    Summing equals the article's `784 * mean_pixel_BCE` on 28x28 images.
    """
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return bce.flatten(1).sum(1)


def gaussian_kl(z_mean: Tensor, z_log_var: Tensor) -> Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)) per image."""
    return -0.5 * torch.sum(1 + z_log_var - z_mean.square() - z_log_var.exp(), dim=1)
