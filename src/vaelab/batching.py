"""How many rows (images, or decoded samples) one inference pass takes, by device.

A CPU runs fastest on passes small enough to stay in its caches: on two cores the IWAE
paper's MLP scored about twice as fast at 1,000 decoded samples a pass as at 10,000, and a
pixelcnn, whose layers hold 32 maps of 28x28 for each sample, 2.1-2.4x as fast at 200 as at
1,000 (`benchmarks/nll_pass_size.py`). So where a caller says how large a row's largest
activation is, a CPU pass also keeps that layer's output within `CPU_PASS_FLOATS`. A GPU
runs a pass as a handful of kernel launches whatever its size, so ten times larger passes
make ten times fewer launches. Scores keyed per image (`vaelab.seeding`) and deterministic
ones do not depend on the pass size beyond float rounding.
"""

from __future__ import annotations

import torch

CPU_ROWS = 1000
GPU_ROWS = 10_000
CPU_PASS_FLOATS = 4_000_000
"""The most floats (16 MB) one layer's output may hold in a CPU pass: a pass of the
article's conv VAE (3,136 a row) keeps its 1,000 rows, a pixelcnn's (25,088) takes 159."""


def rows(device: torch.device, row_floats: int = 0) -> int:
    """Rows per inference pass on `device`: `GPU_ROWS` on CUDA; on a CPU, `CPU_ROWS`, or
    fewer where rows whose largest activation holds `row_floats` would overflow
    `CPU_PASS_FLOATS`."""
    if device.type == "cuda":
        return GPU_ROWS
    return max(1, min(CPU_ROWS, CPU_PASS_FLOATS // max(row_floats, 1)))
