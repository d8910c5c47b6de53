"""A run's model over its latent plane: what the explorer's server answers with.

The plane is the latent space itself for a 2-D code, the codes' first two
principal components otherwise (as the report's scatter). For a 2-D VAE it
spans the union of the data and [-3, 3]^2, the bulk of the prior that the
report's manifold shows, so that z = 0 and the empty space between clusters
can be decoded too.

Beyond two dimensions a plane cannot show what each dimension does, so a model with a
prior also gets a slider per dimension (those carrying the most KL from the prior
first, as `vaelab plot RUN traverse` orders its rows): any whole code can be decoded.

A saved `AnomalyDetector` is explored like a run, over the images it is given
(it names no test set), and judges with its own score and threshold.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vaelab import latent_usage
from vaelab.anomaly import DETECTOR_FILE, AnomalyDetector, load_detector
from vaelab.config import DEFAULT_SCORE
from vaelab.data import Dataset, prepare
from vaelab.errors import SettingError, VaelabError
from vaelab.explore import drawing, queries
from vaelab.explore.card import model_card
from vaelab.explore.images import Origin, chosen_images
from vaelab.explore.pictures import heat_url, image_url
from vaelab.explore.threshold import Threshold
from vaelab.figures import latent
from vaelab.figures.images import to_uint8
from vaelab.models import Model
from vaelab.plotting import PlotOptions, describe, endpoints, interpolate
from vaelab.run import Run
from vaelab.scores import SAMPLES, check_samples_drawn, pixel_errors, reconstruct

DEFAULT_COUNT = 5000
PRIOR_BULK = PlotOptions.limit
"""Half the side of the square the report's manifold decodes."""
REACH = 10
"""How far beyond the default view (times its largest coordinate) points may be asked for."""
STYLE_SAMPLE = 500
"""Test images looked at to learn how large and which way round the run's images are."""
DECIMALS = 4
"""Plane and latent values are rounded to this: finer than a pixel, and reproducible."""
SLIDERS = 10
"""Latent dimensions given a slider, as many as `vaelab plot RUN traverse` draws rows."""
SLIDER_STEP = 0.05
"""A slider's step over [-PRIOR_BULK, PRIOR_BULK]: 121 stops, each a visible change at most."""


def cycle_classes(labels: Tensor, count: int) -> Tensor:
    """Indices of `count` images cycling through the classes in order (first of each first),
    the selection `plotting.one_per_class` makes."""
    by_class = [(labels == c).nonzero()[:, 0] for c in torch.unique(labels).tolist()]
    picks = [
        found[k // len(by_class)]
        for k in range(count)
        if k // len(by_class) < len(found := by_class[k % len(by_class)])
    ]
    return torch.stack(picks)


def extent(points: np.ndarray, prior: bool) -> list[float]:
    """[x0, x1, y0, y1]: the points' range padded by 5%, joined with the prior's bulk."""
    low, high = points.min(0), points.max(0)
    pad = np.where(high > low, (high - low) * 0.05, 0.5)
    low, high = low - pad, high + pad
    if prior:
        low, high = np.minimum(low, -PRIOR_BULK), np.maximum(high, PRIOR_BULK)
    return [round(float(v), DECIMALS) for v in (low[0], high[0], low[1], high[1])]


@dataclass
class Explorer:
    """A run's model, the plane it is explored on, and the images drawn there (`test`: the
    run's test images unless others were given)."""

    run: Run
    model: Model
    view: latent.View
    test: Dataset
    shown: Tensor
    threshold: Threshold | None
    style: drawing.Style
    origin: Origin
    data_dir: str | None = None
    scores: np.ndarray | None = None
    """A detector's score of each shown image, for the page to show on hover."""
    usage: latent_usage.Usage | None = None
    """What each latent dimension carries over the shown images, for the sliders; None where
    the page has none (no prior, or a plane that is the whole latent space)."""

    @classmethod
    def from_run(
        cls,
        run_dir: str | Path,
        count: int = DEFAULT_COUNT,
        data_dir: str | None = None,
        score: str | None = None,
        samples: int | None = None,
        *,
        images: Sequence[str | os.PathLike[str]] | None = None,
        dataset: str | None = None,
    ) -> Explorer:
        """The run's model over the codes of `count` images, cycling through the classes:
        its test images, the image files and folders `images`, or the test split of
        `dataset`. Drawings are scored with `score` (`DEFAULT_SCORE`) against its held-out
        images, or, for a saved detector (which needs `images` or `dataset`), with the
        detector's own score and threshold."""
        if images is not None and dataset is not None:
            raise SettingError("give {images} or {dataset}, not both", "images", "dataset")
        run = Run(run_dir)
        detector = open_detector(run, score, samples, images is not None or dataset is not None)
        if detector is None:
            check_samples_drawn(score or DEFAULT_SCORE, samples)
        model = run.load_model() if detector is None else detector.model_
        test, origin = chosen_images(run, model, images, dataset, data_dir)
        shown = cycle_classes(test.labels, min(count, len(test)))
        conditional = model.capabilities.conditional
        labels = test.labels[shown] if conditional else None
        images = test.images[shown].float() / 255
        view = latent.plane(latent.codes(model, images, labels))
        usage = dimension_usage(model, images, labels)
        style = drawing.Style.of(test.images[shown[:STYLE_SAMPLE]])
        if detector is not None:
            scores = detector.score_samples(test.images[shown])
            where = f"the {len(shown):,} {origin.what} on the plane"
            threshold = Threshold.of_detector(detector, scores, where)
            return cls(
                run, model, view, test, shown, threshold, style, origin, data_dir, scores, usage
            )
        # an anomaly score sees no label, which a conditional model needs
        threshold = None if conditional else run_threshold(run, model, data_dir, score, samples)
        return cls(run, model, view, test, shown, threshold, style, origin, data_dir, usage=usage)

    @property
    def reach(self) -> float:
        """The largest |coordinate| a client may ask to decode."""
        return REACH * max(abs(v) for v in self.extent)

    @property
    def code_reach(self) -> float:
        """The largest |value| a whole latent code may hold: the plane's reach, and for a model
        with a prior at least that of a plane spanning its bulk (as a 2-D VAE's does), so the
        sliders' range decodes however tightly the codes cluster."""
        prior = REACH * PRIOR_BULK if self.model.capabilities.sampling else 0.0
        return max(self.reach, prior)

    @property
    def prior_bulk(self) -> float | None:
        """For a 2-D generative model the plane is its latent space, prior included."""
        prior = self.model.capabilities.sampling and self.model.latent_dim == 2
        return PRIOR_BULK if prior else None

    @property
    def extent(self) -> list[float]:
        return extent(self.view.points, self.prior_bulk is not None)

    @property
    def size(self) -> int:
        return self.test.images.shape[-1]

    def scatter(self) -> dict:
        """The plane as the page draws it, JSON-ready."""
        return {
            "title": f"{describe(self.run)}: codes of {len(self.shown):,} {self.origin.what}",
            "note": self.view.note,
            "axes": list(self.view.axes),
            "extent": self.extent,
            "reach": self.reach,
            "prior_bulk": self.prior_bulk,
            "equal_aspect": self.view.axes[1] != "",
            "points": np.round(self.view.points.astype(float), DECIMALS).tolist(),
            "labels": self.test.labels[self.shown].tolist() if self.origin.labelled else None,
            "images": self.shown.tolist(),
            "classes": list(self.test.class_names),
            "files": None if self.origin.files is None else self.files(),
            "scores": None if self.scores is None else [float(f"{v:.6g}") for v in self.scores],
            "dots": self.dots(),
            "dimensions": self.dimensions(),
        }

    def dimensions(self) -> dict | None:
        """The sliders' dimensions, JSON-ready: every dimension ranked by its KL from the
        prior (most first, ties in index order, as `vaelab plot RUN traverse`), each one's KL
        and whether it is active (`active_above`), how many get a slider and their range."""
        if self.usage is None:
            return None
        return {
            "order": self.usage.kl.argsort(descending=True, stable=True).tolist(),
            "kl": [round(float(v), DECIMALS) for v in self.usage.kl],
            "active": self.usage.active.tolist(),
            "active_above": latent_usage.ACTIVE,
            "images": self.usage.images,
            "sliders": min(SLIDERS, self.model.latent_dim),
            "limit": PRIOR_BULK,
            "step": SLIDER_STEP,
        }

    def files(self) -> list[str]:
        """The file of each dot's image."""
        return [self.origin.files[i] for i in self.shown.tolist()]

    def dots(self) -> str:
        """What the dots are, for the line under the plane."""
        if self.origin.labelled:
            what = f"Each dot is the code of one of the {self.origin.what}, coloured by its class."
        else:
            what = f"Each dot is the code of one of the {self.origin.what}, all in one colour: "
            what += "image files carry no class."
        if self.scores is not None:
            what += " Hover one to see it, its score and the detector's verdict."
        return what

    @property
    def classes(self) -> int | None:
        """How many labels a conditional model chooses from; None for any other model."""
        return self.model.num_classes if self.model.capabilities.conditional else None

    def card(self) -> dict:
        """The model card and what drawings are scored with: the score and its threshold (a
        conditional model has none, and names its labels for the page's picker instead)."""
        names = list(self.test.class_names) if self.origin.run_test else None
        card = model_card(self.run, self.model, names)
        if self.threshold is None:
            labels = names or [str(c) for c in range(self.model.num_classes)]
            return {**card, "score": None, "label_names": labels}
        return {**card, **self.threshold.describe()}

    def to_plane(self, z: Tensor) -> np.ndarray:
        """Plane points (N, 2) of latent codes (N, D)."""
        return ((z - self.view.origin) @ self.view.basis.T).numpy()

    def decode(self, x: float, y: float, label: int | None = None) -> np.ndarray:
        """The image decoded at plane point (x, y), as uint8 pixels (a conditional model
        draws it as `label`)."""
        z = self.view.to_latent(torch.tensor([[x, y]]))
        return to_uint8(latent.decode(self.model, z, label))[0]

    def decode_code(self, z: Sequence[float], label: int | None = None) -> dict:
        """The image decoded from a whole latent code (a data URL) and where the code lands on
        the plane, for the sliders (a conditional model draws it as `label`)."""
        code = torch.tensor([z], dtype=torch.float32)
        return {
            "image": image_url(latent.decode(self.model, code, label)[0]),
            "point": self.plane_point(code),
        }

    def code_at(self, start: queries.End) -> dict:
        """The whole latent code the sliders start from, and its plane point: a test image's
        code, or the one a plane point stands for (`view.to_latent`: on a PCA plane, the mean
        code moved along the two components)."""
        if start.test_image is None:
            code = self.view.to_latent(torch.tensor([start.point]))
        else:
            code = self.encoded([start.test_image])
        return {
            "z": np.round(code[0].double().numpy(), DECIMALS).tolist(),
            "point": self.plane_point(code),
        }

    def plane_point(self, code: Tensor) -> list[float]:
        """The plane point of one latent code (1, D), rounded as the page's points are."""
        return np.round(self.to_plane(code)[0].astype(float), DECIMALS).tolist()

    def test_image(self, index: int) -> np.ndarray:
        return self.test.images[index].permute(1, 2, 0).squeeze(-1).numpy()

    def walk_options(
        self, start: queries.End, end: queries.End, steps: int, label: int | None = None
    ) -> PlotOptions:
        """The `vaelab plot RUN interpolate` settings of a walk between two ends: two of the
        run's test images by their index; two other images by their codes, as latent points."""
        images = (start.test_image, end.test_image)
        if None not in images and self.origin.run_test:
            return PlotOptions(steps=steps, images=images, data_dir=self.data_dir, label=label)
        if None not in images:
            ends = self.codes(list(images))
        else:
            ends = self.view.to_latent(torch.tensor([start.point, end.point]))
        start_z, end_z = np.round(ends.tolist(), DECIMALS).tolist()
        return PlotOptions(
            steps=steps, start=start_z, end=end_z, data_dir=self.data_dir, label=label
        )

    def codes(self, indices: list[int]) -> Tensor:
        """The codes of the explorer's images `indices`, where a walk between them starts and
        ends; `vaelab plot` walks an autoencoder between its run's test images only."""
        if not self.model.capabilities.sampling:
            raise VaelabError(
                f"{self.model.describe()} has no prior over its latent space, so it is walked "
                "between its run's own test images only; these are "
                f"{self.origin.what}: explore the run without other images to walk"
            )
        return self.encoded(indices)

    def encoded(self, indices: list[int]) -> Tensor:
        """The codes of the explorer's images `indices`, each encoded with its label where the
        model takes one."""
        labels = self.test.labels[indices] if self.model.capabilities.conditional else None
        return latent.codes(self.model, self.test.float()[indices], labels)

    def walk(self, options: PlotOptions) -> dict:
        """Each step's decoded image and place on the plane, and the command that draws it."""
        start, end = endpoints(self.run, self.model, options)
        points = latent.line(start, end, options.steps)
        images = latent.decode(self.model, points, options.label)
        return {
            "frames": [image_url(image) for image in images],
            "points": np.round(self.to_plane(points).astype(float), DECIMALS).tolist(),
            "command": walk_command(self.run, options),
        }

    def walk_gif(self, options: PlotOptions) -> bytes:
        """The GIF `vaelab plot RUN interpolate` writes for the same walk."""
        with tempfile.TemporaryDirectory() as folder:
            return interpolate(self.run, Path(folder) / "walk.gif", options).read_bytes()

    def analyse(self, picture: bytes, label: int | None = None) -> dict:
        """A drawn or dropped picture through the model: its code on the plane, reconstruction,
        per-pixel squared error and anomaly score (none for a conditional model, which reads
        the picture as `label`)."""
        images = self.model_input(drawing.read_picture(picture))
        labels = latent.conditioning(self.model, 1, label)
        code = latent.codes(self.model, images, labels)
        recon = torch.sigmoid(reconstruct(self.model, images, labels))
        error = pixel_errors(self.model, images, "mse", labels)[0]
        result = {
            "point": self.plane_point(code),
            "input": image_url(images[0]),
            "reconstruction": image_url(recon[0]),
            "error": heat_url(error, top=float(images.shape[1])),
        }
        if self.threshold is None:
            return result
        return {
            **result,
            **self.threshold.judge(float(self.threshold.measure(images)[0])),
        }

    def model_input(self, ink: np.ndarray) -> Tensor:
        """A picture's ink, fitted as the run's images are, as a (1, C, H, W) float batch."""
        image = torch.from_numpy(self.style.apply(ink, self.size))
        return image.expand(1, self.model.channels, -1, -1).contiguous()


def dimension_usage(
    model: Model, images: Tensor, labels: Tensor | None
) -> latent_usage.Usage | None:
    """What each latent dimension carries over the shown images, for the sliders: only for a
    model with a prior (a slider walks it) beyond two dimensions (two are the plane itself)."""
    if not model.capabilities.sampling or model.latent_dim <= 2:
        return None
    return latent_usage.usage(model, images, labels)


def open_detector(
    run: Run, score: str | None, samples: int | None, shown_given: bool
) -> AnomalyDetector | None:
    """The detector saved in the run folder, if it is one; None for any other run. A
    detector names no test set, so it must be shown images; its threshold holds for its own
    score only, so another `score` (or `samples`) is refused, as `vaelab export` refuses it."""
    if not (run.path / DETECTOR_FILE).exists():
        return None
    if not shown_given:
        raise SettingError(
            f"{run.path} is a detector fitted on arrays or image files, so it names no test "
            "images to show: give some with {images} (image files or folders) or {dataset} "
            "(e.g. mnist, or a folder of class subfolders)",
            "images",
            "dataset",
        )
    detector = load_detector(run.path, score)
    if samples is not None:
        raise SettingError(
            f"{run.path} is a detector, which scores as it was fitted to; leave out {{samples}}",
            "samples",
        )
    return detector


def run_threshold(
    run: Run, model: Model, data_dir: str | None, score: str | None, samples: int | None
) -> Threshold:
    """`score` (`DEFAULT_SCORE`) with `samples` (`SAMPLES`) on the run's validation split."""
    config = run.config.data
    if data_dir is not None:
        config.data_dir = data_dir
    validation = prepare(config)[1]
    return Threshold.of_run(run, model, validation, score or DEFAULT_SCORE, samples or SAMPLES)


def walk_command(run: Run, options: PlotOptions) -> str:
    """The command line that writes the same walk as a GIF."""
    if options.images is not None:
        ends = f"--images {options.images[0]} {options.images[1]}"
    else:
        ends = f"--from {' '.join(map(str, options.start))} --to {' '.join(map(str, options.end))}"
    label = "" if options.label is None else f" --label {options.label}"
    return f"vaelab plot {run.path} interpolate {ends} --steps {options.steps}{label}"
