"""The training step's two optional fast paths: bfloat16 autocast and `torch.compile`.

Both are settings of `TrainConfig` (`precision`, `compile`), off by default, because
neither is free: bfloat16 keeps 8 bits of each activation's mantissa, and compiling
costs about 40 s before the first step and gained nothing on a CPU (docs/speed.md has
the measurements; none on a GPU yet). Only the training forward pass changes: the
weights, the optimiser and every evaluation stay in float32, so validation losses,
scores and likelihoods are computed exactly as without them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from vaelab.errors import SettingError

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}
"""Autocast dtype of each `precision` (None: no autocast)."""

Forward = Callable[[Tensor, Tensor], object]
"""A training forward pass: (images, labels) -> the model's `Output`."""


def check(precision: str, device: torch.device) -> None:
    """Refuse a precision that is unknown or that `device` cannot autocast to."""
    if precision not in PRECISIONS:
        raise SettingError(
            f"unknown {{precision}} {precision!r}; choose {' or '.join(PRECISIONS)}", "precision"
        )
    if precision == "fp32":
        return
    if device.type not in ("cpu", "cuda"):
        raise SettingError(
            f"{{precision}} {precision} autocasts on cpu and cuda only, not {device.type}; "
            "train in fp32 there",
            "precision",
        )
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise SettingError(
            f"this GPU ({torch.cuda.get_device_name(device)}) has no bfloat16 arithmetic; "
            "train with {precision} fp32",
            "precision",
        )


def training_forward(
    module: nn.Module, device: torch.device, precision: str = "fp32", compile: bool = False
) -> Forward:
    """What runs the training forward pass of `module` (the model, or its DDP wrapper).

    Compiled, it runs through `torch.compile`, drawing its noise from torch's generators as
    the eager model does (so it trains on the same noise); on CUDA, outside DDP (whose
    gradient hooks CUDA graphs cannot hold), with CUDA graphs too
    (`mode="reduce-overhead"`), which replay a step's kernels without launching each one.
    With `precision="bf16"` the pass runs under autocast: matrix products and convolutions
    in bfloat16, the losses in float32 (the likelihoods and the KL read float32 copies,
    `vaelab.models.losses.at_least_float32`).
    """
    check(precision, device)
    run: nn.Module | Callable = module
    if compile:
        # Compiled kernels draw their own random numbers unless told to call torch's: with
        # them a compiled VAE trains on other noise, ended 2.3% higher after 4 epochs here.
        torch._inductor.config.fallback_random = True
        ddp = isinstance(module, nn.parallel.DistributedDataParallel)
        graphs = device.type == "cuda" and not ddp
        run = torch.compile(module, mode="reduce-overhead" if graphs else None)
    dtype = PRECISIONS[precision]
    if dtype is None:
        return run

    def autocast_forward(x: Tensor, y: Tensor) -> object:
        with torch.autocast(device.type, dtype=dtype):
            return run(x, y)

    return autocast_forward
