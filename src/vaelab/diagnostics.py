"""Signs that a model has not learned yet, read from its reconstructions.

An autoencoder or VAE early in training reconstructs every image as nearly
the same picture (a grey square, then an average digit). Its anomaly scores
and figures still look like results (an AUROC of 0.63, say), but they only
measure how far each image is from that one picture. The check here compares
how much the reconstructions vary across images with how much the images
themselves vary, so experiments can say so beside their numbers.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

from vaelab.errors import VaelabWarning
from vaelab.models import Model
from vaelab.scores import reconstruct
from vaelab.wording import count

MIN_SPREAD = 0.05
"""Reconstructions carrying less of the images' variance than this count as nearly constant.

Measured on mnist-sample: a 2-D VAE on the sevens stays below 0.03 while it
draws one grey square or one average seven for every input (up to about 30
epochs) and reaches 0.13 at 40 epochs and 0.18 at 50, once its sevens differ;
the article's autoencoder passes 0.05 at about 5 epochs, when its blobs start
to follow the input's shape."""

CHECKED_IMAGES = 500
"""Enough images for a stable variance, few enough to cost a fraction of a second."""

TITLE_NOTE = "warning: nearly the same reconstruction for every image (train for more epochs)"
"""The line a figure adds under its title when the check fails."""


class UntrainedModelWarning(VaelabWarning):
    """The model reconstructs every image nearly the same way: it has not learned yet."""


def reconstruction_spread(images: Tensor, recons: Tensor) -> float:
    """Summed per-pixel variance of `recons` across images over that of `images`.

    0 means one picture for every input; a model that copies its input gets 1.
    """
    if len(images) < 2:
        raise ValueError("the spread of reconstructions needs at least two images")
    return float(recons.float().var(0).sum() / images.float().var(0).sum().clamp_min(1e-12))


def model_spread(model: Model, images: Tensor, labels: Tensor | None = None) -> float:
    """`reconstruction_spread` of `model` on the first `CHECKED_IMAGES` float `images` (a
    conditional model needs their `labels`)."""
    chosen = images[:CHECKED_IMAGES]
    device = next(model.parameters()).device
    given = None if labels is None else labels[:CHECKED_IMAGES].to(device)
    recons = torch.sigmoid(reconstruct(model, chosen.to(device), given)).cpu()
    return reconstruction_spread(chosen, recons)


def untrained_warning(model: Model, images: Tensor, labels: Tensor | None = None) -> str | None:
    """What to tell the user when `model` reconstructs float `images` nearly identically;
    None when its reconstructions follow the input. A conditional model needs the `labels`."""
    spread = model_spread(model, images, labels)
    if spread >= MIN_SPREAD:
        return None
    return (
        f"the model reconstructs every image nearly the same way (its reconstructions vary "
        f"{spread:.1%} as much as the images do; under {MIN_SPREAD:.0%} means untrained), so "
        "its scores and figures measure distance from one average picture, not what it "
        "learned. Train for more epochs (for scale: the article's 2-D VAE needs about 50 on "
        "mnist-sample's 800 sevens to reconstruct distinct sevens, about 10 s on two CPU cores)"
    )


def recorded_spread(model: Model, images: Tensor, labels: Tensor | None = None) -> float | None:
    """`model_spread` as an experiment records it beside its results (rounded), or None for
    an autoregressive decoder (pixelcnn). Such a model reconstructs by drawing an image
    pixel by pixel from p(x | z) with torch's global random state, so its spread would
    change from one call to the next (a resumed experiment would not repeat its numbers),
    would move the random state of what follows, and would vary with the draw's noise as
    well as with the input (once its pixel layers learn, images drawn from codes that carry
    nothing still differ), which `MIN_SPREAD` was not measured for."""
    if model.capabilities.autoregressive:
        return None
    return round(model_spread(model, images, labels), 4)


def is_untrained(spread: float | None) -> bool:
    """Whether a recorded spread marks a model that has not learned. None (results written
    before the check, or a model it cannot read: `recorded_spread`) counts as trained, so
    older results read as they always did."""
    return spread is not None and spread < MIN_SPREAD


def warn_of_untrained(
    named: Sequence[str],
    noun: str,
    out: str | os.PathLike[str],
    *,
    images: str,
    consequence: str,
    remedy: str = "train for more epochs",
    listed: str = "untrained_runs in results.json",
) -> None:
    """Raise an `UntrainedModelWarning` for the `named` `noun`s (runs, stages) in `out` whose
    models reconstruct every one of their `images` nearly alike: the first three by name,
    what their numbers then mean and what to do, and where the full list is. Nothing when
    none is named. An experiment's run function calls it, so the warning points at the
    line that called that function."""
    if not named:
        return
    shown = ", ".join(named[:3]) + (f" and {len(named) - 3} more" if len(named) > 3 else "")
    warnings.warn(
        f"{count(len(named), noun)} in {out} ({shown}) reconstruct every {images} nearly the "
        f"same way, so {consequence}; {remedy} ({listed})",
        UntrainedModelWarning,
        stacklevel=3,
    )


def untrained_note(n: int, noun: str = "run", listed_in: str = "results.json") -> str:
    """What a results table's row adds when `n` of its `noun`s are untrained."""
    return f"{count(n, noun)} untrained (see {listed_in})"
