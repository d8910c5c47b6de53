"""The article's convolutional encoder and decoder stacks, layer by layer.

Encoder: Conv(16) Pool Conv(8) Pool Conv(8) Pool, 28 -> 14 -> 7 -> 4 (Keras'
'same' max-pooling rounds 7 up to 4: `ceil_mode=True` does the same).
Decoder: Conv(8) Up Conv(8) Up Conv(16, 'valid') Up Conv(1), 4 -> 8 -> 16 ->
14 -> 28, ending in logits (the sigmoid lives in the loss, for stability).
"""

from __future__ import annotations

from torch import nn

CODE_SHAPE = (8, 4, 4)
CODE_SIZE = 8 * 4 * 4


def conv(c_in: int, c_out: int, padding: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding=padding)


def encoder(channels: int = 1) -> nn.Sequential:
    return nn.Sequential(
        conv(channels, 16), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
        conv(16, 8), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
        conv(8, 8), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
    )  # fmt: skip


def decoder(channels: int = 1) -> nn.Sequential:
    return nn.Sequential(
        conv(8, 8), nn.ReLU(), nn.Upsample(scale_factor=2),
        conv(8, 8), nn.ReLU(), nn.Upsample(scale_factor=2),
        conv(8, 16, padding=0), nn.ReLU(), nn.Upsample(scale_factor=2),
        conv(16, channels),
    )  # fmt: skip


def glorot_init(module: nn.Module) -> None:
    """Keras' defaults: Glorot-uniform weights and zero biases, as the article's models start."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
