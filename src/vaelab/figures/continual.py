"""Figures of the continual-learning experiment: what each stage kept and what it lost.

Per strategy, in `out/<strategy>/`:
    forgetting_heatmap.png  test loss of every digit (columns) after every stage (rows)
    digit_curves.png        each digit's test loss across the stages
    dream_composition.png   which digits the model generates after each stage
    memory_manifold.gif     the decoded latent grid after each stage
With two or more strategies, in `out/`: comparison.png, comparison.csv, report.html.
"""

from __future__ import annotations

import csv
import html
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from vaelab.models import Model  # noqa: E402

DIGIT_COLORS = plt.get_cmap("tab10")
OTHER_COLOR = "0.8"
GRID = 15
GRID_SPAN = 3.0
FRAME_MS = 900


def continual_figures(out: str | os.PathLike[str], metrics: dict[str, Any]) -> list[Path]:
    """Every figure for the strategies in `metrics`; returns the files written."""
    from vaelab.continual import load_stage_models

    folder = Path(out)
    order = metrics["protocol"]["order"]
    written = []
    for name, summary in metrics["strategies"].items():
        target = folder / name
        models = load_stage_models(target, order, metrics["protocol"]["latent_dim"])
        written += [
            forgetting_heatmap(summary, order, target / "forgetting_heatmap.png", name),
            digit_curves(summary, order, target / "digit_curves.png", name),
            dream_composition(summary, order, target / "dream_composition.png", name),
            memory_manifold(models, order, target / "memory_manifold.gif", name),
        ]
    if len(metrics["strategies"]) > 1:
        written += [
            comparison_plot(metrics, folder / "comparison.png"),
            comparison_table(metrics, folder / "comparison.csv"),
            report(metrics, folder / "report.html"),
        ]
    return written


def stage_labels(order: Sequence[int]) -> list[str]:
    return [f"{i}: +{d}" for i, d in enumerate(order)]


def forgetting_heatmap(summary: dict, order: Sequence[int], path: Path, title: str) -> Path:
    """Stages x digits test loss; boxed cells: the stage that learned the digit."""
    loss = np.array([[s["loss"][str(d)] for d in order] for s in summary["stages"]])
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * len(order), 1.2 + 0.5 * len(order)))
    image = ax.imshow(loss, cmap="magma_r", aspect="auto")
    middle = (loss.max() + loss.min()) / 2
    for (row, col), value in np.ndenumerate(loss):
        color = "white" if value > middle else "black"
        ax.text(col, row, f"{value:.0f}", ha="center", va="center", fontsize=7, color=color)
    for i in range(len(order)):
        ax.add_patch(plt.Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, lw=1.5, ec="tab:cyan"))
    ax.set_xticks(range(len(order)), [str(d) for d in order])
    ax.set_yticks(range(len(order)), stage_labels(order))
    ax.set_xlabel("test digit")
    ax.set_ylabel("after stage (digit learned)")
    ax.set_title(f"{title}: test loss (neg. ELBO, nats)\nboxed: just learned", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return _save(fig, path)


def digit_curves(summary: dict, order: Sequence[int], path: Path, title: str) -> Path:
    """Each digit's test loss across stages: dotted before it is learned, solid after."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    stages = np.arange(len(order))
    for i, digit in enumerate(order):
        loss = [s["loss"][str(digit)] for s in summary["stages"]]
        color = DIGIT_COLORS(digit)
        ax.plot(stages[: i + 1], loss[: i + 1], ":", color=color, alpha=0.5)
        ax.plot(stages[i:], loss[i:], "-o", color=color, ms=3, label=str(digit))
    ax.set_xticks(stages, stage_labels(order), rotation=45, ha="right")
    ax.set_xlabel("after stage (digit learned)")
    ax.set_ylabel("test loss (neg. ELBO, nats)")
    ax.set_title(f"{title}: each digit's test loss (dotted: not learned yet)", fontsize=10)
    ax.legend(title="digit", ncol=2, fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def dream_composition(summary: dict, order: Sequence[int], path: Path, title: str) -> Path:
    """Stacked shares of the digits the classifier sees among the model's samples."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    _stacked_shares(ax, [s["dream_share"] for s in summary["stages"]], order)
    ax.set_xticks(range(len(order)), stage_labels(order), rotation=45, ha="right")
    ax.set_xlabel("after stage (digit learned)")
    ax.set_ylabel("share of generated images")
    ax.set_title(f"{title}: what the model dreams (samples named by a CNN)", fontsize=10)
    ax.legend(title="digit", ncol=2, fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _save(fig, path)


def _stacked_shares(ax: Any, shares: Sequence[dict[str, float]], order: Sequence[int]) -> None:
    bottom = np.zeros(len(shares))
    for digit in sorted(order):
        values = np.array([s[str(digit)] for s in shares])
        ax.bar(range(len(shares)), values, bottom=bottom, color=DIGIT_COLORS(digit), label=digit)
        bottom += values
    if (1 - bottom > 1e-9).any():
        ax.bar(range(len(shares)), 1 - bottom, bottom=bottom, color=OTHER_COLOR, label="other")
    ax.set_ylim(0, 1)


@torch.inference_mode()
def latent_grid(model: Model, n: int = GRID, span: float = GRID_SPAN) -> np.ndarray:
    """The decoded images over an n x n grid of the first two latent axes (others 0)."""
    axis = torch.linspace(-span, span, n)
    z = torch.zeros(n * n, model.latent_dim)
    z[:, 0] = axis.repeat(n)
    z[:, 1] = axis.flip(0).repeat_interleave(n)
    images = torch.sigmoid(model.decode(z))[:, 0].numpy()
    size = images.shape[-1]
    return images.reshape(n, n, size, size).transpose(0, 2, 1, 3).reshape(n * size, n * size)


def memory_manifold(models: Sequence[Model], order: Sequence[int], path: Path, title: str) -> Path:
    """A GIF: the latent grid after each stage, with the digits learned so far."""
    frames = []
    for stage, model in enumerate(models):
        fig, ax = plt.subplots(figsize=(4.4, 4.8))
        ax.imshow(latent_grid(model), cmap="gray", vmin=0, vmax=1)
        ax.set_axis_off()
        learned = ", ".join(str(d) for d in order[: stage + 1])
        ax.set_title(f"{title}, after stage {stage}\nlearned: {learned}", fontsize=10)
        frames.append(_to_image(fig))
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=FRAME_MS, loop=0)
    return path


def comparison_plot(metrics: dict, path: Path) -> Path:
    """Strategies side by side: average and per-digit forgetting, and their final dreams."""
    order = metrics["protocol"]["order"]
    names = list(metrics["strategies"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3), gridspec_kw={"width_ratios": [1, 1.6, 1.2]})
    averages = [metrics["strategies"][n]["avg_forgetting"] for n in names]
    axes[0].bar(names, averages, color=plt.get_cmap("Set2")(range(len(names))))
    for i, value in enumerate(averages):
        axes[0].text(i, value, f"{value:.1f}", ha="center", va="bottom", fontsize=8)
    axes[0].set_ylabel("average forgetting (nats)")
    axes[0].set_title("average forgetting (lower is better)", fontsize=10)
    axes[0].tick_params(axis="x", rotation=20)
    for i, name in enumerate(names):
        per_digit = metrics["strategies"][name]["forgetting"]
        axes[1].plot(
            range(len(order) - 1),
            [per_digit[str(d)] for d in order[:-1]],
            "-o",
            color=plt.get_cmap("Set2")(i),
            label=name,
            ms=4,
        )
    axes[1].axhline(0, color="0.5", lw=0.8)
    axes[1].set_xticks(range(len(order) - 1), [str(d) for d in order[:-1]])
    axes[1].set_xlabel("digit (in the order learned)")
    axes[1].set_ylabel("loss at end - loss when learned (nats)")
    axes[1].set_title("forgetting per digit", fontsize=10)
    axes[1].legend(fontsize=8)
    axes[1].grid(alpha=0.3)
    _stacked_shares(axes[2], [metrics["strategies"][n]["final_dream_share"] for n in names], order)
    axes[2].set_xticks(range(len(names)), names, rotation=20)
    axes[2].set_ylabel("share of generated images")
    axes[2].set_title("what each model dreams at the end", fontsize=10)
    axes[2].legend(title="digit", ncol=2, fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _save(fig, path)


COLUMNS = [
    ("strategy", "strategy"),
    ("avg_forgetting", "average forgetting (nats)"),
    ("avg_recon_forgetting", "average recon. forgetting (nats)"),
    ("final_mean_loss", "final mean test loss (nats)"),
    ("first_digit_final_share", "first digit's final dream share"),
    ("train_images", "images trained on"),
    ("train_seconds", "training seconds"),
]


def comparison_rows(metrics: dict) -> list[dict[str, Any]]:
    """One row per strategy: forgetting, final loss, the first digit's dreams, cost."""
    first = str(metrics["protocol"]["order"][0])
    rows = []
    for name, summary in metrics["strategies"].items():
        final = summary["final_loss"]
        rows.append(
            {
                "strategy": name,
                "avg_forgetting": round(summary["avg_forgetting"], 2),
                "avg_recon_forgetting": round(summary["avg_recon_forgetting"], 2),
                "final_mean_loss": round(sum(final.values()) / len(final), 2),
                "first_digit_final_share": round(summary["final_dream_share"][first], 3),
                "train_images": sum(s["train_images"] for s in summary["stages"]),
                "train_seconds": round(sum(s["train_seconds"] for s in summary["stages"]), 1),
            }
        )
    return rows


def comparison_table(metrics: dict, path: Path) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, [key for key, _ in COLUMNS])
        writer.writeheader()
        writer.writerows(comparison_rows(metrics))
    return path


def report(metrics: dict, path: Path) -> Path:
    """A single HTML page: the protocol, the comparison table and every figure."""
    protocol = metrics["protocol"]
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(row[key]))}</td>" for key, _ in COLUMNS) + "</tr>"
        for row in comparison_rows(metrics)
    )
    sections = "".join(
        f"<h2>{html.escape(name)}</h2>"
        + "".join(
            f'<img src="{name}/{file}" alt="{name} {file}">'
            for file in (
                "forgetting_heatmap.png",
                "digit_curves.png",
                "dream_composition.png",
                "memory_manifold.gif",
            )
        )
        for name in metrics["strategies"]
    )
    accuracy = metrics["classifier"].get("test_accuracy", float("nan"))
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>vaelab: does the VAE remember?</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}img{{max-width:100%}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}</style></head>
<body><h1>Does the VAE remember?</h1>
<p>The article's VAE learns the digits {html.escape(str(protocol["order"]))} one stage at a time
on {html.escape(protocol["dataset"])} ({protocol["epochs_per_stage"]} epoch(s) per stage, latent
size {protocol["latent_dim"]}, seed {protocol["seed"]}). Forgetting of a digit: its test loss at
the end minus its test loss just after it was learned, averaged over all digits but the last.
Dreams: {protocol["dream_samples"]} prior samples named by a CNN with test accuracy
{accuracy:.4f}.</p>
<table><tr>{head}</tr>{body}</table>
<img src="comparison.png" alt="comparison">{sections}</body></html>
"""
    path.write_text(page)
    return path


def _to_image(fig: Any) -> Image.Image:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
