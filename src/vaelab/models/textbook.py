"""The article's models written as a textbook would: the reference the fast models must equal.

Layers in `nn.Sequential`s (nearest upsampling, then a conv), a sigmoid on the
output, `F.binary_cross_entropy` on probabilities. They share nothing with
`vaelab.models` but the weights `copy_weights` copies into them, so the
equivalence tests and the speed benchmark compare vaelab's fast blocks with
the plain math.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def encoder() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
    )  # fmt: skip


def decoder() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),
        nn.Conv2d(8, 16, 3), nn.ReLU(), nn.Upsample(scale_factor=2),
        nn.Conv2d(16, 1, 3, padding=1), nn.Sigmoid(),
    )  # fmt: skip


class PlainAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = encoder()
        self.decoder = decoder()

    def loss(self, x: Tensor) -> Tensor:
        """Mean pixel binary cross-entropy (Keras' `binary_crossentropy`)."""
        return F.binary_cross_entropy(self.decoder(self.encoder(x)), x)


class PlainVAE(nn.Module):
    def __init__(self, latent_dim: int = 2) -> None:
        super().__init__()
        self.encoder = nn.Sequential(encoder(), nn.Flatten())
        self.z_mean = nn.Linear(128, latent_dim)
        self.z_log_var = nn.Linear(128, latent_dim)
        self.expand = nn.Sequential(nn.Linear(latent_dim, 128), nn.ReLU())
        self.decoder = decoder()

    def loss(self, x: Tensor) -> Tensor:
        """Mean over the batch of 784 * mean pixel BCE + KL."""
        return self.loss_per_image(x).mean()

    def loss_per_image(self, x: Tensor) -> Tensor:
        """Negative ELBO of each image, with one sample of z."""
        h = self.encoder(x)
        mu, log_var = self.z_mean(h), self.z_log_var(h)
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
        recon = self.decoder(self.expand(z).view(-1, 8, 4, 4))
        bce = F.binary_cross_entropy(recon, x, reduction="none").sum((1, 2, 3))
        kl = -0.5 * torch.sum(1 + log_var - mu**2 - log_var.exp(), dim=1)
        return bce + kl


REFERENCES = {"ae": PlainAE, "vae": PlainVAE}


def copy_weights(source: nn.Module, target: nn.Module) -> None:
    """Copy parameters in registration order; the layer stacks match one to one."""
    pairs = list(zip(source.parameters(), target.parameters(), strict=True))
    with torch.no_grad():
        for a, b in pairs:
            assert a.shape == b.shape, (a.shape, b.shape)
            b.copy_(a)
