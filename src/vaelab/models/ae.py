"""The article's convolutional autoencoder (4,385 parameters on MNIST)."""

from __future__ import annotations

from torch import Tensor

from vaelab.models import blocks
from vaelab.models.base import Model, Output
from vaelab.models.losses import bernoulli_nll


class AE(Model):
    """Deterministic autoencoder with a 8x4x4 bottleneck.

    Its loss is the mean pixel BCE, the value Keras reports for the article's
    `binary_crossentropy` autoencoder.
    """

    latent_dim = blocks.CODE_SIZE

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.channels = channels
        self.encoder = blocks.encoder(channels)
        self.decoder = blocks.decoder(channels)

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x).flatten(1)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z.view(-1, *blocks.CODE_SHAPE))

    def forward(self, x: Tensor) -> Output:
        code = self.encoder(x)
        logits = self.decoder(code)
        recon = bernoulli_nll(logits, x) / x[0].numel()
        return Output(logits=logits, latent=code.flatten(1), losses={"recon": recon})
