"""Images as the page receives them: PNG bytes, data URLs inside JSON, error heat maps."""

from __future__ import annotations

import base64
import io

import numpy as np
from matplotlib import colormaps
from PIL import Image
from torch import Tensor

from vaelab.figures.images import to_uint8

HEAT = colormaps["magma"]


def png(pixels: np.ndarray) -> bytes:
    """uint8 pixels, (H, W) or (H, W, 3), as a PNG file."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(pixels: np.ndarray) -> str:
    """A PNG the page can show as `img.src` without another request."""
    return "data:image/png;base64," + base64.b64encode(png(pixels)).decode()


def image_url(image: Tensor) -> str:
    """One float image (C, H, W) in [0, 1] as a data URL."""
    return data_url(to_uint8(image[None])[0])


def heat_url(error: Tensor, top: float = 1.0) -> str:
    """A per-pixel error map (H, W) coloured from black (0) to pale yellow (`top` and above)."""
    share = (error / top).clamp(0, 1).numpy()
    return data_url((HEAT(share)[..., :3] * 255).astype(np.uint8))
