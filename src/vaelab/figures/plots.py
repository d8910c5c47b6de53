"""Static figures as PNG files: reconstructions, latent scatter, manifold, latent traversal,
losses, samples, anomaly maps.

Each function takes plain arrays or tensors (never a run) and a path, draws
one figure and returns the path, so the demo, `vaelab plot` and other
modules share the same drawing code.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from vaelab.errors import SettingError
from vaelab.figures.images import tile, to_uint8
from vaelab.figures.latent import View

DPI = 110
TAB10 = matplotlib.colormaps["tab10"].colors
DIGITS = ListedColormap([*TAB10[:7], "black", *TAB10[8:]], name="digits")
"""tab10 with its grey (7) made black, so no digit looks like the light grey of "other"."""
IMAGES = "gray"
ERRORS = "inferno"
PART_NAMES = {"recon": "reconstruction", "kl": "KL"}
REPORT_WIDTH = 8.8
"""Inches that fill the report's 992-pixel column at `DPI`: a figure this wide or narrower is
shown at full size, so its 8-point text stays above 10 pixels on screen."""
MAP_COLUMNS = 10
MAP_ROWS = ("input", "recon.", "error")


STATIC_SUFFIXES = (".png", ".pdf", ".svg", ".svgz", ".eps", ".ps", ".jpg", ".jpeg", ".tif",
                   ".tiff", ".webp", ".gif")  # fmt: skip
"""What matplotlib writes with no more software (.pgf needs LaTeX; raw pixel dumps left out)."""
ANIMATED_SUFFIXES = (".gif", ".png", ".webp")
"""What Pillow writes as an animation (.png as an animated PNG)."""
WRITABLE = {".png": STATIC_SUFFIXES, ".gif": ANIMATED_SUFFIXES}
"""The suffixes a kind can write, by the suffix of its default file name."""


def figure_file(out: str | os.PathLike[str], name: str, what: str, setting: str = "out") -> Path:
    """Where a figure of default file `name` goes when asked for as `out`: `name` inside
    `out` where that is a folder (existing, or written with a trailing slash); `out` with
    `name`'s suffix where it has none. A suffix its writer cannot write is refused before
    anything is drawn (a `SettingError` naming `setting`), naming those it can."""
    path, default = Path(out), Path(name).suffix
    if path.is_dir() or str(out).endswith(("/", os.sep)):
        return path / name
    if not path.suffix:
        return path.with_name(path.name + default)
    writable = WRITABLE[default]
    if path.suffix.lower() not in writable:
        choices = ", ".join(writable[:-1]) + " or " + writable[-1]
        raise SettingError(
            f"{{{setting}}} {path}: {what} cannot be written as {path.suffix}; choose "
            f"{choices}, or no suffix for {default}",
            setting,
        )
    return path


def save(fig: Figure, path: str | Path) -> Path:
    """Write `fig` to `path` (folders made as needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def render(fig: Figure) -> np.ndarray:
    """`fig` drawn at `DPI` as an RGB array, for animation frames of one fixed size."""
    fig.set_dpi(DPI)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


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
    fig = Figure(figsize=(max(4.0, 0.75 * n), 2.0), layout="constrained")
    axes = fig.subplots(2, 1)
    for ax, images, name in zip(
        axes, (originals, recons), ("input", "reconstruction"), strict=True
    ):
        _show(ax, tile(images, n, pad=2, fill=255))
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    return save(fig, path)


def latent_scatter(
    view: View,
    labels: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    title: str,
    prior_range: float | None = None,
) -> Path:
    """Codes as points coloured by class, with a legend naming each class.

    With `prior_range`, the axes span at least [-prior_range, prior_range]^2 on an equal
    aspect, the square of the manifold figure, drawn dashed, so the two read side by side.
    """
    fig = Figure(figsize=(7.5, 6.2), layout="constrained")
    ax = fig.subplots()
    colours = DIGITS if len(class_names) <= 10 else matplotlib.colormaps["tab20"]
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
    if prior_range is not None:
        _frame_prior(ax, view.points, prior_range)
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


def _frame_prior(ax: Any, points: np.ndarray, limit: float) -> None:
    """Square axes over [-limit, limit]^2 and the data, with that square dashed; the margin is
    the manifold's, whose 15 x 15 cells reach half a step (limit / 14) beyond the square."""
    margin = limit / 14
    low = min(-limit, float(points.min())) - margin
    high = max(limit, float(points.max())) + margin
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    ax.plot([-limit, limit, limit, -limit, -limit], [-limit, -limit, limit, limit, -limit],
            ls="--", lw=0.8, color="0.4", label=f"manifold [-{limit:g}, {limit:g}]²")  # fmt: skip


def manifold_figure(
    images: Tensor, values: np.ndarray, title: str, dims: Sequence[int] = (0, 1), size: float = 7
) -> Figure:
    """The decoded grid drawn on the latent plane, so each cell sits at its z."""
    count = len(values)
    half = (values[1] - values[0]) / 2 if count > 1 else 0.5
    extent = (values[0] - half, values[-1] + half, values[0] - half, values[-1] + half)
    fig = Figure(figsize=(size, size), layout="constrained")
    ax = fig.subplots()
    _show(ax, tile(images, count), extent=extent)
    ticks = np.linspace(values[0], values[-1], min(count, 7))
    ax.set_xticks(ticks, [f"{t:.1f}" for t in ticks])
    ax.set_yticks(ticks, [f"{t:.1f}" for t in ticks])
    ax.set_xlabel(f"z[{dims[0]}]")
    ax.set_ylabel(f"z[{dims[1]}]")
    ax.set_title(title)
    return fig


def manifold(
    images: Tensor, values: np.ndarray, path: str | Path, title: str, dims: Sequence[int] = (0, 1)
) -> Path:
    """`manifold_figure` as a PNG."""
    return save(manifold_figure(images, values, title, dims), path)


def even_ticks(count: int, most: int = 7) -> np.ndarray:
    """Up to `most` of `count` columns, the first and the last among them, equally far apart:
    15 columns get 0, 7 and 14 rather than 0, 2, 5, 7, 9, 12, 14."""
    gaps = max(g for g in range(1, most) if (count - 1) % g == 0) if count > 1 else 0
    return np.linspace(0, count - 1, gaps + 1).round().astype(int)


def traversal(
    images: Tensor, values: np.ndarray, rows: Sequence[str], path: str | Path, title: str
) -> Path:
    """A row of decoded images per latent dimension (named by `rows`), a column per value."""
    columns = len(values)
    height, width = images.shape[-2:]
    cell = 0.5
    fig = Figure(figsize=(cell * columns + 1.6, cell * len(rows) + 1.0), layout="constrained")
    ax = fig.subplots()
    _show(ax, tile(images, columns, pad=2, fill=255))
    shown = even_ticks(columns)
    ax.set_xticks(shown * (width + 2) + width / 2, [f"{values[i]:.1f}" for i in shown])
    ax.set_yticks(np.arange(len(rows)) * (height + 2) + height / 2, rows, fontsize=8)
    ax.tick_params(length=0)
    ax.set_xlabel("value of the dimension varied")
    ax.set_title(title, fontsize=9)
    return save(fig, path)


def loss_curves(metrics: Sequence[dict[str, Any]], path: str | Path, title: str, unit: str) -> Path:
    """Train and validation loss per epoch, one panel for the total and one per part, in the
    model's `unit` (`Model.loss_unit`)."""
    epochs = [row["epoch"] for row in metrics]
    parts = [key[6:] for key in metrics[0] if key.startswith("train_")]
    names = parts if len(parts) > 2 else ["loss"]
    width = min(REPORT_WIDTH, 3.6 * len(names))
    fig = Figure(figsize=(width, 3.2), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)
    marker = "o" if len(epochs) < 30 else None
    for ax, name in zip(axes[0], names, strict=True):
        for split, style in (("train", "-"), ("val", "--")):
            values = [row.get(f"{split}_{name}") for row in metrics]
            if any(v is not None for v in values):
                ax.plot(epochs, values, style, marker=marker, markersize=3, label=split)
        ax.set_title("total loss" if name == "loss" else f"{PART_NAMES.get(name, name)} part")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return save(fig, path)


def samples(images: Tensor, path: str | Path, title: str) -> Path:
    """Images drawn from the model's prior, as a square mosaic."""
    columns = int(np.ceil(np.sqrt(len(images))))
    fig = Figure(figsize=(6, 6), layout="constrained")
    ax = fig.subplots()
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
    error_label: str = "BCE (nats)",
    columns: int = MAP_COLUMNS,
) -> Path:
    """Per image, a column: the image, its reconstruction and where it fails (per-pixel
    `errors`, named by `error_label`); `columns` images a row, more wrap onto further rows."""
    n = len(images)
    columns = min(columns, n)
    blocks = -(-n // columns)
    fig = Figure(figsize=(0.75 * columns + 1.2, 2.6 * blocks + 0.5), layout="constrained")
    axes = fig.subplots(3 * blocks, columns, squeeze=False)
    vmax = float(errors.max())
    inputs, outputs = to_uint8(images), to_uint8(recons)
    for i in range(n, blocks * columns):
        for ax in axes[3 * (i // columns) : 3 * (i // columns) + 3, i % columns]:
            ax.set_axis_off()
    for i in range(n):
        block, column = divmod(i, columns)
        top, middle, bottom = axes[3 * block : 3 * block + 3, column]
        _show(top, inputs[i])
        _show(middle, outputs[i])
        heat = _show(bottom, errors[i].numpy(), cmap=ERRORS, vmin=0, vmax=vmax)
        top.set_title(f"{names[i]}\nscore {scores[i]:.3g}", fontsize=8)
    for block in range(blocks):
        for ax, name in zip(axes[3 * block : 3 * block + 3, 0], MAP_ROWS, strict=True):
            ax.set_ylabel(name, fontsize=9)
    fig.colorbar(heat, ax=axes[2::3, :].ravel().tolist(), shrink=0.9, label=error_label, pad=0.01)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)
