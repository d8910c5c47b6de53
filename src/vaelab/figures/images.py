"""Image batches to pixel arrays: one place that knows channels, ranges and mosaics."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from vaelab.errors import VaelabError


def to_uint8(images: Tensor) -> np.ndarray:
    """(N, C, H, W) floats in [0, 1] -> (N, H, W) grey or (N, H, W, 3) colour uint8."""
    channels = images.shape[1]
    if channels not in (1, 3):
        raise VaelabError(f"can only draw 1- or 3-channel images, got {channels} channels")
    pixels = (images.detach().cpu().clamp(0, 1) * 255).round().byte().numpy()
    return pixels[:, 0] if channels == 1 else pixels.transpose(0, 2, 3, 1)


def tile(images: Tensor, columns: int, pad: int = 0, fill: int = 0) -> np.ndarray:
    """The images as a row-major mosaic with `columns` per row and `pad` pixels between."""
    pixels = to_uint8(images)
    n, h, w = pixels.shape[:3]
    rows = -(-n // columns)
    shape = (rows * (h + pad) - pad, columns * (w + pad) - pad, *pixels.shape[3:])
    mosaic = np.full(shape, fill, dtype=np.uint8)
    for i, image in enumerate(pixels):
        r, c = divmod(i, columns)
        mosaic[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = image
    return mosaic
