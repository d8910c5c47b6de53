"""What every model returns, so nothing downstream special-cases a model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class Output:
    """One forward pass over a batch.

    `losses` holds the named parts of the loss *per image* (shape (N,)); they
    add up to the per-image loss, whose batch mean is the training loss.
    `latent` is the code the decoder saw: the AE's bottleneck, or the VAE's
    sampled z (its `z_mean` / `z_log_var` are set too).
    """

    logits: Tensor
    latent: Tensor
    losses: dict[str, Tensor]
    z_mean: Tensor | None = None
    z_log_var: Tensor | None = None

    @property
    def per_image_loss(self) -> Tensor:
        return torch.stack(list(self.losses.values())).sum(0)

    @property
    def loss(self) -> Tensor:
        return self.per_image_loss.mean()

    @property
    def reconstruction(self) -> Tensor:
        return torch.sigmoid(self.logits)


class Model(nn.Module):
    """Base class: an encoder to a latent code and a decoder to pixel logits.

    Subclasses set `latent_dim` and implement `encode`, `decode` and `forward`.
    `generative` models can also `sample` from their prior.
    """

    latent_dim: int
    channels: int = 1
    generative: bool = False

    def encode(self, x: Tensor) -> Tensor:
        """The code used for figures: the AE's bottleneck or the VAE's z_mean."""
        raise NotImplementedError

    def decode(self, z: Tensor) -> Tensor:
        """Pixel logits for latent codes z."""
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Images (probabilities in [0, 1]) decoded from n draws of the prior."""
        raise NotImplementedError(f"{type(self).__name__} has no prior to sample from")
