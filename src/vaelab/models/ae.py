"""A deterministic autoencoder from parts: the code is the encoder's output.

With the `ae` preset's parts this is exactly the article's conv autoencoder (4,385
parameters, an 8x4x4 code); its loss is the mean pixel NLL, the value Keras reports for
the article's `binary_crossentropy` autoencoder.
"""

from __future__ import annotations

import math

from torch import Tensor

from vaelab.config import ModelConfig
from vaelab.errors import VaelabError
from vaelab.models import networks
from vaelab.models.base import Model, Output
from vaelab.models.likelihoods import likelihood


class AE(Model):
    loss_unit = "mean nats per pixel"

    def __init__(self, config: ModelConfig, shape: tuple[int, int, int] = (1, 28, 28)) -> None:
        super().__init__()
        config = config.resolved()  # a preset's name alone is enough
        assert config.encoder and config.decoder and config.likelihood and config.objective
        if config.objective.name != "reconstruction" or config.conditional:
            raise VaelabError(
                "an autoencoder (kind 'ae') trains on the reconstruction objective and is not "
                f"conditional; got objective {config.objective.name!r}, "
                f"conditional={config.conditional}"
            )
        self.name = config.name
        self.shape = tuple(shape)
        self.encoder, code = networks.encoder(config.encoder, self.shape)
        self.decoder, self.code_shape = networks.decoder(config.decoder, self.shape)
        if code != self.code_shape:
            raise VaelabError(
                f"the encoder's output {code} does not match the decoder's input "
                f"{self.code_shape}: give the decoder's first width the encoder's last"
            )
        self.latent_dim = math.prod(code)
        self.likelihood = likelihood(config.likelihood, self.shape[0])
        if self.likelihood.autoregressive:
            raise VaelabError(
                f"the {config.likelihood.name} likelihood is autoregressive, for a VAE's "
                "decoder; give an autoencoder the bernoulli or gaussian likelihood"
            )

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.encoder(x).flatten(1)

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.decoder(z.view(-1, *self.code_shape))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Output:
        self.check_input(x, y)
        code = self.encoder(x)
        logits = self.decoder(code)
        recon = self.likelihood.nll(logits, x) / x[0].numel()
        return Output(logits=logits, latent=code.flatten(1), losses={"recon": recon})
