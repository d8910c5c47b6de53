"""The layers of the article's convolutional stacks (`networks.conv_encoder` and
`networks.conv_decoder` put them together).

Encoder: Conv(16) Pool Conv(8) Pool Conv(8) Pool, 28 -> 14 -> 7 -> 4 (Keras'
'same' max-pooling rounds 7 up to 4: `ceil_mode=True` does the same).
Decoder: Conv(8) Up Conv(8) Up Conv(16, 'valid') Up Conv(1), 4 -> 8 -> 16 ->
14 -> 28, ending in logits (the sigmoid lives in the loss, for stability).
Each `UpConv` uses the method measured fastest for its size (forward + backward at
batch 128 on 2 CPU cores, ms: upsample / phases / transposed): 4x4 input, 8 -> 8:
1.3 / 1.9 / 1.5; 8x8, 8 -> 16: 4.3 / 4.4 / 3.4; 14x14, 16 -> 1: 9.4 / 4.1 / 5.7.

Exact rewrites make these stacks fast on a CPU without changing the math or
the parameters (each is checked against the textbook form in float64):

- each ReLU runs after its max-pool (ReLU is monotone, so the two commute,
  forward and backward, on a quarter of the pixels);
- each "nearest x2 upsample, then 3x3 conv" is one `UpConv` layer, computed
  the way that measured fastest for its size (`UPCONV_METHODS`);
- the first conv, whose input never needs a gradient, gets its weight
  gradient from one batched matrix product over image patches (`InputConv`):
  oneDNN's backward pass for a 1-channel input is the slowest op of a step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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


def transposed_taps(padding: int) -> Tensor:
    """T[m, u]: how much of the 3x3 kernel's row u lands on row m of the equivalent 4x4
    stride-2 transposed-conv kernel (with padding 2 - `padding`).

    Output row 2i + a reads low-resolution row i + k - `padding` through phase tap
    k, which a stride-2 transposed conv reaches at kernel row a + 2 + padding - 2k
    (the taps that would fall outside the 4 rows are empty).
    """
    taps = PHASE_TAPS[padding]
    table = torch.zeros(4, 3)
    for a in range(2):
        for k in range(taps.shape[1]):
            if taps[a, k].any():
                table[a + 2 + padding - 2 * k] += taps[a, k]
    return table


TRANSPOSED_TAPS = {padding: transposed_taps(padding) for padding in PHASE_TAPS}
UPCONV_METHODS = ("upsample", "phases", "transposed")


class UpConv(nn.Conv2d):
    """`Conv2d(3x3)` applied to the input upsampled x2 (nearest), in one of three exact ways.

    - "upsample": the textbook form, upsample then convolve (fastest on tiny inputs);
    - "phases": output pixel (2i + a, 2j + b) only sees the input through the rows and
      columns of its parity (a, b), so the conv equals a conv at the input's resolution
      with four summed-up kernels, interleaved by `pixel_shuffle` (fastest for one
      output channel);
    - "transposed": the same sums as one 4x4 stride-2 transposed conv (fastest for
      8 -> 16 channels).

    Every method holds the same weight and bias as the `Conv2d` it replaces; the
    derived kernels are recomputed each call so gradients reach the 3x3 weights.
    """

    def __init__(self, c_in: int, c_out: int, padding: int = 1, method: str = "phases") -> None:
        super().__init__(c_in, c_out, kernel_size=3, padding=padding)
        if method not in UPCONV_METHODS:
            raise ValueError(f"unknown UpConv method {method!r}; choose {UPCONV_METHODS}")
        self.method = method

    def phase_kernels(self) -> tuple[Tensor, Tensor]:
        """The (4 * out, in, k, k) low-resolution kernel and its bias, in pixel-shuffle order."""
        taps = PHASE_TAPS[self.padding[0]].to(self.weight)
        kernel = torch.einsum("aku,blv,oiuv->oabikl", taps, taps, self.weight)
        out, c_in, k = self.out_channels, self.in_channels, taps.shape[1]
        return kernel.reshape(4 * out, c_in, k, k), self.bias.repeat_interleave(4)

    def transposed_kernel(self) -> Tensor:
        """The (in, out, 4, 4) kernel of the equivalent stride-2 transposed conv."""
        table = TRANSPOSED_TAPS[self.padding[0]].to(self.weight)
        return torch.einsum("mu,nv,oiuv->iomn", table, table, self.weight)

    def forward(self, x: Tensor) -> Tensor:
        padding = self.padding[0]
        if self.method == "upsample":
            return super().forward(F.interpolate(x, scale_factor=2, mode="nearest"))
        if self.method == "transposed":
            kernel = self.transposed_kernel()
            return F.conv_transpose2d(x, kernel, self.bias, stride=2, padding=2 - padding)
        kernel, bias = self.phase_kernels()
        return F.pixel_shuffle(F.conv2d(x, kernel, bias, padding=padding), 2)


def patches(x: Tensor, padding: int, size: int = 3) -> Tensor:
    """The (n, in * size^2, h_out * w_out) image patches of `F.unfold`, built from
    size^2 shifted slices: several times faster than `unfold` for a few channels."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    h_out, w_out = h + 2 * padding - size + 1, w + 2 * padding - size + 1
    shifted = [padded[:, :, u : u + h_out, v : v + w_out] for u in range(size) for v in range(size)]
    return torch.stack(shifted, 2).reshape(n, c * size * size, h_out * w_out)


class _InputConvFunction(torch.autograd.Function):
    """A 3x3 conv whose weight gradient is one batched product of patches and gradients."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, padding: int) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return F.conv2d(x, weight, bias, padding=padding)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor, Tensor, None]:  # type: ignore[override]
        x, weight = ctx.saved_tensors
        grad = grad.to(x.dtype)  # bfloat16 under autocast: the float32 weights' gradients
        n, c_out, h, w = grad.shape
        per_pixel = grad.permute(0, 2, 3, 1).reshape(n, h * w, c_out)
        products = torch.bmm(patches(x, ctx.padding, weight.shape[-1]), per_pixel)
        grad_weight = products.sum(0).t().reshape(weight.shape)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.nn.grad.conv2d_input(x.shape, weight, grad, padding=ctx.padding)
        return grad_x, grad_weight, grad.sum((0, 2, 3)), None


class InputConv(nn.Conv2d):
    """The first `Conv2d(3x3)` of a stack: same parameters, faster weight gradient."""

    def __init__(self, c_in: int, c_out: int, padding: int = 1) -> None:
        super().__init__(c_in, c_out, kernel_size=3, padding=padding)

    def forward(self, x: Tensor) -> Tensor:
        if not torch.is_grad_enabled():
            return super().forward(x)
        return _InputConvFunction.apply(x, self.weight, self.bias, self.padding[0])


class Pool(nn.Module):
    """2x2 max-pooling that rounds odd sizes up, as Keras' 'same' padding does.

    `ceil_mode` only changes odd sizes, and PyTorch's kernel is 1.2-1.4x slower
    with it, so it is asked for only when the size is odd.
    """

    def forward(self, x: Tensor) -> Tensor:
        odd = x.shape[-2] % 2 == 1 or x.shape[-1] % 2 == 1
        return F.max_pool2d(x, 2, ceil_mode=odd)


def pool() -> Pool:
    return Pool()


def glorot_init(module: nn.Module) -> None:
    """Keras' defaults: Glorot-uniform weights and zero biases, as the article's models start."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
