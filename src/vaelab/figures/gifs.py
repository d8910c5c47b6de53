"""Animated GIFs with Pillow: the autoencoder learning epoch by epoch, and walks in latent space.

A frame is a pixel mosaic enlarged without smoothing, under a band of text
that says what the frame shows (epoch and loss, or the current z).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from vaelab.figures.images import tile
from vaelab.models import Model
from vaelab.scores import reconstruct

SCALE = 3
WALK_SCALE = 12
"""A walk shows one digit at a time: 28 pixels enlarged to 336, wide enough to read."""
FONT_SIZE = 14
LINE = FONT_SIZE + 6
PAD = 2


def frame(pixels: np.ndarray, lines: Sequence[str], scale: int = SCALE) -> Image.Image:
    """`pixels` enlarged `scale` times under a white band holding `lines` of text."""
    image = Image.fromarray(pixels).resize(
        (pixels.shape[1] * scale, pixels.shape[0] * scale), Image.Resampling.NEAREST
    )
    font = ImageFont.load_default(size=FONT_SIZE)
    text_width = max(int(font.getlength(line)) for line in lines) + LINE
    width = max(image.width, text_width)
    band = LINE * len(lines) + 4
    canvas = Image.new(image.mode, (width, image.height + band), "white")
    canvas.paste(image, ((width - image.width) // 2, band))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((LINE // 2, 3 + i * LINE), line, fill="black", font=font)
    return canvas


def save_gif(frames: Sequence[Image.Image], path: str | Path, ms_per_frame: int = 500) -> Path:
    """Write `frames` as a looping GIF; the last frame stays up three times as long."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    durations = [ms_per_frame] * (len(frames) - 1) + [3 * ms_per_frame]
    frames[0].save(path, save_all=True, append_images=list(frames[1:]), duration=durations, loop=0)
    return path


def read_frames(path: str | Path) -> list[np.ndarray]:
    """Every frame of a GIF as a grey uint8 array, to check what an animation shows."""
    with Image.open(path) as gif:
        frames = []
        for index in range(gif.n_frames):
            gif.seek(index)
            frames.append(np.asarray(gif.convert("L")))
    return frames


class ReconstructionFrames:
    """A `train()` callback that draws fixed images over their reconstructions each epoch.

    Pass it in `callbacks=[frames]`; after training, `frames.save(path)`
    writes the GIF, one frame per epoch.
    """

    def __init__(self, images: Tensor, epochs: int, scale: int = SCALE) -> None:
        self.images = images
        self.epochs = epochs
        self.scale = scale
        self.frames: list[Image.Image] = []

    def __call__(self, epoch: int, model: Model, row: dict[str, Any]) -> None:
        recons = torch.sigmoid(reconstruct(model, self.images.to(_device(model)))).cpu()
        pixels = tile(torch.cat([self.images, recons]), len(self.images), pad=PAD, fill=255)
        loss = row.get("val_loss", row["train_loss"])
        which = "val" if "val_loss" in row else "train"
        lines = [
            f"epoch {epoch}/{self.epochs}   {which} loss {loss:.4f}",
            "top: test digits   bottom: reconstructions",
        ]
        self.frames.append(frame(pixels, lines, self.scale))

    def save(self, path: str | Path, ms_per_frame: int = 600) -> Path:
        return save_gif(self.frames, path, ms_per_frame)


def walk(images: Tensor, captions: Sequence[Sequence[str]], path: str | Path) -> Path:
    """One frame per decoded point of a latent walk, each with its lines of caption."""
    frames = [
        frame(tile(image[None], 1), lines, scale=WALK_SCALE)
        for image, lines in zip(images, captions, strict=True)
    ]
    return save_gif(frames, path, ms_per_frame=350)


def _device(model: Model) -> torch.device:
    return next(model.parameters()).device
