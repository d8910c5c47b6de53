"""What every model returns and declares, so nothing downstream special-cases a model."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vaelab.errors import VaelabError


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


@dataclass(frozen=True)
class Capabilities:
    """What a model can do, declared rather than guessed from its attributes.

    - `posterior`: it has q(z | x) (`posterior()` gives its mean and log-variance);
    - `sampling`: it has a prior to `sample()` images from;
    - `conditional`: its encoder and decoder see the image's label, which must be given;
    - `autoregressive`: its decoder draws an image one pixel at a time, so p(x|z) scores an
      image in one pass but decoding and sampling take one pass per pixel.
    """

    posterior: bool = False
    sampling: bool = False
    conditional: bool = False
    autoregressive: bool = False


CAPABILITY_NAMES = {
    "posterior": "a posterior q(z|x) (a VAE)",
    "sampling": "a prior to sample from (a VAE)",
}


class Model(nn.Module):
    """Base class: an encoder to a latent code and a decoder to pixel logits.

    Subclasses set `latent_dim`, `shape` (C, H, W) and `capabilities`, and implement
    `encode`, `decode` and `forward`; every method takes the labels `y`, which only
    conditional models read.
    """

    latent_dim: int
    shape: tuple[int, int, int] = (1, 28, 28)
    capabilities = Capabilities()
    loss_unit = "nats per image"
    """What the loss and its parts measure, for the axes, cards and pages that show them."""

    @property
    def channels(self) -> int:
        return self.shape[0]

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The code used for figures: the AE's bottleneck or the VAE's z_mean."""
        raise NotImplementedError

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Pixel logits for latent codes z."""
        raise NotImplementedError

    def pixel_logits(self, z: Tensor, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The logits with which p(x | z) scores the images x: `decode(z)`, unless the
        decoder is autoregressive and reads x's earlier pixels too."""
        return self.decode(z, y)

    def sample(
        self, n: int, generator: torch.Generator | None = None, labels: Tensor | None = None
    ) -> Tensor:
        """Images (probabilities in [0, 1]) decoded from n draws of the prior."""
        self.require("sampling", "sampling")
        raise NotImplementedError

    def after_step(self) -> None:
        """Called by the training loop after each optimiser step (schedules count them)."""

    def for_export(self) -> Model:
        """The model as an exported graph should compute it: itself, unless weights it
        multiplies out at each call would come out rounded otherwise in another runtime."""
        return self

    def require(self, capability: str, purpose: str) -> None:
        """Raise a clear error unless the model has `capability` for `purpose`."""
        if not getattr(self.capabilities, capability):
            raise VaelabError(
                f"{purpose} needs a model with {CAPABILITY_NAMES[capability]}; "
                f"{self.describe()} has none"
            )

    def describe(self) -> str:
        return getattr(self, "name", type(self).__name__)

    def check_input(self, x: Tensor, y: Tensor | None) -> None:
        """Refuse images the model would silently misread, with what to do instead."""
        if not isinstance(x, Tensor):
            raise VaelabError(f"images must be a torch tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise VaelabError(
                f"images must be floats in [0, 1], got {x.dtype}; for uint8 pixels pass "
                "images.float() / 255"
            )
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.shape):
            raise VaelabError(
                f"images must be shaped (N, {', '.join(map(str, self.shape))}) (N, C, H, W) "
                f"for this model, got {tuple(x.shape)}"
            )
        if len(x) == 0:
            raise VaelabError("no images given: the batch is empty")
        low, high = torch.stack(torch.aminmax(x.detach())).tolist()  # one read from the device
        if math.isnan(low) or math.isnan(high):
            raise VaelabError("images hold NaN pixels; replace or drop those images first")
        if low < 0 or high > 1:
            raise VaelabError(
                f"image values must lie in [0, 1], got {low:.4g} to {high:.4g}; "
                "divide 0-255 pixels by 255"
            )
        if self.capabilities.conditional:
            self.check_labels(y, len(x))

    def check_labels(self, y: Tensor | None, n: int) -> None:
        classes = getattr(self, "num_classes", 0)
        if y is None:
            raise VaelabError(
                f"{self.describe()} is conditional: pass the images' labels (y), "
                f"integers in 0..{classes - 1}"
            )
        if y.shape != (n,) or y.is_floating_point() or y.min() < 0 or y.max() >= classes:
            raise VaelabError(
                f"labels must be {n} integers in 0..{classes - 1} (num_classes={classes}), got "
                f"shape {tuple(y.shape)}, dtype {y.dtype}"
            )
