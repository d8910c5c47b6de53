"""Anomaly figures for `vaelab anomaly`: ROC curves, score histograms, best/worst anomaly maps.

"Best" and "worst" are from the detector's point of view: for an anomalous
class, the image it scores highest (caught) and lowest (missed); for a
normal class, the lowest (clearly normal) and highest (a false alarm).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402
from torch import Tensor  # noqa: E402

from vaelab.figures import plots  # noqa: E402
from vaelab.models import Model  # noqa: E402
from vaelab.scores import pixel_errors, reconstruct  # noqa: E402

if TYPE_CHECKING:
    from vaelab.anomaly import Report

NORMAL_COLOUR = "black"
BINS = 60


def plot_report(
    report: Report, model: Model, images: Tensor, class_names: Sequence[str], out: Path
) -> list[Path]:
    """All three figures of a report into `out`."""
    names = [_name(c, class_names) for c in range(max(report.labels) + 1)]
    return [
        roc(report, names, out / "roc.png"),
        score_histograms(report, names, out / "score_histograms.png"),
        best_and_worst(report, model, images, names, out / "anomaly_maps.png"),
    ]


def _name(label: int, class_names: Sequence[str]) -> str:
    name = class_names[label] if label < len(class_names) else str(label)
    return name if name == str(label) else f"{label} {name}"


def _normal_text(report: Report, names: Sequence[str]) -> str:
    return "normal: " + ", ".join(names[c] for c in report.normal)


def roc(report: Report, names: Sequence[str], path: Path) -> Path:
    """One ROC curve per anomalous class (against the normal images) and one for all together."""
    is_normal = np.isin(report.labels, report.normal)
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(6.4, 5.6), layout="constrained")
    for label, metrics in report.metrics["per_class"].items():
        chosen = is_normal | (report.labels == label)
        fpr, tpr, _ = roc_curve(~is_normal[chosen], report.scores[chosen])
        ax.plot(fpr, tpr, lw=1.2, color=colours(int(label) % 10),
                label=f"{names[int(label)]}: {metrics['auroc']:.3f}")  # fmt: skip
    fpr, tpr, _ = roc_curve(~is_normal, report.scores)
    overall = report.metrics["overall"]["auroc"]
    ax.plot(fpr, tpr, lw=2.4, color="black", label=f"all anomalies: {overall:.3f}")
    ax.plot([0, 1], [0, 1], ls=":", color="0.6", lw=1)
    ax.set_xlabel("false positive rate (normal images flagged)")
    ax.set_ylabel("true positive rate (anomalies caught)")
    ax.set_title(f"ROC, score {report.score} ({_normal_text(report, names)})")
    ax.legend(title="anomalous class: AUROC", loc="lower right", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    return plots.save(fig, path)


def score_histograms(report: Report, names: Sequence[str], path: Path) -> Path:
    """Per anomalous class, its score distribution over the normal images' distribution."""
    is_normal = np.isin(report.labels, report.normal)
    anomalous = [int(c) for c in report.metrics["per_class"]]
    columns = min(5, len(anomalous))
    rows = -(-len(anomalous) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.0 * columns, 2.5 * rows),
                             layout="constrained", squeeze=False, sharex=True)  # fmt: skip
    low, high = np.percentile(report.scores, [0.5, 99.5])
    bins = np.linspace(low, high, BINS)
    colours = plt.get_cmap("tab10")
    for ax, label in zip(axes.flat, anomalous, strict=False):
        ax.hist(np.clip(report.scores[report.labels == label], low, high), bins, density=True,
                color=colours(label % 10), alpha=0.7, label=names[label])  # fmt: skip
        ax.hist(np.clip(report.scores[is_normal], low, high), bins, density=True,
                histtype="step", color=NORMAL_COLOUR, lw=1.3, label="normal")  # fmt: skip
        auroc = report.metrics["per_class"][label]["auroc"]
        ax.set_title(f"{names[label]} (AUROC {auroc:.3f})", fontsize=9)
        ax.legend(fontsize=7, frameon=False)
        ax.set_yticks([])
    for ax in axes.flat[len(anomalous) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(f"{report.score} score")
    fig.suptitle(
        f"Score distributions, {_normal_text(report, names)} (black outline) vs each anomalous "
        "class "
        "(higher = more anomalous; clipped to the 0.5-99.5 percentiles)",
        fontsize=10,
    )
    return plots.save(fig, path)


def best_and_worst(
    report: Report, model: Model, images: Tensor, names: Sequence[str], path: Path
) -> Path:
    """Per class, the clearest and the most mistaken case: input, reconstruction, pixel error."""
    picks, titles = [], []
    for label in np.unique(report.labels):
        where = np.flatnonzero(report.labels == label)
        order = where[np.argsort(report.scores[where])]
        normal = label in report.normal
        best, worst = (order[0], order[-1]) if normal else (order[-1], order[0])
        picks += [best, worst]
        kind = "normal" if normal else "anomaly"
        titles += [f"{names[label]} {kind}\nbest", f"{names[label]} {kind}\nworst"]
    chosen = images[picks]
    device = next(model.parameters()).device
    recons = reconstruct(model, chosen.to(device)).sigmoid().cpu()
    errors = pixel_errors(model, chosen.to(device)).cpu()
    return plots.anomaly_maps(
        chosen,
        recons,
        errors,
        report.scores[picks].tolist(),
        titles,
        path,
        f"Best and worst case per class, score {report.score} ({_normal_text(report, names)}); "
        "pixel error is the reconstruction's BCE",
    )
