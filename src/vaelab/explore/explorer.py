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
from vaelab.errors import VaelabError
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
    threshold: Threshold
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
        if model.capabilities.conditional:
            raise VaelabError(
                f"{run.path} holds a conditional model ({run.config.model.name}), which decodes "
                "a point only with a class label; the explorer has no label picker yet"
            )
        test = test_set(run, data_dir)
        shown = cycle_classes(test.labels, min(count, len(test)))
        view = latent.plane(latent.codes(model, test.images[shown].float() / 255))
        config = run.config.data
        if data_dir is not None:
            config.data_dir = data_dir
        threshold = Threshold.of_run(run, model, prepare(config)[1], score, samples)
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

    def card(self) -> dict:
        return {**model_card(self.run, self.model, self.test), **self.threshold.describe()}

    def to_plane(self, z: Tensor) -> np.ndarray:
        """Plane points (N, 2) of latent codes (N, D)."""
        return ((z - self.view.origin) @ self.view.basis.T).numpy()

    def decode(self, x: float, y: float) -> np.ndarray:
        """The image decoded at plane point (x, y), as uint8 pixels."""
        z = self.view.to_latent(torch.tensor([[x, y]]))
        return to_uint8(latent.decode(self.model, z))[0]

    def test_image(self, index: int) -> np.ndarray:
        return self.test.images[index].permute(1, 2, 0).squeeze(-1).numpy()

    def walk_options(self, start: queries.End, end: queries.End, steps: int) -> PlotOptions:
        """The `vaelab plot RUN interpolate` settings of a walk between two ends."""
        if start.test_image is not None and end.test_image is not None:
            images = (start.test_image, end.test_image)
            return PlotOptions(steps=steps, images=images, data_dir=self.data_dir)
        ends = [self.view.to_latent(torch.tensor([e.point])) for e in (start, end)]
        start_z, end_z = (np.round(z[0].tolist(), DECIMALS).tolist() for z in ends)
        return PlotOptions(steps=steps, start=start_z, end=end_z, data_dir=self.data_dir)

    def walk(self, options: PlotOptions) -> dict:
        """Each step's decoded image and place on the plane, and the command that draws it."""
        start, end = endpoints(self.run, self.model, options)
        points = latent.line(start, end, options.steps)
        images = latent.decode(self.model, points)
        return {
            "frames": [image_url(image) for image in images],
            "points": np.round(self.to_plane(points).astype(float), DECIMALS).tolist(),
            "command": walk_command(self.run, options),
        }

    def walk_gif(self, options: PlotOptions) -> bytes:
        """The GIF `vaelab plot RUN interpolate` writes for the same walk."""
        with tempfile.TemporaryDirectory() as folder:
            return interpolate(self.run, Path(folder) / "walk.gif", options).read_bytes()

    def analyse(self, picture: bytes) -> dict:
        """A drawn or dropped picture through the model: its code on the plane, reconstruction,
        per-pixel squared error and anomaly score."""
        images = self.model_input(drawing.read_picture(picture))
        code = latent.codes(self.model, images)
        recon = torch.sigmoid(reconstruct(self.model, images))
        error = pixel_errors(self.model, images, "mse")[0]
        value = float(self.threshold.measure(self.model, images)[0])
        return {
            "point": np.round(self.to_plane(code)[0].astype(float), DECIMALS).tolist(),
            "input": image_url(images[0]),
            "reconstruction": image_url(recon[0]),
            "error": heat_url(error, top=float(images.shape[1])),
            **self.threshold.judge(value),
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
    return f"vaelab plot {run.path} interpolate {ends} --steps {options.steps}"
