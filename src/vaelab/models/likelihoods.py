"""p(x | z): how a decoder's output scores an image, per image, in nats.

A likelihood reads the decoder's output `out` for a code z:

- `logits(out, x)`: the pixel logits that score the image x. The Bernoulli's probabilities
  and the Gaussian's mean are their sigmoid, so reconstructions are always pixels in [0, 1]
  and every score and figure reads them the same way. These two read `out` alone; the
  autoregressive `pixelcnn` also reads x's earlier pixels (teacher forcing), so scoring an
  image is still one pass;
- `nll(logits, x)`: -log p(x | z) from those logits, in float32 whatever precision the
  decoder ran in (bfloat16 autocast, `vaelab.fastpaths`);
- `decode(out)`: pixel logits with no image given: `out` itself, or for `pixelcnn` an
  image drawn one pixel at a time (784 passes for MNIST; figures, not scores, want that).

Likelihoods are registered by name in `LIKELIHOODS`, with what each is for.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaelab.config import LikelihoodConfig
from vaelab.errors import VaelabError
from vaelab.models.losses import at_least_float32, bernoulli_nll

LOG_2PI = math.log(2 * math.pi)


class Likelihood(nn.Module):
    """A likelihood whose pixels are independent given the decoder's output."""

    autoregressive = False

    def channels(self, image_channels: int) -> int:
        """How many channels the decoder gives this likelihood, for images with these."""
        return image_channels

    def logits(self, out: Tensor, x: Tensor) -> Tensor:
        return out

    def decode(self, out: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return out

    def nll(self, logits: Tensor, x: Tensor) -> Tensor:
        raise NotImplementedError


class Bernoulli(Likelihood):
    """Binary cross-entropy summed over pixels: the article's likelihood."""

    def nll(self, logits: Tensor, x: Tensor) -> Tensor:
        return bernoulli_nll(at_least_float32(logits), x)


class Gaussian(Likelihood):
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
        mean = torch.sigmoid(at_least_float32(logits))
        squared = ((x - mean) * torch.exp(-self.log_sigma)).square()
        per_pixel = 0.5 * (squared + LOG_2PI) + self.log_sigma
        return per_pixel.flatten(1).sum(1)


def gaussian(config: LikelihoodConfig) -> Gaussian:
    if config.variance not in ("fixed", "learned") or config.sigma <= 0:
        raise VaelabError(
            "a gaussian likelihood needs variance 'fixed' or 'learned' and sigma > 0, got "
            f"variance={config.variance!r}, sigma={config.sigma}"
        )
    return Gaussian(config.sigma, learned=config.variance == "learned")


class MaskedConv(nn.Conv2d):
    """A convolution that sees only the pixels before the centre in raster order, and the
    centre itself unless it is the first layer (mask 'A' / 'B', van den Oord et al. 2016)."""

    def __init__(self, n_in: int, n_out: int, kernel: int, first: bool) -> None:
        super().__init__(n_in, n_out, kernel, padding=kernel // 2)
        mask = torch.ones(kernel, kernel)
        centre = kernel // 2
        mask[centre, centre + (0 if first else 1) :] = 0
        mask[centre + 1 :] = 0
        self.register_buffer("mask", mask)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class PixelCNN(Bernoulli):
    """Bernoulli pixels in raster order, each given the decoder's output at its place and the
    pixels before it: a small PixelCNN on top of the VAE's decoder (PixelVAE, Gulrajani et
    al. 2017). The code carries the digit's shape, the masked convolutions the strokes'
    local detail a factorised decoder cannot draw.

    The decoder gives `FEATURES` maps, projected to `width` channels and added to a 7x7
    masked convolution of the image; `layers` residual 3x3 masked convolutions and a 1x1
    head then give the logits. Few maps keep the decoder's last layer, the costliest part
    of a small model, cheap.
    """

    autoregressive = True
    FEATURES = 4

    def __init__(self, image_channels: int, width: int, layers: int) -> None:
        super().__init__()
        if image_channels != 1:
            raise VaelabError(
                f"the pixelcnn likelihood models one-channel images, got {image_channels} "
                "channels; use the bernoulli or gaussian likelihood"
            )
        if width < 1 or layers < 0:
            raise VaelabError(
                f"a pixelcnn likelihood needs width >= 1 and layers >= 0, got width={width}, "
                f"layers={layers}"
            )
        self.condition = nn.Conv2d(self.FEATURES, width, 1)
        self.first = MaskedConv(1, width, 7, first=True)
        self.layers = nn.ModuleList(MaskedConv(width, width, 3, first=False) for _ in range(layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(width, width, 1), nn.ReLU(),
                                  nn.Conv2d(width, 1, 1))  # fmt: skip

    def channels(self, image_channels: int) -> int:
        return self.FEATURES

    def logits(self, out: Tensor, x: Tensor) -> Tensor:
        h = self.condition(out) + self.first(x)
        for layer in self.layers:
            h = h + layer(F.relu(h))
        return out[:, :1] + self.head(h)

    def decode(self, out: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw an image pixel by pixel from p(x | z); return the logits that drew it.

        A pixel's logit reads `reach` pixels up, left and right at most, so each step
        computes that window alone, not the whole image.
        """
        x = torch.zeros(len(out), 1, *out.shape[2:], device=out.device, dtype=out.dtype)
        reach = 3 + len(self.layers)  # the 7x7 convolution's 3, and 1 for each 3x3 layer
        for row in range(x.shape[2]):
            top = max(0, row - reach)
            for col in range(x.shape[3]):
                left = max(0, col - reach)
                window = slice(top, row + 1), slice(left, col + reach + 1)
                logit = self.logits(out[:, :, window[0], window[1]], x[:, :, window[0], window[1]])
                p = torch.sigmoid(logit[:, :, row - top, col - left])
                noise = torch.rand(p.shape, generator=generator, device="cpu").to(p)
                x[:, :, row, col] = (noise < p).to(x)
        return self.logits(out, x)


@dataclass(frozen=True)
class Registered:
    build: Callable[[LikelihoodConfig, int], Likelihood]
    summary: str


LIKELIHOODS: dict[str, Registered] = {
    "bernoulli": Registered(lambda c, channels: Bernoulli(), "for nearly binary images"),
    "gaussian": Registered(
        lambda c, channels: gaussian(c), "for grey levels: sigma fixed or learned"
    ),
    "pixelcnn": Registered(
        lambda c, channels: PixelCNN(channels, c.width, c.layers),
        "autoregressive Bernoulli for binary images: each pixel also given the earlier ones",
    ),
}
"""Likelihoods by name, with what each is for."""


def likelihood(config: LikelihoodConfig, channels: int = 1) -> Likelihood:
    """The likelihood `config` names, for images with `channels` channels."""
    if config.name not in LIKELIHOODS:
        raise VaelabError(
            f"unknown likelihood {config.name!r}; choose one of {', '.join(LIKELIHOODS)}"
        )
    return LIKELIHOODS[config.name].build(config, channels)
