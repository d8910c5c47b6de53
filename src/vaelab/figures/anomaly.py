"""Anomaly figures for `vaelab anomaly` and `vaelab detector evaluate`: ROC curves, score
histograms, best/worst anomaly maps, and the HTML page that gathers them.

"Best" and "worst" are from the detector's point of view: for an anomalous
class, the image it scores highest (caught) and lowest (missed); for a
normal class, the lowest (clearly normal) and highest (a false alarm).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve
from torch import Tensor

from vaelab.diagnostics import TITLE_NOTE
from vaelab.figures import plots
from vaelab.figures.report import Figure as PageFigure
from vaelab.figures.report import Report, Section
from vaelab.models import Model
from vaelab.scores import pixel_errors, reconstruct

NORMAL_COLOUR = "black"
BINS = 60
CLASS_COLOURS = matplotlib.colormaps["tab10"]
PIXEL_ERRORS = {
    **dict.fromkeys(
        ("recon-mse", "recon-mse-edge", "recon-mse-edge-latent"), ("mse", "squared error")
    ),
    "default": ("bce", "BCE (nats)"),
}
"""The per-pixel error a map shows for a score: the score's own terms where it is a
reconstruction error, the reconstruction's BCE (the ELBO's reconstruction part) otherwise."""


class Scored(Protocol):
    """What the figures read from an anomaly experiment's report (`vaelab.anomaly.Report`)."""

    normal: list[int]
    score: str
    metrics: dict[str, Any]
    labels: np.ndarray
    scores: np.ndarray
    warnings: list[str]


def numbered_names(report: Scored, class_names: Sequence[str]) -> list[str]:
    """What the figures call each label: its class name, numbered unless the name is its
    number."""
    return [_name(c, class_names) for c in range(max(report.labels) + 1)]


def plot_report(
    report: Scored, model: Model, images: Tensor, names: Sequence[str], out: Path, title: str,
    facts: dict[str, str],
) -> list[Path]:  # fmt: skip
    """The three figures of a report into `out`, label i called `names[i]`, and `report.html`
    gathering them under `title` with the run's `facts`."""
    return [
        roc(report, names, out / "roc.png"),
        score_histograms(report, names, out / "score_histograms.png"),
        best_and_worst(report, model, images, names, out / "anomaly_maps.png"),
        write_page(report, names, out, title, facts),
    ]


def measured_facts(report: Scored, names: Sequence[str]) -> dict[str, str]:
    """The metrics a page shows: AUROC, both AUPRs and FPR at 95% TPR over all anomalous images, and
    each anomalous class's AUROC under its name (`numbered_names`)."""
    overall = report.metrics["overall"]
    return {
        "AUROC": f"{overall['auroc']:.4f}",
        "AUPR": f"{overall['aupr']:.4f}",
        "AUPR, normal images as positives": f"{overall['aupr_normal']:.4f}",
        "FPR at 95% TPR": f"{overall['fpr_at_95_tpr']:.4f}",
        **{
            f"AUROC, {names[int(c)]}": f"{m['auroc']:.4f}"
            for c, m in report.metrics["per_class"].items()
        },
    }


def write_page(
    report: Scored, names: Sequence[str], out: Path, title: str, facts: dict[str, str]
) -> Path:
    """`report.html` in `out`: the figures `plot_report` drew there, the run's `facts` and each
    anomalous class's AUROC, in one file that opens with no network."""
    measured = measured_facts(report, names)
    intro = (
        f"Anomalies are the positive class; the score `{report.score}` is higher for more "
        "anomalous images."
    )
    page = Report(title, "\n\n".join([intro, *report.warnings]), facts=facts)
    page.add(Section(
        "How well the score tells anomalies from normal images",
        "AUROC is the chance that a random anomaly scores above a random normal image (0.5 is "
        "chance); each curve sets one anomalous class against the normal images.",
        [PageFigure("roc.png", "ROC curves, one per anomalous class and one for all."),
         PageFigure("score_histograms.png", "Each class's scores over the normal ones.")],
        facts=measured,
    ))  # fmt: skip
    page.add(Section(
        "The clearest and the most mistaken images",
        "For each class, the image the score gets most right and most wrong, its "
        "reconstruction and where the reconstruction fails.",
        [PageFigure("anomaly_maps.png", "Input, reconstruction and pixel error.")],
    ))  # fmt: skip
    return page.write(out / "report.html")


def _name(label: int, class_names: Sequence[str]) -> str:
    name = class_names[label] if label < len(class_names) else str(label)
    return name if name == str(label) else f"{label} {name}"


def _normal_text(report: Scored, names: Sequence[str]) -> str:
    return "normal: " + ", ".join(names[c] for c in report.normal)


def roc(report: Scored, names: Sequence[str], path: Path) -> Path:
    """One ROC curve per anomalous class (against the normal images) and one for all together."""
    is_normal = np.isin(report.labels, report.normal)
    fig = Figure(figsize=(6.4, 5.6), layout="constrained")
    ax = fig.subplots()
    for label, metrics in report.metrics["per_class"].items():
        chosen = is_normal | (report.labels == label)
        fpr, tpr, _ = roc_curve(~is_normal[chosen], report.scores[chosen])
        ax.plot(fpr, tpr, lw=1.2, color=CLASS_COLOURS(int(label) % 10),
                label=f"{names[int(label)]}: {metrics['auroc']:.3f}")  # fmt: skip
    fpr, tpr, _ = roc_curve(~is_normal, report.scores)
    overall = report.metrics["overall"]["auroc"]
    ax.plot(fpr, tpr, lw=2.4, color="black", label=f"all anomalies: {overall:.3f}")
    ax.plot([0, 1], [0, 1], ls=":", color="0.6", lw=1)
    ax.set_xlabel("false positive rate (normal images flagged)")
    ax.set_ylabel("true positive rate (anomalies caught)")
    ax.set_title(_title(report, f"ROC, score {report.score} ({_normal_text(report, names)})"))
    ax.legend(title="anomalous class: AUROC", loc="lower right", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    return plots.save(fig, path)


def score_histograms(report: Scored, names: Sequence[str], path: Path) -> Path:
    """Per anomalous class, its score distribution over the normal images' distribution."""
    is_normal = np.isin(report.labels, report.normal)
    anomalous = [int(c) for c in report.metrics["per_class"]]
    columns = min(5, len(anomalous))
    rows = -(-len(anomalous) // columns)
    fig = Figure(figsize=(1.8 * columns, 1.9 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False, sharex=True)
    low, high = np.percentile(report.scores, [0.5, 99.5])
    bins = np.linspace(low, high, BINS)
    for ax, label in zip(axes.flat, anomalous, strict=False):
        ax.hist(np.clip(report.scores[report.labels == label], low, high), bins, density=True,
                color=CLASS_COLOURS(label % 10), alpha=0.7, label=names[label])  # fmt: skip
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
        _title(
            report,
            f"Score distributions, {_normal_text(report, names)} (black outline) vs each "
            "anomalous class\n(higher = more anomalous; clipped to the 0.5-99.5 percentiles)",
        ),
        fontsize=10,
    )
    return plots.save(fig, path)


def best_and_worst(
    report: Scored, model: Model, images: Tensor, names: Sequence[str], path: Path
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
        name = kind if names[label] == kind else f"{names[label]} {kind}"
        titles += [f"{name}\nbest", f"{name}\nworst"]
    chosen = images[picks].to(next(model.parameters()).device)
    error_kind, label = PIXEL_ERRORS.get(report.score, PIXEL_ERRORS["default"])
    return plots.anomaly_maps(
        chosen.cpu(),
        reconstruct(model, chosen).sigmoid().cpu(),
        pixel_errors(model, chosen, error_kind).cpu(),
        report.scores[picks].tolist(),
        titles,
        path,
        _title(
            report,
            f"Best and worst case per class, score {report.score} "
            f"({_normal_text(report, names)}); pixel error: the reconstruction's {label}",
        ),
        error_label=label,
    )


def most_anomalous(
    model: Model, images: Tensor, scores: Sequence[float], names: Sequence[str], score: str,
    threshold: float, path: Path,
) -> Path:  # fmt: skip
    """Float `images` of a detector, highest scores first: each, its reconstruction and
    its pixel error."""
    chosen = images.to(next(model.parameters()).device)
    error_kind, label = PIXEL_ERRORS.get(score, PIXEL_ERRORS["default"])
    above = sum(s > threshold for s in scores)
    return plots.anomaly_maps(
        chosen.cpu(),
        reconstruct(model, chosen).sigmoid().cpu(),
        pixel_errors(model, chosen, error_kind).cpu(),
        list(scores),
        names,
        path,
        f"The {len(scores)} highest scores ({score}; {above} above the threshold "
        f"{threshold:.3g}); pixel error: the reconstruction's {label}",
        error_label=label,
    )


def _title(report: Scored, title: str) -> str:
    """`title`, with the untrained-model note under it when the report carries a warning."""
    return f"{title}\n{TITLE_NOTE}" if report.warnings else title
