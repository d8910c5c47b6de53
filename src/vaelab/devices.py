"""Where models compute, and what makes each device fast and exact.

`resolve_device` turns `--device` into a `torch.device`, refusing one that is not here;
`prepare_for_speed` puts a model there in the layout its convolutions run fastest in;
`sum_dtype` is the dtype loss sums keep on that device.
"""

from __future__ import annotations

import ctypes
import sys

import torch

from vaelab.errors import SettingError
from vaelab.models import Model

MALLOC_OPTIONS = {-1: 1 << 30, -3: 1 << 30}  # glibc's M_TRIM_THRESHOLD, M_MMAP_THRESHOLD


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise SettingError(f"unknown {{device}} {name!r}; choose auto, cpu, cuda or mps", "device")
    if name == "cuda" and not torch.cuda.is_available():
        raise SettingError(
            "{device} cuda asked for, but PyTorch sees no CUDA GPU; use {device} cpu", "device"
        )
    if name == "mps" and not torch.backends.mps.is_available():
        raise SettingError(
            "{device} mps asked for, but it is not available here; use {device} cpu", "device"
        )
    return torch.device(name)


def sum_dtype(device: torch.device) -> torch.dtype:
    """The dtype loss sums are kept in on `device`: float64, so that an epoch's sums
    lose nothing, except on MPS, which has no float64 (float32 sums moved one epoch's
    mean losses on full MNIST by about 1e-6 of their value, docs/speed.md)."""
    return torch.float32 if device.type == "mps" else torch.float64


def keep_freed_memory() -> None:
    """Let glibc keep freed blocks for reuse instead of handing them back to the OS.

    A training step allocates and frees activation buffers of a few MB. By
    default glibc serves each with a fresh `mmap` and unmaps it on `free`, so
    every step page-faults thousands of zeroed pages in again; with the mmap
    and trim thresholds raised the same heap memory is reused, which speeds a
    CPU step up by up to 1.4x. Resident memory then stays at its peak. Applies
    to the whole process, on Linux with glibc only; elsewhere it does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    for option, value in MALLOC_OPTIONS.items():
        libc.mallopt(option, value)


def prepare_for_speed(model: Model, device: torch.device) -> Model:
    """Move `model` to `device` with its 4-D weights channels-last, the fast layout for convs.

    Only memory strides change, never values: oneDNN's convolutions run
    1.4-1.9x faster on channels-last tensors, and every later activation
    follows the layout of the first conv's output.
    """
    if device.type == "cpu":
        keep_freed_memory()
    return model.to(device, memory_format=torch.channels_last)
