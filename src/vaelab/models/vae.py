"""The article's convolutional VAE (5,285 parameters with a 2-D latent space)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vaelab.models import blocks
from vaelab.models.base import Model, Output
from vaelab.models.losses import bernoulli_nll, gaussian_kl


class VAE(Model):
    """Gaussian encoder, Bernoulli decoder, standard normal prior.

    Loss per image: `784 * mean pixel BCE + KL`, as in the article.
    """

    generative = True

    def __init__(self, latent_dim: int = 2, channels: int = 1) -> None:
        super().__init__()
        self.channels = channels
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(blocks.encoder(channels), nn.Flatten())
        self.z_mean = nn.Linear(blocks.CODE_SIZE, latent_dim)
        self.z_log_var = nn.Linear(blocks.CODE_SIZE, latent_dim)
        self.expand = nn.Sequential(nn.Linear(latent_dim, blocks.CODE_SIZE), nn.ReLU())
        self.decoder = blocks.decoder(channels)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z | x)."""
        h = self.encoder(x)
        return self.z_mean(h), self.z_log_var(h)

    def encode(self, x: Tensor) -> Tensor:
        return self.posterior(x)[0]

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(self.expand(z).view(-1, *blocks.CODE_SHAPE))

    def forward(self, x: Tensor) -> Output:
        z_mean, z_log_var = self.posterior(x)
        z = z_mean + torch.exp(0.5 * z_log_var) * torch.randn_like(z_mean)
        logits = self.decode(z)
        losses = {"recon": bernoulli_nll(logits, x), "kl": gaussian_kl(z_mean, z_log_var)}
        return Output(logits, z, losses, z_mean=z_mean, z_log_var=z_log_var)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        return torch.sigmoid(self.decode(z))
