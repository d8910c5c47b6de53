"""A VAE from parts: Gaussian posterior q(z | x), standard normal prior, any decoder likelihood.

    encoder -> flatten -> z_mean, z_log_var heads         (the label joins the features)
    z -> expand (Linear + activation) -> decoder -> logits (the label joins z)

With the `vae` preset's parts this is exactly the article's VAE (5,285 parameters with
a 2-D latent space, loss `784 * mean BCE + KL`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaelab.config import ModelConfig
from vaelab.models import networks
from vaelab.models.base import Capabilities, Model, Output
from vaelab.models.likelihoods import likelihood
from vaelab.models.losses import at_least_float32
from vaelab.models.objectives import objective


class VAE(Model):
    def __init__(self, config: ModelConfig, shape: tuple[int, int, int] = (1, 28, 28)) -> None:
        super().__init__()
        config = config.resolved()  # a preset's name alone is enough
        assert config.encoder and config.decoder and config.likelihood and config.objective
        self.name = config.name
        self.shape = tuple(shape)
        self.latent_dim = latent = config.latent_dim or 2
        self.num_classes = config.num_classes if config.conditional else 0
        p_x = likelihood(config.likelihood, self.shape[0])  # registered last, as it always was
        self.capabilities = Capabilities(
            posterior=True,
            sampling=True,
            conditional=bool(config.conditional),
            autoregressive=p_x.autoregressive,
        )
        net, features = networks.encoder(config.encoder, self.shape)
        self.encoder = nn.Sequential(net, nn.Flatten())
        n_features = math.prod(features) + self.num_classes
        self.z_mean = nn.Linear(n_features, latent)
        self.z_log_var = nn.Linear(n_features, latent)
        decoded = (p_x.channels(self.shape[0]), *self.shape[1:])
        decoder, self.decoder_input = networks.decoder(config.decoder, decoded)
        self.expand = nn.Sequential(
            nn.Linear(latent + self.num_classes, math.prod(self.decoder_input)),
            networks.activation(config.decoder.activation),
        )
        self.decoder = decoder
        self.likelihood = p_x
        self.objective = objective(config.objective)

    def _with_label(self, h: Tensor, y: Tensor | None) -> Tensor:
        if not self.num_classes:
            return h
        assert y is not None
        return torch.cat([h, F.one_hot(y, self.num_classes).to(h)], 1)

    def posterior(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z | x)."""
        h = self._with_label(self.encoder(x), y)
        return self.z_mean(h), self.z_log_var(h)

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.posterior(x, y)[0]

    def decoder_output(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """What the likelihood reads for codes z: pixel logits, or an autoregressive
        likelihood's features."""
        if self.num_classes:
            self.check_labels(y, len(z))
        return self.decoder(self.expand(self._with_label(z, y)).view(-1, *self.decoder_input))

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.likelihood.decode(self.decoder_output(z, y))

    def pixel_logits(self, z: Tensor, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.likelihood.logits(self.decoder_output(z, y), x)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Output:
        self.check_input(x, y)
        z_mean, z_log_var = map(at_least_float32, self.posterior(x, y))  # under autocast too
        return self.objective(self, x, y, z_mean, z_log_var)

    def after_step(self) -> None:
        self.objective.after_step()

    def sample(
        self, n: int, generator: torch.Generator | None = None, labels: Tensor | None = None
    ) -> Tensor:
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        out = self.decoder_output(z, None if labels is None else labels.to(device))
        return torch.sigmoid(self.likelihood.decode(out, generator))
