"""The article's convolutional encoder and decoder stacks, layer by layer.

Encoder: Conv(16) Pool Conv(8) Pool Conv(8) Pool, 28 -> 14 -> 7 -> 4 (Keras'
'same' max-pooling rounds 7 up to 4: `ceil_mode=True` does the same).
Decoder: Conv(8) Up Conv(8) Up Conv(16, 'valid') Up Conv(1), 4 -> 8 -> 16 ->
14 -> 28, ending in logits (the sigmoid lives in the loss, for stability).

Two exact rewrites make these stacks fast on a CPU without changing the math
or the parameters: each ReLU runs after its max-pool (ReLU is monotone, so the
two commute, forward and backward, on a quarter of the pixels), and each
"nearest x2 upsample, then 3x3 conv" is one `UpConv`: a convolution at the low
resolution with the four sub-pixel kernels, followed by a pixel shuffle.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CODE_SHAPE = (8, 4, 4)
CODE_SIZE = 8 * 4 * 4

# PHASE_TAPS[padding][a, k, u]: how much of the 3x3 kernel's row u lands on low-resolution
# tap k for output rows of parity a, when the input was upsampled x2 by repeating pixels.
# With padding 1 the taps sit at offsets -1, 0, +1; with padding 0 ('valid') at 0, +1.
PHASE_TAPS = {
    1: torch.tensor(
        [[[1, 0, 0], [0, 1, 1], [0, 0, 0]], [[0, 0, 0], [1, 1, 0], [0, 0, 1]]],
        dtype=torch.float32,
    ),
    0: torch.tensor([[[1, 1, 0], [0, 0, 1]], [[1, 0, 0], [0, 1, 1]]], dtype=torch.float32),
}


def conv(c_in: int, c_out: int, padding: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding=padding)


class UpConv(nn.Conv2d):
    """`Conv2d(3x3)` applied to the input upsampled x2 (nearest), computed without upsampling.

    Output pixel (2i + a, 2j + b) only sees the input through the rows and
    columns of its parity (a, b), so the conv equals a conv at the input's
    resolution with four summed-up kernels, interleaved by `pixel_shuffle`.
    It holds the same weight and bias as the `Conv2d` it replaces; the sums
    are redone each call so gradients reach the 3x3 weights directly.
    """

    def __init__(self, c_in: int, c_out: int, padding: int = 1) -> None:
        super().__init__(c_in, c_out, kernel_size=3, padding=padding)

    def phase_kernels(self) -> tuple[Tensor, Tensor]:
        """The (4 * out, in, k, k) low-resolution kernel and its bias, in pixel-shuffle order."""
        taps = PHASE_TAPS[self.padding[0]].to(self.weight)
        kernel = torch.einsum("aku,blv,oiuv->oabikl", taps, taps, self.weight)
        out, c_in, k = self.out_channels, self.in_channels, taps.shape[1]
        return kernel.reshape(4 * out, c_in, k, k), self.bias.repeat_interleave(4)

    def forward(self, x: Tensor) -> Tensor:
        kernel, bias = self.phase_kernels()
        return F.pixel_shuffle(F.conv2d(x, kernel, bias, padding=self.padding), 2)


def pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(2, ceil_mode=True)


def encoder(channels: int = 1) -> nn.Sequential:
    return nn.Sequential(
        conv(channels, 16), pool(), nn.ReLU(),
        conv(16, 8), pool(), nn.ReLU(),
        conv(8, 8), pool(), nn.ReLU(),
    )  # fmt: skip


def decoder(channels: int = 1) -> nn.Sequential:
    return nn.Sequential(
        conv(8, 8), nn.ReLU(),
        UpConv(8, 8), nn.ReLU(),
        UpConv(8, 16, padding=0), nn.ReLU(),
        UpConv(16, channels),
    )  # fmt: skip


def glorot_init(module: nn.Module) -> None:
    """Keras' defaults: Glorot-uniform weights and zero biases, as the article's models start."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
