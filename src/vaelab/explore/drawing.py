"""A drawn or dropped picture turned into an image the run's model can read.

A model only knows images like its training data, so a picture is brought
to their form before it is encoded: ink bright on a dark background (or the
data's own polarity), cropped to its ink and scaled so its longest side is
as long as a typical training object's, then centred by its centre of mass,
as MNIST's digits were prepared.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch import Tensor

MAX_BYTES = 2 * 1024 * 1024
"""The largest request body read: a 280 x 280 canvas PNG is a few kilobytes."""
MAX_PIXELS = 4096 * 4096
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
INK = 0.2
"""Pixels brighter than this (0..1) count as ink when cropping."""


class PictureError(ValueError):
    """The picture cannot be read or holds nothing to encode; the message says why."""


def read_picture(body: bytes) -> np.ndarray:
    """Ink intensity in [0, 1], (H, W), ink bright: from the alpha channel of a picture on a
    transparent background, else the grey values, inverted when the background is light."""
    try:
        picture = Image.open(io.BytesIO(body))
    except UnidentifiedImageError:
        raise PictureError(f"not an image; send one of {', '.join(FORMATS)}") from None
    except (OSError, ValueError) as err:  # a PNG's signature, then too little to read
        raise PictureError(f"the image is damaged or truncated ({err})") from None
    if picture.format not in FORMATS:
        kinds = ", ".join(FORMATS)
        raise PictureError(f"{picture.format} images are not read; send one of {kinds}")
    width, height = picture.size
    if width * height > MAX_PIXELS:
        raise PictureError(f"the image is {width} x {height} pixels; send at most 4096 x 4096")
    try:
        rgba = np.asarray(picture.convert("RGBA"), dtype=np.float32) / 255
    except (OSError, ValueError) as err:
        raise PictureError(f"the image is damaged or truncated ({err})") from None
    alpha = rgba[..., 3]
    if alpha.min() < 1:
        return alpha
    grey = rgba[..., :3].mean(-1)
    return 1 - grey if border(grey).mean() > 0.5 else grey


def border(image: np.ndarray) -> np.ndarray:
    """The outermost pixels of the last two axes, to tell the background's brightness."""
    return np.concatenate(
        [image[..., 0, :], image[..., -1, :], image[..., :, 0], image[..., :, -1]], axis=-1
    )


def fit(ink: np.ndarray, size: int, box: float) -> np.ndarray:
    """`ink` cropped, scaled so its longest side spans `box` of `size`, and centred by its
    centre of mass in a `size` x `size` image."""
    rows, cols = np.nonzero(ink > INK)
    if len(rows) == 0:
        raise PictureError("the image holds no ink: draw something first")
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = max(1.0, box * size) / max(crop.shape)
    shape = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    small = np.asarray(Image.fromarray(crop).resize(shape, Image.Resampling.BOX))
    height, width = small.shape
    top = _centred(small.sum(1), size - height, size)
    left = _centred(small.sum(0), size - width, size)
    out = np.zeros((size, size), np.float32)
    out[top : top + height, left : left + width] = np.clip(small, 0, 1)
    return out


def _centred(mass: np.ndarray, room: int, size: int) -> int:
    """The offset that puts the centre of `mass` (a profile along one axis) at the middle of
    `size`, kept inside the image."""
    centre = (np.arange(len(mass)) * mass).sum() / mass.sum()
    return int(np.clip(round(size / 2 - centre), 0, room))


def typical_box(images: np.ndarray) -> float:
    """The median share of the image side that an object's longest side spans in `images`
    (N, H, W) in [0, 1], bright on dark: about 20/28 for MNIST's digits."""
    ink = images > INK
    spans = []
    for axis in (1, 2):
        filled = ink.any(axis=axis)
        first = filled.argmax(1)
        last = filled.shape[1] - 1 - filled[:, ::-1].argmax(1)
        spans.append(np.where(filled.any(1), last - first + 1, 0))
    return float(np.median(np.maximum(*spans))) / images.shape[-1]


@dataclass(frozen=True)
class Style:
    """How a run's images look: the share of the side their objects span, and whether their
    background is light (ink dark), so a picture can be made to look the same."""

    box: float
    light_background: bool

    @classmethod
    def of(cls, images: Tensor) -> Style:
        """The style of uint8 images (N, C, H, W)."""
        grey = images.float().mean(1).numpy() / 255
        light = bool(border(grey).mean() > 0.5)
        return cls(typical_box(1 - grey if light else grey), light)

    def apply(self, ink: np.ndarray, size: int) -> np.ndarray:
        """`ink` (bright) fitted into a `size` x `size` image of this style."""
        fitted = fit(ink, size, self.box)
        return 1 - fitted if self.light_background else fitted
