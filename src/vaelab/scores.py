"""Per-image anomaly scores: higher means more anomalous.

Every score is a function `(model, images) -> (N,)` over float images in
[0, 1], computed in batches under `torch.inference_mode`. Reconstruction
scores decode the deterministic code (the AE's bottleneck, the VAE's
posterior mean), so they are the same on every call.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from vaelab.errors import VaelabError
from vaelab.models import Model

BATCH = 1000


def batched(fn: Callable[[Tensor], Tensor], images: Tensor, batch_size: int = BATCH) -> Tensor:
    """`fn` applied to `images` in batches, results concatenated along the first axis."""
    return torch.cat([fn(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


@torch.inference_mode()
def reconstruct(model: Model, images: Tensor) -> Tensor:
    """Reconstruction logits from the deterministic code."""
    model.eval()
    return batched(lambda x: model.decode(model.encode(x)), images)


def pixel_errors(model: Model, images: Tensor, kind: str = "bce") -> Tensor:
    """Per-pixel reconstruction error (N, H, W), summed over channels: the anomaly map."""
    logits = reconstruct(model, images)
    if kind == "bce":
        error = F.binary_cross_entropy_with_logits(logits, images, reduction="none")
    elif kind == "mse":
        error = (torch.sigmoid(logits) - images).square()
    else:
        raise VaelabError(f"unknown error map {kind!r}; choose bce or mse")
    return error.sum(1)


def recon_bce(model: Model, images: Tensor) -> Tensor:
    """-log p(x | code): binary cross-entropy summed over pixels."""
    return pixel_errors(model, images, "bce").flatten(1).sum(1)


def recon_mse(model: Model, images: Tensor) -> Tensor:
    """Squared error between image and reconstruction, summed over pixels."""
    return pixel_errors(model, images, "mse").flatten(1).sum(1)


SCORES: dict[str, Callable[..., Tensor]] = {
    "recon-bce": recon_bce,
    "recon-mse": recon_mse,
}


def score(model: Model, images: Tensor, name: str = "recon-bce", **options: object) -> Tensor:
    """The per-image score `name` (see `SCORES`); higher = more anomalous."""
    if name not in SCORES:
        raise VaelabError(f"unknown score {name!r}; choose one of {', '.join(SCORES)}")
    return SCORES[name](model, images, **options)
