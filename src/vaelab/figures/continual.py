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
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import figure as mpl
from matplotlib.patches import Rectangle
from PIL import Image

from vaelab.diagnostics import untrained_note
from vaelab.figures import latent
from vaelab.figures.gifs import save_gif
from vaelab.figures.plots import DIGITS, REPORT_WIDTH, manifold_figure, render, save
from vaelab.figures.report import Figure, Report, Section
from vaelab.models import Model
from vaelab.wording import count

OTHER_COLOUR = "0.85"
STRATEGY_HATCHES = ("", "///", "...", "xxx", "\\\\\\", "ooo", "+++", "---")
"""Strategies are told apart by hatching, not colour: colour means a digit in these figures
(and by their names on the axis: more strategies than hatches reuse them in turn)."""
GRID = 15
GRID_LIMIT = 3.0
FRAME_MS = 900
FRAME_INCHES = 5.2


def continual_figures(
    out: str | os.PathLike[str], metrics: dict[str, Any], stage_models: dict[str, list[Model]]
) -> list[Path]:
    """Every figure for the strategies in `metrics`, given each strategy's model after every
    stage; returns the files written."""
    folder = Path(out)
    order = metrics["protocol"]["order"]
    scale = loss_range(metrics)
    written = []
    for name, summary in metrics["strategies"].items():
        target = folder / name
        written += [
            forgetting_heatmap(summary, order, target / "forgetting_heatmap.png", name, scale),
            digit_curves(summary, order, target / "digit_curves.png", name),
            dream_composition(summary, order, target / "dream_composition.png", name),
            memory_manifold(stage_models[name], order, target / "memory_manifold.gif", name),
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


def loss_matrix(summary: dict, order: Sequence[int]) -> np.ndarray:
    """Test loss, stages (rows) x digits (columns)."""
    return np.array([[s["loss"][str(d)] for d in order] for s in summary["stages"]])


def loss_range(metrics: dict) -> tuple[float, float]:
    """The lowest and highest test loss over every strategy: one colour scale for all the
    heatmaps, so the same colour is the same loss in each."""
    order = metrics["protocol"]["order"]
    every = np.concatenate([loss_matrix(s, order).ravel() for s in metrics["strategies"].values()])
    return float(every.min()), float(every.max())


def forgetting_heatmap(
    summary: dict, order: Sequence[int], path: Path, title: str, scale: tuple[float, float]
) -> Path:
    """Stages x digits test loss coloured on `scale` (low, high); boxed cells: the stage that
    learned the digit."""
    loss = loss_matrix(summary, order)
    fig = mpl.Figure(figsize=(2.0 + 0.7 * len(order), 1.6 + 0.55 * len(order)))
    ax = fig.subplots()
    image = ax.imshow(loss, cmap="magma_r", aspect="auto", vmin=scale[0], vmax=scale[1])
    middle = sum(scale) / 2
    for (row, col), value in np.ndenumerate(loss):
        color = "white" if value > middle else "black"
        ax.text(col, row, f"{value:.0f}", ha="center", va="center", fontsize=8, color=color)
    for i in range(len(order)):
        ax.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, lw=1.5, ec="tab:cyan"))
    ax.set_xticks(range(len(order)), [str(d) for d in order])
    ax.set_yticks(range(len(order)), stage_labels(order))
    ax.set_xlabel("test digit")
    ax.set_ylabel("after stage (digit learned)")
    ax.set_title(f"{title}: test loss (neg. ELBO, nats)\nboxed: just learned", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="nats, one scale for every strategy")
    return save(fig, path)


def digit_curves(summary: dict, order: Sequence[int], path: Path, title: str) -> Path:
    """Each digit's test loss across stages: dotted before it is learned, solid after."""
    fig = mpl.Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    stages = np.arange(len(order))
    for i, digit in enumerate(order):
        loss = [s["loss"][str(digit)] for s in summary["stages"]]
        color = DIGITS(digit)
        ax.plot(stages[: i + 1], loss[: i + 1], ":", color=color, alpha=0.5)
        ax.plot(stages[i:], loss[i:], "-o", color=color, ms=3, label=str(digit))
    ax.set_xticks(stages, stage_labels(order), rotation=45, ha="right")
    ax.set_xlabel("after stage (digit learned)")
    ax.set_ylabel("test loss (neg. ELBO, nats)")
    ax.set_title(f"{title}: each digit's test loss (dotted: not learned yet)", fontsize=10)
    ax.legend(title="digit", ncol=2, fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.grid(alpha=0.3)
    return save(fig, path)


def dream_composition(summary: dict, order: Sequence[int], path: Path, title: str) -> Path:
    """Stacked shares of the digits the classifier sees among the model's samples."""
    fig = mpl.Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    _stacked_shares(ax, [s["dream_share"] for s in summary["stages"]], order)
    ax.set_xticks(range(len(order)), stage_labels(order), rotation=45, ha="right")
    ax.set_xlabel("after stage (digit learned)")
    ax.set_ylabel("share of generated images")
    ax.set_title(f"{title}: what the model dreams (samples named by a CNN)", fontsize=10)
    ax.legend(title="digit", ncol=2, fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    return save(fig, path)


def _stacked_shares(ax: Any, shares: Sequence[dict[str, float]], order: Sequence[int]) -> None:
    bottom = np.zeros(len(shares))
    for digit in sorted(order):
        values = np.array([s[str(digit)] for s in shares])
        ax.bar(range(len(shares)), values, bottom=bottom, color=DIGITS(digit), label=digit)
        bottom += values
    if (1 - bottom > 1e-9).any():
        ax.bar(range(len(shares)), 1 - bottom, bottom=bottom, color=OTHER_COLOUR, label="other")
    ax.set_ylim(0, 1)


def memory_manifold(models: Sequence[Model], order: Sequence[int], path: Path, title: str) -> Path:
    """A GIF: the decoded latent grid on its z axes after each stage, with the digits learned
    so far. A conditional model is asked for the first digit throughout: its memory is the
    one the later stages can overwrite."""
    frames = []
    for stage, model in enumerate(models):
        label = order[0] if model.capabilities.conditional else None
        images, values = latent.manifold(model, GRID, GRID_LIMIT, label=label)
        learned = ", ".join(str(d) for d in order[: stage + 1])
        asked = "" if label is None else f"; drawing {label}s"
        heading = f"{title}, after stage {stage}; learned: {learned}{asked}"
        fig = manifold_figure(images, values, heading, size=FRAME_INCHES)
        frames.append(Image.fromarray(render(fig)))
    return save_gif(frames, path, FRAME_MS)


def comparison_plot(metrics: dict, path: Path) -> Path:
    """Strategies side by side: average and per-digit forgetting, and their final dreams.

    Strategies are hatched outlines named on the axis, so the only colours are the digits'.
    """
    order = metrics["protocol"]["order"]
    names = list(metrics["strategies"])
    fig = mpl.Figure(figsize=(REPORT_WIDTH, 3.9), layout="constrained")
    axes = fig.subplots(1, 3, width_ratios=[1, 1.5, 1.2])
    _average_forgetting(axes[0], metrics, names)
    _forgetting_per_digit(axes[1], metrics, names, order)
    _stacked_shares(axes[2], [metrics["strategies"][n]["final_dream_share"] for n in names], order)
    axes[2].set_xticks(range(len(names)), names, rotation=_slant(names), ha="right")
    axes[2].set_ylabel("share of generated images")
    axes[2].set_title("what each model dreams at the end", fontsize=10)
    axes[2].legend(title="digit", ncol=1, fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    return save(fig, path)


def _slant(names: list[str]) -> int:
    """Degrees to turn the strategies' names on an axis by, so that five or more stay apart."""
    return 20 if len(names) <= 4 else 45


def _strategy_bar(name_index: int) -> dict[str, Any]:
    hatch = STRATEGY_HATCHES[name_index % len(STRATEGY_HATCHES)]
    return {"color": "white", "edgecolor": "black", "hatch": hatch}


def _average_forgetting(ax: Any, metrics: dict, names: list[str]) -> None:
    averages = [metrics["strategies"][n]["avg_forgetting"] for n in names]
    for i, value in enumerate(averages):
        ax.bar(i, value, **_strategy_bar(i))
        ax.text(i, value, f"{value:.1f}", ha="center", va="bottom" if value >= 0 else "top",
                fontsize=8)  # fmt: skip
    ax.axhline(0, color="0.5", lw=0.8)
    ax.margins(y=0.12)
    ax.set_xticks(range(len(names)), names, rotation=_slant(names), ha="right")
    ax.set_ylabel("average forgetting (nats)")
    ax.set_title("average forgetting\n(lower is better)", fontsize=10)


def _forgetting_per_digit(ax: Any, metrics: dict, names: list[str], order: Sequence[int]) -> None:
    digits = order[:-1]
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        per_digit = metrics["strategies"][name]["forgetting"]
        x = np.arange(len(digits)) + (i - (len(names) - 1) / 2) * width
        ax.bar(x, [per_digit[str(d)] for d in digits], width, label=name, **_strategy_bar(i))
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xticks(range(len(digits)), [str(d) for d in digits])
    ax.set_xlabel("digit (in the order learned)")
    ax.set_ylabel("loss at end - when learned (nats)")
    ax.set_title("forgetting per digit", fontsize=10)
    ax.legend(fontsize=8, ncol=2, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    ax.grid(alpha=0.3, axis="y")


def comparison_rows(metrics: dict) -> list[dict[str, Any]]:
    """One row per strategy: forgetting, final loss, the first digit's dreams, cost, and the
    stages whose model had not learned (none in metrics written before the check)."""
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
                "untrained_stages": len(summary.get("untrained_stages", [])),
            }
        )
    return rows


def comparison_table(metrics: dict, path: Path) -> Path:
    rows = comparison_rows(metrics)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


FIGURES = {
    "forgetting_heatmap.png": "Test loss (negative ELBO, nats) of every digit (columns) after "
    "every stage (rows); boxed: the stage that learned the digit.",
    "digit_curves.png": "Each digit's test loss across the stages, dotted before it is learned.",
    "dream_composition.png": "What the model generates after each stage: prior samples named "
    "by the digit classifier.",
    "memory_manifold.gif": "The decoded latent grid (z in [-3, 3]²) after each stage.",
}


def describe_protocol(metrics: dict) -> str:
    """One paragraph: what was trained, how forgetting and dreams are measured."""
    p = metrics["protocol"]
    train = p["train"]
    accuracy = metrics["classifier"].get("test_accuracy", float("nan"))
    size = "all" if p["train_size"] is None else f"the first {p['train_size']:,}"
    return (
        f"The article's VAE (latent size {p['model']['latent_dim']}) learns the digits "
        f"{', '.join(map(str, p['order']))} one stage at a time on {p['dataset']}: {size} "
        f"training images of each new digit, {count(p['first_stage_epochs'], 'epoch')} on the "
        f"first digit and {train['epochs']} on each later one, batch {train['batch_size']}, "
        f"{train['optimizer']} (a fresh one per stage), seed {train['seed']}. After every "
        "stage it is measured on the test images of every digit. Forgetting of a digit is "
        "its test loss at the end minus its test loss just after the stage that learned it, "
        f"averaged over every digit but the last. Dreams: {p['dream_samples']} prior samples "
        f"named by a CNN with test accuracy {accuracy:.2%}."
    )


def strategy_facts(metrics: dict) -> dict[str, str]:
    """One line per strategy: what it trains on, and the comparison table as report facts."""
    strategies = metrics["strategies"]
    return {
        row["strategy"]: f"{strategies[row['strategy']]['summary']}: "
        f"average forgetting {row['avg_forgetting']:.1f} nats "
        f"(reconstruction {row['avg_recon_forgetting']:.1f}); final mean test loss "
        f"{row['final_mean_loss']:.1f}; first digit's share of the final dreams "
        f"{row['first_digit_final_share']:.0%}; {row['train_images']:,} images trained on "
        f"in {row['train_seconds']:.0f} s{untrained_text(row['untrained_stages'])}"
        for row in comparison_rows(metrics)
    }


def untrained_text(stages: int) -> str:
    """What a strategy's facts add when `stages` of its stage models had not learned."""
    return f"; {untrained_note(stages, 'stage', 'metrics.json')}" if stages else ""


def report(metrics: dict, path: Path) -> Path:
    """The HTML report: the comparison first, then every strategy's figures."""
    page = Report("vaelab continual: does the VAE remember?", describe_protocol(metrics))
    page.add(
        Section(
            "Strategies side by side",
            "What the model sees besides the new digit: nothing (naive), every digit so far "
            "(cumulative), a fixed buffer of real past images (replay), or images dreamed by "
            "a frozen copy of itself from before the stage (generative replay).",
            [Figure("comparison.png", "Average and per-digit forgetting, and the final dreams.")],
            facts=strategy_facts(metrics),
        )
    )
    for name in metrics["strategies"]:
        figures = [Figure(f"{name}/{file}", caption) for file, caption in FIGURES.items()]
        page.add(Section(name, "", figures, links={name: f"{name}/"}))
    return page.write(path)
