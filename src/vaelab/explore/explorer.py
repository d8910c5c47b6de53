"""A run's model over its latent plane: what the explorer's server answers with.

The plane is the latent space itself for a 2-D code, the codes' first two
principal components otherwise (as the report's scatter). For a 2-D VAE it
spans the union of the data and [-3, 3]^2, the bulk of the prior that the
report's manifold shows, so that z = 0 and the empty space between clusters
can be decoded too.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vaelab.config import DEFAULT_SCORE
from vaelab.data import Dataset, prepare
from vaelab.explore import drawing, queries
from vaelab.explore.card import model_card
from vaelab.explore.pictures import heat_url, image_url
from vaelab.explore.threshold import Threshold
from vaelab.figures import latent
from vaelab.figures.images import to_uint8
from vaelab.models import Model
from vaelab.plotting import PlotOptions, describe, endpoints, interpolate, test_set
from vaelab.run import Run
from vaelab.scores import SAMPLES, pixel_errors, reconstruct

DEFAULT_COUNT = 5000
PRIOR_BULK = PlotOptions.limit
"""Half the side of the square the report's manifold decodes."""
REACH = 10
"""How far beyond the default view (times its largest coordinate) points may be asked for."""
STYLE_SAMPLE = 500
"""Test images looked at to learn how large and which way round the run's images are."""
DECIMALS = 4
"""Plane and latent values are rounded to this: finer than a pixel, and reproducible."""


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
    """A run's model, the plane it is explored on, and the test images drawn there."""

    run: Run
    model: Model
    view: latent.View
    test: Dataset
    shown: Tensor
    threshold: Threshold | None
    style: drawing.Style
    data_dir: str | None = None

    @classmethod
    def from_run(
        cls,
        run_dir: str | Path,
        count: int = DEFAULT_COUNT,
        data_dir: str | None = None,
        score: str = DEFAULT_SCORE,
        samples: int = SAMPLES,
    ) -> Explorer:
        """The run's model over the codes of `count` test images, cycling through the classes,
        with `score` measured on its held-out images."""
        run = Run(run_dir)
        model = run.load_model()
        test = test_set(run, data_dir)
        shown = cycle_classes(test.labels, min(count, len(test)))
        conditional = model.capabilities.conditional
        labels = test.labels[shown] if conditional else None
        view = latent.plane(latent.codes(model, test.images[shown].float() / 255, labels))
        config = run.config.data
        if data_dir is not None:
            config.data_dir = data_dir
        threshold = (
            None  # an anomaly score sees no label, which a conditional model needs
            if conditional
            else Threshold.of_run(run, model, prepare(config)[1], score, samples)
        )
        style = drawing.Style.of(test.images[shown[:STYLE_SAMPLE]])
        return cls(run, model, view, test, shown, threshold, style, data_dir)

    @property
    def reach(self) -> float:
        """The largest |coordinate| a client may ask to decode."""
        return REACH * max(abs(v) for v in self.extent)

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
            "title": f"{describe(self.run)}: codes of {len(self.shown):,} test images",
            "note": self.view.note,
            "axes": list(self.view.axes),
            "extent": self.extent,
            "reach": self.reach,
            "prior_bulk": self.prior_bulk,
            "equal_aspect": self.view.axes[1] != "",
            "points": np.round(self.view.points.astype(float), DECIMALS).tolist(),
            "labels": self.test.labels[self.shown].tolist(),
            "images": self.shown.tolist(),
            "classes": list(self.test.class_names),
        }

    @property
    def classes(self) -> int | None:
        """How many labels a conditional model chooses from; None for any other model."""
        return self.model.num_classes if self.model.capabilities.conditional else None

    def card(self) -> dict:
        card = model_card(self.run, self.model, self.test)
        if self.threshold is None:
            return {**card, "score": None, "label_names": list(self.test.class_names)}
        return {**card, **self.threshold.describe()}

    def to_plane(self, z: Tensor) -> np.ndarray:
        """Plane points (N, 2) of latent codes (N, D)."""
        return ((z - self.view.origin) @ self.view.basis.T).numpy()

    def decode(self, x: float, y: float, label: int | None = None) -> np.ndarray:
        """The image decoded at plane point (x, y), as uint8 pixels (a conditional model
        draws it as `label`)."""
        z = self.view.to_latent(torch.tensor([[x, y]]))
        return to_uint8(latent.decode(self.model, z, label))[0]

    def test_image(self, index: int) -> np.ndarray:
        return self.test.images[index].permute(1, 2, 0).squeeze(-1).numpy()

    def walk_options(
        self, start: queries.End, end: queries.End, steps: int, label: int | None = None
    ) -> PlotOptions:
        """The `vaelab plot RUN interpolate` settings of a walk between two ends."""
        if start.test_image is not None and end.test_image is not None:
            images = (start.test_image, end.test_image)
            return PlotOptions(steps=steps, images=images, data_dir=self.data_dir, label=label)
        ends = [self.view.to_latent(torch.tensor([e.point])) for e in (start, end)]
        start_z, end_z = (np.round(z[0].tolist(), DECIMALS).tolist() for z in ends)
        return PlotOptions(
            steps=steps, start=start_z, end=end_z, data_dir=self.data_dir, label=label
        )

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
            "point": np.round(self.to_plane(code)[0].astype(float), DECIMALS).tolist(),
            "input": image_url(images[0]),
            "reconstruction": image_url(recon[0]),
            "error": heat_url(error, top=float(images.shape[1])),
        }
        if self.threshold is None:
            return result
        return {
            **result,
            **self.threshold.judge(float(self.threshold.measure(self.model, images)[0])),
        }

    def model_input(self, ink: np.ndarray) -> Tensor:
        """A picture's ink, fitted as the run's images are, as a (1, C, H, W) float batch."""
        image = torch.from_numpy(self.style.apply(ink, self.size))
        return image.expand(1, self.model.channels, -1, -1).contiguous()


def walk_command(run: Run, options: PlotOptions) -> str:
    """The command line that writes the same walk as a GIF."""
    if options.images is not None:
        ends = f"--images {options.images[0]} {options.images[1]}"
    else:
        ends = f"--from {' '.join(map(str, options.start))} --to {' '.join(map(str, options.end))}"
    label = "" if options.label is None else f" --label {options.label}"
    return f"vaelab plot {run.path} interpolate {ends} --steps {options.steps}{label}"
