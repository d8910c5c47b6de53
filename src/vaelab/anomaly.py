"""Anomaly detection with a trained model: metrics, a run's test-set report, a detector.

Scores come from `vaelab.scores` (higher = more anomalous). The metrics treat
"anomalous" as the positive class, as the one-class literature does:

- AUROC: the chance a random anomaly scores above a random normal image;
- AUPR: average precision with anomalies as positives (depends on their share);
- FPR at 95% TPR: the share of normal images flagged when 95% of anomalies are.

    report = analyze_run(Run("runs/vae7"), score="elbo", out="runs/vae7/anomaly")
    detector = AnomalyDetector(recipe="vae16-mse-edge").fit(normal_images)
    detector.predict(new_images)  # 1 = anomaly, 0 = normal
    files, scores = detector.score_files(["new/"])  # image files and folders
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from torch import Tensor

from vaelab import scores as score_functions
from vaelab.config import DEFAULT_SCORE, NO_DATASET, ModelConfig, RunConfig, TrainConfig
from vaelab.data import read_images, read_images_as
from vaelab.diagnostics import UntrainedModelWarning, untrained_warning
from vaelab.errors import SettingError, VaelabError
from vaelab.jsonfiles import read_json
from vaelab.models import Model, build
from vaelab.recipes import DEFAULT_RECIPE, get_recipe
from vaelab.run import Run, refuse_a_run_folder
from vaelab.scores import SCORES, require_posterior, require_unconditional
from vaelab.wording import count

TPR_LEVEL = 0.95
DETECTOR_FILE = "detector.json"
MAPS_FILE = "most_anomalous.png"


def maps_file(path: str | os.PathLike[str], setting: str = "path") -> Path:
    """The file `AnomalyDetector.draw_most_anomalous` writes for `path`: `MAPS_FILE` in a
    folder, `.png` added to a name without a suffix; a format it cannot write is refused
    (a `SettingError` naming `setting`), so a caller can check before any work."""
    from vaelab.figures.plots import figure_file

    return figure_file(path, MAPS_FILE, "the maps figure", setting)


def score_text(value: float) -> str:
    """A score as a CSV file holds it: 9 significant digits give a float32 score back
    exactly, so metrics recomputed from the file are the ones reported."""
    return f"{value:.9g}"


def anomaly_metrics(is_anomaly: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """AUROC, AUPR and FPR at 95% TPR, anomalies being the positive class; `aupr_normal` is
    the AUPR with the normal images as positives, lowest scores first. When anomalies
    outnumber normal images, as the nine other digits do one, even a random score has an
    AUPR near their share; `aupr_normal` is then the one that tells scores apart."""
    is_anomaly = np.asarray(is_anomaly, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    if is_anomaly.shape != score.shape or score.ndim != 1:
        raise VaelabError(
            f"anomaly metrics need one score per image and one is_anomaly flag per image, got "
            f"{score.shape} scores and {is_anomaly.shape} flags"
        )
    if is_anomaly.all() or not is_anomaly.any():
        raise VaelabError(
            "anomaly metrics need both normal and anomalous images; "
            f"got {int(is_anomaly.sum())} anomalous of {len(is_anomaly)}"
        )
    if not np.isfinite(score).all():
        raise VaelabError("some anomaly scores are not finite; the model may have diverged")
    fpr, tpr, _ = roc_curve(is_anomaly, score, drop_intermediate=False)  # keep every threshold
    return {
        "auroc": float(roc_auc_score(is_anomaly, score)),
        "aupr": float(average_precision_score(is_anomaly, score)),
        "aupr_normal": float(average_precision_score(~is_anomaly, -score)),
        "fpr_at_95_tpr": float(fpr[np.searchsorted(tpr, TPR_LEVEL)]),
    }


def metrics_by_class(
    labels: np.ndarray, score: np.ndarray, normal: Sequence[int]
) -> dict[str, Any]:
    """Metrics for all anomalies together and for each anomalous class against the normal ones."""
    labels = np.asarray(labels)
    is_normal = np.isin(labels, list(normal))
    result: dict[str, Any] = {"overall": anomaly_metrics(~is_normal, score), "per_class": {}}
    for label in np.unique(labels[~is_normal]):
        chosen = is_normal | (labels == label)
        result["per_class"][int(label)] = anomaly_metrics(~is_normal[chosen], score[chosen])
    return result


def compute_score(
    model: Model, images: Tensor, name: str, samples: int = score_functions.SAMPLES, seed: int = 0
) -> Tensor:
    """`vaelab.scores.score` on the model's device, with the sampling options passed only to
    the scores that sample; returns a CPU tensor."""
    options = {"samples": samples, "seed": seed} if _sampled(name) else {}
    device = next(model.parameters()).device
    return score_functions.score(model, images.to(device), name, **options).cpu()


def _sampled(name: str) -> bool:
    return name in SCORES and SCORES[name].sampled


@dataclass
class Report:
    """What `analyze_run` measured: settings, metrics, the per-image scores, and warnings
    about the model that the numbers alone would hide (an untrained model)."""

    normal: list[int]
    score: str
    samples: int
    metrics: dict[str, Any]
    labels: np.ndarray
    scores: np.ndarray
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "normal_classes": self.normal,
            "score": self.score,
            "samples": self.samples if _sampled(self.score) else None,
            "n_normal": int(np.isin(self.labels, self.normal).sum()),
            "n_anomalous": int((~np.isin(self.labels, self.normal)).sum()),
            **self.metrics,
            "warnings": self.warnings,
        }


@dataclass
class FilesReport(Report):
    """A detector's `Report` on labelled image files: label 0 is the normal images, label i
    the images under the i-th anomalous source (`sources[i]`), each with its file."""

    files: list[Path] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    threshold: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        flagged = self.scores > self.threshold
        per_source = {
            source: {
                "images": int((self.labels == label).sum()),
                **self.metrics["per_class"][label],
                "caught": float(flagged[self.labels == label].mean()),
            }
            for label, source in enumerate(self.sources[1:], start=1)
        }
        return {
            "score": self.score,
            "samples": self.samples if _sampled(self.score) else None,
            "threshold": self.threshold,
            "n_normal": int((self.labels == 0).sum()),
            "n_anomalous": int((self.labels != 0).sum()),
            "normal_flagged": float(flagged[self.labels == 0].mean()),
            "anomalies_caught": float(flagged[self.labels != 0].mean()),
            **self.metrics["overall"],
            "per_source": per_source,
            "warnings": self.warnings,
        }

    @property
    def names(self) -> list[str]:
        """What the figures call each label: "normal", then each source's last part (a
        defect's folder name, say), or its whole path where two would share one."""
        short = [Path(source).name or source for source in self.sources[1:]]
        return ["normal", *(short if len(set(short)) == len(short) else self.sources[1:])]

    def facts(self, normal: Sequence[str | os.PathLike[str]]) -> dict[str, str]:
        """What the report page says the numbers come from: the `normal` paths, the sources,
        the score and what its threshold flags."""
        summary = self.to_dict()
        return {
            "normal images": f"{summary['n_normal']:,} under {', '.join(map(str, normal))}",
            **{
                f"anomalous: {names}": f"{count(source['images'], 'image')} under {path}"
                for names, (path, source) in zip(
                    self.names[1:], summary["per_source"].items(), strict=True
                )
            },
            "score": f"`{self.score}`",
            "threshold": f"{self.threshold:.6g}: flags {summary['normal_flagged']:.1%} of the "
            f"normal images, catches {summary['anomalies_caught']:.1%} of the anomalies",
        }

    def write(self, out: Path) -> None:
        """`metrics.json` and `scores.csv` (file, source, score, anomaly) into `out`."""
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "scores.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file", "source", "score", "anomaly"])
            for file, label, value in zip(self.files, self.labels, self.scores, strict=True):
                writer.writerow(
                    [file, self.sources[label], score_text(value), int(value > self.threshold)]
                )
        (out / "metrics.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def analyze_run(
    run: Run,
    *,
    normal: Sequence[int] | None = None,
    score: str = DEFAULT_SCORE,
    samples: int = score_functions.SAMPLES,
    out: str | os.PathLike[str] | None = None,
    data_dir: str | None = None,
    figures: bool = True,
) -> Report:
    """Score a run's whole test set: its trained classes (or `normal`) against the rest.

    A run trained on dynamically binarised images is scored on the test images' fixed bits
    (`vaelab.data.fixed_bits`), as `vaelab eval` measures it. The report's `warnings` say
    when the model reconstructs the normal images nearly identically (an untrained model),
    which the metrics alone would hide.

    With `out`, writes `scores.csv` (index, label, score), `metrics.json` and,
    with `figures`, `roc.png`, `score_histograms.png`, `anomaly_maps.png` and `report.html`,
    the page that gathers them.
    """
    from vaelab.data import fixed_bits, load

    score_functions.check_score(score)
    config = run.config
    test = load(
        config.data.dataset, "test", data_dir or config.data.data_dir, config.data.image_size
    )
    test = fixed_bits(test, config.data.binarize)
    normal = _normal_classes(normal, config.data.classes, test.classes, test.name)
    model = run.load_model()
    images = test.float()
    values = compute_score(model, images, score, samples, seed=config.train.seed).numpy()
    labels = test.labels.numpy()
    report = Report(
        normal, score, samples, metrics_by_class(labels, values, normal), labels, values
    )
    if warning := untrained_warning(model, images[torch.from_numpy(np.isin(labels, normal))]):
        report.warnings.append(warning)
    if out is not None:
        write_report(report, Path(out))
        if figures:
            from vaelab.figures.anomaly import numbered_names, plot_report

            names = numbered_names(report, test.class_names)
            plot_report(report, model, images, names, Path(out), f"vaelab anomaly {run.path}",
                        _run_facts(run, report, names))  # fmt: skip
    return report


def _run_facts(run: Run, report: Report, names: Sequence[str]) -> dict[str, str]:
    """What the report page says the numbers come from."""
    summary = report.to_dict()
    samples = f" ({summary['samples']} posterior samples)" if summary["samples"] else ""
    return {
        "run": str(run.path),
        "normal classes": ", ".join(names[c] for c in report.normal),
        "test images": f"{summary['n_normal']:,} normal, {summary['n_anomalous']:,} anomalous",
        "score": f"`{report.score}`{samples}",
        "seed": str(run.config.train.seed),
    }


def _normal_classes(
    normal: Sequence[int] | None, trained: Sequence[int] | None, available: list[int], name: str
) -> list[int]:
    chosen = list(normal) if normal else list(trained or [])
    if not chosen:
        raise SettingError(
            "the run was trained on every class, so no test class is anomalous; "
            "name the normal classes with {normal} (e.g. {normal} 7)",
            "normal",
        )
    check_normal_classes(chosen, available, name)
    return sorted(chosen)


def check_normal_classes(normal: Sequence[int], available: list[int], name: str) -> None:
    """Refuse `normal` classes that leave no normal or no anomalous image in the test set of
    `name` (holding the classes `available`): there would be no AUROC to measure."""
    if missing := sorted(set(normal) - set(available)):
        raise SettingError(
            f"{{normal}} class {missing} is not in the test set of {name}; it has {available}",
            "normal",
        )
    if set(normal) >= set(available):
        raise SettingError(
            f"{{normal}} {sorted(normal)} is every class of the test set of {name}; leave at "
            "least one out",
            "normal",
        )


def load_detector(path: str | os.PathLike[str], score: str | None = None) -> AnomalyDetector:
    """The detector saved at `path`; a `score` other than its own is refused, since its
    threshold holds for that score only."""
    detector = AnomalyDetector.load(path)
    if score not in (None, detector.score_name()):
        raise SettingError(
            f"{path} is a detector that scores with {detector.score_name()}, and its threshold "
            f"holds for that score only; leave out {{score}} or fit a detector with {score}",
            "score",
        )
    return detector


def _check_disjoint(read: list[tuple[Tensor, list[Path]]]) -> None:
    """A file among both the normal and the anomalous images, or under two anomalous paths,
    would be counted as both: refused, naming it."""
    seen: dict[Path, int] = {}
    for source, (_, files) in enumerate(read):
        for file in files:
            first = seen.setdefault(file.resolve(), source)
            if first != source:
                where = "{normal}" if first == 0 else "another {anomalous} path"
                raise SettingError(
                    f"{file} is under {where} and under {{anomalous}} too; give each image "
                    "once, as normal or as anomalous",
                    "normal",
                    "anomalous",
                )


def write_report(report: Report, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "scores.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "label", "score"])
        for index, (label, value) in enumerate(zip(report.labels, report.scores, strict=True)):
            writer.writerow([index, int(label), score_text(value)])
    (out / "metrics.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")


def as_images(x: Any, shape: tuple[int, ...] | None = None) -> Tensor:
    """Validate user images and return float32 (N, C, H, W) in [0, 1].

    Takes NumPy arrays or tensors shaped (N, H, W), (N, C, H, W) or (N, H*W)
    (square images), uint8 in 0-255 or float in [0, 1]. `shape` is the
    (C, H, W) a fitted model expects.
    """
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise VaelabError(f"images must be a numeric array, got dtype {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise VaelabError(f"images must be a NumPy array or a torch tensor, got {type(x).__name__}")
    if x.ndim == 0 or x.numel() == 0:
        raise VaelabError("no images given: the array is empty")
    x = _as_float(x)
    x = _as_nchw(x, shape)
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise VaelabError(
            f"images are {tuple(x.shape[1:])} (C, H, W) but the detector was fitted on {shape}"
        )
    return x


def _as_float(x: Tensor) -> Tensor:
    if x.dtype == torch.uint8:
        return x.float().div(255)
    if not x.is_floating_point():
        raise VaelabError(
            f"images must be uint8 (0-255) or float (0-1), got {x.dtype}; "
            "convert with .astype('uint8') or divide by 255"
        )
    x = x.float()
    if torch.isnan(x).any():
        raise VaelabError(f"images contain {int(torch.isnan(x).sum())} NaN values")
    low, high = x.min().item(), x.max().item()
    if low < 0 or high > 1:
        raise VaelabError(
            f"float images must lie in [0, 1], these range over [{low:.4g}, {high:.4g}]; "
            "divide 0-255 data by 255 or pass it as uint8"
        )
    return x


def _as_nchw(x: Tensor, shape: tuple[int, ...] | None) -> Tensor:
    if x.ndim == 4:
        return x
    if x.ndim == 3:
        return x.unsqueeze(1)
    if x.ndim == 2:
        side = round(x.shape[1] ** 0.5)
        if shape is not None and x.shape[1] == int(np.prod(shape)):
            return x.reshape(-1, *shape)
        if side * side == x.shape[1]:
            return x.reshape(-1, 1, side, side)
    raise VaelabError(
        f"images must be shaped (N, H, W), (N, C, H, W) or (N, H*W) for square images, "
        f"got {tuple(x.shape)}"
    )


class FloatImages:
    """Float images as the trainer takes a dataset: `float()`, `labels` and `len()`.

    Every image is normal, so every label is 0."""

    def __init__(self, images: Tensor) -> None:
        self.images = images
        self.labels = torch.zeros(len(images), dtype=torch.int64)

    def float(self) -> Tensor:
        return self.images

    def __len__(self) -> int:
        return len(self.images)


class AnomalyDetector(BaseEstimator):
    """An autoencoder or VAE trained on normal images that scores new images for anomalies.

    Follows scikit-learn's estimator conventions (`fit` returns the detector,
    fitted attributes end in `_`, `get_params`/`set_params`), with one
    difference to note: `score_samples` returns *higher = more anomalous*,
    whereas scikit-learn's own outlier detectors return higher = more normal.
    `predict` returns 1 for an anomaly and 0 for a normal image (not
    scikit-learn's -1/+1).

    The model, its training and the score are the recipe `recipe`'s
    (`vaelab.recipes`) unless `model`, `train`, `score` or `samples` are given.
    `fit` holds out `holdout` of the normal images, trains on the rest with
    `vaelab.train.train`, and sets `threshold_` so that a share `fpr` of the
    held-out normal images scores above it, as near as their number allows:
    `held_out_flagged_` is the share that does (1 of 10 held-out images flags 10%,
    whatever `fpr` below that asks).

    Images: NumPy arrays or tensors shaped (N, 28, 28), (N, 1, 28, 28) or
    (N, 784) (or (N, C, 28, 28) with C channels), uint8 in 0-255 or float
    in [0, 1].
    """

    def __init__(
        self,
        model: str | ModelConfig | None = None,
        train: TrainConfig | None = None,
        score: str | None = None,
        samples: int | None = None,
        fpr: float = 0.05,
        holdout: float = 0.1,
        progress: bool = False,
        recipe: str = DEFAULT_RECIPE,
    ) -> None:
        self.recipe = recipe
        self.model = model
        self.train = train
        self.score = score
        self.samples = samples
        self.fpr = fpr
        self.holdout = holdout
        self.progress = progress

    def _run_config(self) -> RunConfig:
        """The detector's model (a preset's name or a `ModelConfig`) and training, the
        recipe's where not given."""
        recipe = get_recipe(self.recipe)
        config = RunConfig()
        config.data.dataset = NO_DATASET
        if self.model is None:
            config.model = recipe.model
        elif isinstance(self.model, str):
            config.model = ModelConfig(self.model)
        else:
            config.model = copy.deepcopy(self.model)
        config.train = copy.deepcopy(self.train) or recipe.train
        return config

    def score_name(self) -> str:
        """The score this detector gives: `score`, else its recipe's."""
        return self.score or get_recipe(self.recipe).score

    def _samples(self) -> int:
        return self.samples or get_recipe(self.recipe).samples

    def _check_params(self) -> None:
        if self.score_name() not in score_functions.SCORES:
            names = ", ".join(score_functions.SCORES)
            raise SettingError(
                f"unknown {{score}} {self.score_name()!r}; choose one of {names}", "score"
            )
        for name in ("fpr", "holdout"):
            if not 0 < getattr(self, name) < 1:
                raise SettingError(
                    f"{{{name}}} must be between 0 and 1, got {getattr(self, name)}", name
                )

    def fit(self, X: Any, y: None = None) -> AnomalyDetector:
        """Train on normal images `X` only; `y` is ignored (scikit-learn convention)."""
        from vaelab.train import train

        self._check_params()
        images = as_images(X)
        seed = self._run_config().train.seed
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(images), generator=generator)
        n_held = round(self.holdout * len(images))
        if n_held < 1 or n_held >= len(images):
            raise SettingError(
                f"cannot hold out {{holdout}} {self.holdout} of {len(images)} images for the "
                "threshold; give more normal images",
                "holdout",
            )
        held, kept = images[order[:n_held]], images[order[n_held:]]
        config = self._run_config()
        torch.manual_seed(config.train.seed)
        self.model_ = build(config.model, shape=tuple(images.shape[1:]))
        require_unconditional(self.model_)
        if SCORES[self.score_name()].needs_posterior:
            require_posterior(self.model_, self.score_name())
        self.history_ = train(
            self.model_, FloatImages(kept), config.train, val=FloatImages(held),
            progress=self.progress,
        )  # fmt: skip
        self.image_shape_ = tuple(images.shape[1:])
        held_scores = self.score_samples(held)
        self.threshold_ = float(np.quantile(held_scores, 1 - self.fpr))
        self.held_out_flagged_ = float((held_scores > self.threshold_).mean())
        if warning := untrained_warning(self.model_, held):
            warnings.warn(warning, UntrainedModelWarning, stacklevel=2)
        return self

    def fit_files(
        self,
        paths: Sequence[str | os.PathLike[str]],
        image_size: int | None = 28,
        out: str | os.PathLike[str] | None = None,
    ) -> AnomalyDetector:
        """Train on the normal images in image files and folders (every image under a
        folder), each resized to `image_size` (28: the conv models' size; None keeps theirs,
        which must then agree). With `out`, save the detector there: a folder that already
        holds a detector or a run is refused before anything is read or trained."""
        if out is not None and Path(out).exists() and not Path(out).is_dir():
            raise SettingError(f"{{out}} {out} is a file, not a folder; choose another", "out")
        if out is not None:
            refuse_a_run_folder(out)
        self._check_params()
        self.fit(read_images(paths, image_size)[0])
        if out is not None:
            self.save(out)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise VaelabError("this AnomalyDetector is not fitted yet; call fit(normal_images)")

    def score_samples(self, X: Any) -> np.ndarray:
        """Anomaly score per image: higher = more anomalous (the opposite of scikit-learn's
        outlier detectors). For `elbo` and `iwae` these are nats, -log p(x) estimates."""
        self._check_fitted()
        images = as_images(X, self.image_shape_)
        seed = self._run_config().train.seed
        values = compute_score(self.model_, images, self.score_name(), self._samples(), seed)
        return values.numpy().astype(np.float64)

    def read_files(self, paths: Sequence[str | os.PathLike[str]]) -> tuple[Tensor, list[Path]]:
        """The images under `paths` (files and folders, as `fit_files` reads them) as uint8
        (N, C, H, W), each read as the detector's were: resized to its size and made grey or
        RGB as they were; and the file of each."""
        self._check_fitted()
        return read_images_as(paths, self.image_shape_)

    def score_files(self, paths: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], np.ndarray]:
        """The image files under `paths` (as `read_files` reads them) and their scores."""
        images, files = self.read_files(paths)
        return files, self.score_samples(images)

    def evaluate_files(
        self,
        normal: Sequence[str | os.PathLike[str]],
        anomalous: Sequence[str | os.PathLike[str]],
        out: str | os.PathLike[str] | None = None,
    ) -> FilesReport:
        """How well the detector tells the `normal` image files from the `anomalous` ones
        (files and folders, read as `read_files` reads them): AUROC, AUPR and FPR at 95% TPR
        over all anomalies and for each `anomalous` path alone (a folder per kind of defect,
        say), and the share of each that its threshold flags. With `out`, also write there
        `metrics.json`, `scores.csv` and the figures of `vaelab anomaly` (ROC curves, score
        histograms, the best and worst case of each source) with `report.html`."""
        self._check_fitted()
        if not anomalous:
            raise SettingError(
                "{anomalous} is empty: give the anomalous files or folders", "anomalous"
            )
        if out is not None:
            refuse_a_run_folder(out)
        read = [self.read_files(normal), *(self.read_files([path]) for path in anomalous)]
        files = [file for _, found in read for file in found]
        _check_disjoint(read)
        images = as_images(torch.cat([found for found, _ in read]))
        labels = np.concatenate([np.full(len(found), i) for i, (_, found) in enumerate(read)])
        scores = self.score_samples(images)
        report = FilesReport(
            [0], self.score_name(), self._samples(), metrics_by_class(labels, scores, [0]),
            labels, scores, files=files, sources=["normal", *map(str, anomalous)],
            threshold=self.threshold_,
        )  # fmt: skip
        if warning := untrained_warning(self.model_, images[torch.from_numpy(labels == 0)]):
            report.warnings.append(warning)
        if out is not None:
            from vaelab.figures.anomaly import plot_report

            report.write(Path(out))
            plot_report(report, self.model_, images, report.names, Path(out),
                        "vaelab detector evaluate", report.facts(normal))  # fmt: skip
        return report

    def draw_most_anomalous(
        self, images: Any, scores: np.ndarray, names: Sequence[str], path: str | os.PathLike[str],
        top: int = 10,
    ) -> Path:  # fmt: skip
        """A figure of the `top` highest-scoring `images` (named by `names`, scored by
        `scores`): each image, its reconstruction and the pixels it fails on; written where
        `maps_file(path)` says, and that file returned."""
        from vaelab.figures.anomaly import most_anomalous

        self._check_fitted()
        path = maps_file(path)
        shown = np.argsort(-np.asarray(scores), kind="stable")[:top]
        return most_anomalous(
            self.model_, as_images(images, self.image_shape_)[torch.from_numpy(shown)],
            [float(scores[i]) for i in shown], [names[i] for i in shown],
            self.score_name(), self.threshold_, path,
        )  # fmt: skip

    def predict(self, X: Any) -> np.ndarray:
        """1 where the score exceeds `threshold_` (an anomaly), 0 elsewhere (normal)."""
        return (self.score_samples(X) > self.threshold_).astype(np.int64)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a run folder (config.json, weights.safetensors, metrics.jsonl, so that
        `vaelab plot DIR loss` draws its training) plus detector.json."""
        self._check_fitted()
        config = self._run_config()
        run = Run.create(path, config)
        run.save_weights(self.model_, config.train.epochs)
        run.write_metrics(self.history_)
        state = {
            "params": {
                **self.get_params(),
                "model": config.model.to_dict(),
                "train": dataclasses.asdict(config.train),
            },
            "threshold": self.threshold_,
            "held_out_flagged": self.held_out_flagged_,
            "image_shape": list(self.image_shape_),
            "history": self.history_,
        }
        (run.path / DETECTOR_FILE).write_text(json.dumps(state, indent=2) + "\n")
        return run.path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AnomalyDetector:
        """A detector saved by `save`, ready to score (nothing is unpickled)."""
        file = Path(path) / DETECTOR_FILE
        try:
            state = read_json(file, "save the detector again")
        except FileNotFoundError:
            raise VaelabError(f"{file} not found: is {path} a saved AnomalyDetector?") from None
        params = state["params"]
        model, train = ModelConfig.from_dict(params["model"]), TrainConfig(**params["train"])
        detector = cls(**{**params, "model": model, "train": train})
        detector.model_ = Run(path).load_model()
        detector.threshold_ = float(state["threshold"])
        # detectors saved before the share was recorded: the share asked for
        detector.held_out_flagged_ = float(state.get("held_out_flagged", detector.fpr))
        detector.image_shape_ = tuple(state["image_shape"])
        detector.history_ = state["history"]
        return detector
