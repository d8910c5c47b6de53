"""What each latent dimension of a VAE carries over a set of images.

A VAE may leave latent dimensions unused: their posterior is the prior for
every image, so they cost no KL and tell the decoder nothing (posterior
collapse). Burda et al. (2016) count the *active units*, the dimensions whose
posterior mean varies across the images, and report them beside the
log-likelihood; the per-dimension KL orders the dimensions by how much of the
image each one carries, as a latent traversal shows them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vaelab.models import Model
from vaelab.models.losses import gaussian_kl_per_dim
from vaelab.scores import batched

ACTIVE = 0.01
"""Burda et al. (2016) call a latent dimension active when the variance over the images of
its posterior mean exceeds 0.01: below it, the dimension tells the images (almost) nothing."""


@dataclass
class Usage:
    """What each latent dimension carries over a set of images: its mean KL from the prior
    (nats) and the variance of its posterior mean across them (`ACTIVE`)."""

    kl: Tensor
    activity: Tensor
    images: int

    @property
    def active(self) -> Tensor:
        return self.activity > ACTIVE

    @property
    def active_units(self) -> int:
        return int(self.active.sum())


@torch.inference_mode()
def usage(model: Model, images: Tensor, labels: Tensor | None = None) -> Usage:
    """`Usage` of the latent dimensions of `model` (which must have a posterior) over float
    `images`; a conditional model is given their `labels`."""
    model.require("posterior", "counting active latent units")
    model.eval()
    device = next(model.parameters()).device

    def moments(i: Tensor) -> Tensor:
        given = None if labels is None else labels[i].to(device)
        return torch.cat(model.posterior(images[i].to(device), given), 1).cpu()

    mean, log_var = batched(moments, torch.arange(len(images))).chunk(2, dim=1)
    return Usage(gaussian_kl_per_dim(mean, log_var).mean(0), mean.var(0), len(images))
