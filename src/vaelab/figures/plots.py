"""Static figures as PNG files: reconstructions, latent scatter, manifold, losses, samples,
anomaly maps.

Each function takes plain arrays or tensors (never a run) and a path, draws
one figure and returns the path, so the demo, `vaelab plot` and other
modules share the same drawing code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from torch import Tensor  # noqa: E402

from vaelab.figures.images import tile, to_uint8  # noqa: E402
from vaelab.figures.latent import View  # noqa: E402

DPI = 110
DIGITS = "tab10"
IMAGES = "gray"
ERRORS = "inferno"
PART_NAMES = {"recon": "reconstruction", "kl": "KL"}


def save(fig: Figure, path: str | Path) -> Path:
    """Write `fig` to `path` (folders made as needed) and free it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _show(ax: Any, pixels: np.ndarray, **options: Any) -> Any:
    """An image without ticks or frame; grey pixels drawn in grey, 0 black, 255 white."""
    if pixels.ndim == 2:
        options = {"cmap": IMAGES, "vmin": 0, "vmax": 255, **options}
    shown = ax.imshow(pixels, interpolation="nearest", **options)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    return shown


def reconstructions(originals: Tensor, recons: Tensor, path: str | Path, title: str) -> Path:
    """Two rows: the inputs above, their reconstructions below."""
    n = len(originals)
    fig, axes = plt.subplots(2, 1, figsize=(max(4.0, 0.75 * n), 2.0), layout="constrained")
    for ax, images, name in zip(
        axes, (originals, recons), ("input", "reconstruction"), strict=True
    ):
        _show(ax, tile(images, n, pad=2, fill=255))
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    return save(fig, path)


def latent_scatter(
    view: View, labels: np.ndarray, class_names: Sequence[str], path: str | Path, title: str
) -> Path:
    """Codes as points coloured by class, with a legend naming each class."""
    fig, ax = plt.subplots(figsize=(7.5, 6.2), layout="constrained")
    colours = plt.get_cmap(DIGITS if len(class_names) <= 10 else "tab20")
    for label in np.unique(labels):
        at = labels == label
        ax.scatter(
            *view.points[at].T,
            s=4,
            alpha=0.6,
            color=colours(label % colours.N),
            label=class_names[label],
            rasterized=True,
        )
    ax.set_xlabel(view.axes[0])
    ax.set_ylabel(view.axes[1])
    ax.set_title(f"{title}\n{view.note}" if view.note else title)
    legend = ax.legend(
        title="class", loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=4, frameon=False
    )
    for handle in legend.legend_handles:
        handle.set_alpha(1)
    ax.grid(alpha=0.3)
    return save(fig, path)


def manifold(
    images: Tensor, values: np.ndarray, path: str | Path, title: str, dims: Sequence[int] = (0, 1)
) -> Path:
    """The decoded grid drawn on the latent plane, so each cell sits at its z."""
    size = len(values)
    half = (values[1] - values[0]) / 2 if size > 1 else 0.5
    extent = (values[0] - half, values[-1] + half, values[0] - half, values[-1] + half)
    fig, ax = plt.subplots(figsize=(7, 7), layout="constrained")
    _show(ax, tile(images, size), extent=extent)
    ticks = np.linspace(values[0], values[-1], min(size, 7))
    ax.set_xticks(ticks, [f"{t:.1f}" for t in ticks])
    ax.set_yticks(ticks, [f"{t:.1f}" for t in ticks])
    ax.set_xlabel(f"z[{dims[0]}]")
    ax.set_ylabel(f"z[{dims[1]}]")
    ax.set_title(title)
    return save(fig, path)


def loss_curves(metrics: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Train and validation loss per epoch, one panel for the total and one per part."""
    epochs = [row["epoch"] for row in metrics]
    parts = [key[6:] for key in metrics[0] if key.startswith("train_")]
    names = parts if len(parts) > 2 else ["loss"]
    fig, axes = plt.subplots(
        1, len(names), figsize=(4.2 * len(names), 3.6), layout="constrained", squeeze=False
    )
    marker = "o" if len(epochs) < 30 else None
    for ax, name in zip(axes[0], names, strict=True):
        for split, style in (("train", "-"), ("val", "--")):
            values = [row.get(f"{split}_{name}") for row in metrics]
            if any(v is not None for v in values):
                ax.plot(epochs, values, style, marker=marker, markersize=3, label=split)
        ax.set_title("total loss" if name == "loss" else f"{PART_NAMES.get(name, name)} part")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("nats per image" if len(names) > 1 else "loss")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return save(fig, path)


def samples(images: Tensor, path: str | Path, title: str) -> Path:
    """Images drawn from the model's prior, as a square mosaic."""
    columns = int(np.ceil(np.sqrt(len(images))))
    fig, ax = plt.subplots(figsize=(6, 6), layout="constrained")
    _show(ax, tile(images, columns, pad=2, fill=255))
    ax.set_title(title)
    return save(fig, path)


def anomaly_maps(
    images: Tensor,
    recons: Tensor,
    errors: Tensor,
    scores: Sequence[float],
    names: Sequence[str],
    path: str | Path,
    title: str,
) -> Path:
    """Per column: an image, its reconstruction and where it fails (per-pixel error)."""
    n = len(images)
    fig, axes = plt.subplots(
        3, n, figsize=(1.25 * n + 1.4, 4.6), layout="constrained", squeeze=False
    )
    vmax = float(errors.max())
    rows = (to_uint8(images), to_uint8(recons))
    for i in range(n):
        _show(axes[0, i], rows[0][i])
        _show(axes[1, i], rows[1][i])
        heat = _show(axes[2, i], errors[i].numpy(), cmap=ERRORS, vmin=0, vmax=vmax)
        axes[0, i].set_title(f"{names[i]}\nscore {scores[i]:.0f}", fontsize=9)
    for ax, name in zip(axes[:, 0], ("input", "reconstruction", "pixel error"), strict=True):
        ax.set_ylabel(name, fontsize=9)
    fig.colorbar(heat, ax=axes[2, :], shrink=0.9, label="BCE (nats)", pad=0.01)
    fig.suptitle(title)
    return save(fig, path)
