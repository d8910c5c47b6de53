"""Figures of the Split-MNIST benchmark: what each strategy still knows, and what it replays.

accuracy_matrix.png   per strategy, the test accuracy of every task (columns) after
                      every task learned (rows); the last row is the final score
samples-<name>.png    per task learned (rows), what the strategy's generator dreams
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib import figure as mpl
from torch import Tensor

from vaelab.figures.images import tile
from vaelab.figures.plots import _show, save


def task_labels(tasks: int) -> list[str]:
    return [f"{2 * t}-{2 * t + 1}" for t in range(tasks)]


def accuracy_matrices(matrices: dict[str, list[list[float | None]]], path: Path) -> Path:
    """One tasks x tasks heatmap per strategy, accuracy in %; a row of blanks is a task
    the strategy does not train after (offline learns them all at the end)."""
    names = list(matrices)
    columns = min(4, len(names))
    rows = math.ceil(len(names) / columns)
    fig = mpl.Figure(figsize=(3.3 * columns, 3.1 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax, name in zip(axes, names, strict=False):
        values = np.array([[np.nan if v is None else 100 * v for v in r] for r in matrices[name]])
        ax.imshow(values, cmap="viridis", vmin=0, vmax=100)
        for (r, c), v in np.ndenumerate(values):
            if not np.isnan(v):
                ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=7,
                        color="black" if v > 60 else "white")  # fmt: skip
        labels = task_labels(len(values))
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        final = values[-1].mean()
        ax.set_title(f"{name}: {final:.1f}% at the end", fontsize=9)
        ax.set_xlabel("test task (digits)", fontsize=8)
        ax.set_ylabel("after learning", fontsize=8)
    for ax in axes[len(names) :]:
        ax.set_axis_off()
    fig.suptitle("Split-MNIST, class-incremental: test accuracy (%)", fontsize=10)
    return save(fig, path)


SHOWN = 40
"""Dreams drawn per task, picked evenly from those kept (a conditional generator's come in
blocks per digit, so every digit shows)."""


def task_samples(samples: Sequence[Tensor | None], name: str, path: Path) -> Path:
    """Row t: `SHOWN` of the generator's dreams after task t (uint8 images)."""
    fig = mpl.Figure(figsize=(0.3 * SHOWN + 0.4, 0.5 * len(samples) + 0.5))
    axes = np.atleast_1d(fig.subplots(len(samples), 1))
    for task, (ax, images) in enumerate(zip(axes, samples, strict=True)):
        ax.set_axis_off()
        if images is None:
            continue
        ax.set_title(f"after digits {2 * task}-{2 * task + 1}", fontsize=7, loc="left")
        if len(images) > SHOWN:
            images = images[torch.linspace(0, len(images) - 1, SHOWN).round().long()]
        _show(ax, tile(images.float() / 255, columns=SHOWN, pad=1))
    fig.suptitle(f"{name}: what its generative model dreams after each task", fontsize=9)
    return save(fig, path)
