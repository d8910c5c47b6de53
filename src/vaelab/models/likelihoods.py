"""p(x | z): how a decoder's output scores an image, per image, in nats.

Both likelihoods read the decoder's output as logits: the Bernoulli's probabilities
and the Gaussian's mean are their sigmoid, so reconstructions are always pixels in
[0, 1] and every score and figure reads them the same way.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vaelab.config import LikelihoodConfig
from vaelab.errors import VaelabError
from vaelab.models.losses import bernoulli_nll

LOG_2PI = math.log(2 * math.pi)


class Bernoulli(nn.Module):
    """Binary cross-entropy summed over pixels: the article's likelihood."""

    def nll(self, logits: Tensor, x: Tensor) -> Tensor:
        return bernoulli_nll(logits, x)


class Gaussian(nn.Module):
    """N(x; sigmoid(logits), sigma^2) per pixel, sigma fixed or one learned scalar.

    A fixed sigma sets how much reconstruction weighs against the KL; learning it
    finds that balance from the data (Rybkin et al. 2021's sigma-VAE).
    """

    def __init__(self, sigma: float, learned: bool) -> None:
        super().__init__()
        log_sigma = torch.tensor(math.log(sigma))
        if learned:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    def nll(self, logits: Tensor, x: Tensor) -> Tensor:
        mean = torch.sigmoid(logits)
        squared = ((x - mean) * torch.exp(-self.log_sigma)).square()
        per_pixel = 0.5 * (squared + LOG_2PI) + self.log_sigma
        return per_pixel.flatten(1).sum(1)


def likelihood(config: LikelihoodConfig) -> nn.Module:
    if config.name == "bernoulli":
        return Bernoulli()
    if config.name != "gaussian":
        raise VaelabError(f"unknown likelihood {config.name!r}; choose bernoulli or gaussian")
    if config.variance not in ("fixed", "learned") or config.sigma <= 0:
        raise VaelabError(
            "a gaussian likelihood needs variance 'fixed' or 'learned' and sigma > 0, got "
            f"variance={config.variance!r}, sigma={config.sigma}"
        )
    return Gaussian(config.sigma, learned=config.variance == "learned")
