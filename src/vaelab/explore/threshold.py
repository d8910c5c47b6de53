"""How unusual a drawn image is to the run's model, measured against images it should know.

A score alone (say 41.7) means nothing to a learner, so it is set against
the same score on held-out images of the classes the run was trained on:
its validation split, which training never fits. For a run trained on some
classes only (a one-class anomaly detector), an image is called anomalous
when it scores above the 95th percentile of those images: by construction
about 5% of new normal images are flagged too, and the page says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor

from vaelab.anomaly import compute_score
from vaelab.data import Dataset
from vaelab.models import Model
from vaelab.run import Run
from vaelab.scores import SAMPLES

QUANTILE = 0.95
REFERENCE = 2000
"""Held-out images scored at start-up: enough for a stable 95th percentile, quick on a CPU."""


@dataclass
class Threshold:
    """Scores of held-out normal images, and the share of them an anomaly must exceed."""

    score: str
    samples: int
    seed: int
    reference: np.ndarray
    source: str
    one_class: bool

    @classmethod
    def of_run(
        cls, run: Run, model: Model, validation: Dataset, score: str, samples: int = SAMPLES
    ) -> Threshold:
        config = run.config
        threshold = cls(score, samples, config.train.seed, np.zeros(0), "", False)
        images = validation.float()[:REFERENCE]
        threshold.reference = np.sort(threshold.measure(model, images))
        split = config.data.validation
        where = "test split" if split == "test" else f"{split} of the training images held out"
        threshold.source = f"{len(images):,} validation images ({where}) of the run's classes"
        threshold.one_class = config.data.classes is not None
        return threshold

    def measure(self, model: Model, images: Tensor) -> np.ndarray:
        """The score of each image, computed as for the reference images."""
        return compute_score(model, images, self.score, self.samples, self.seed).numpy()

    @property
    def value(self) -> float:
        return float(np.quantile(self.reference, QUANTILE))

    def judge(self, value: float) -> dict:
        """The score, the share of reference images scoring lower, and for a one-class run
        whether it is anomalous at the threshold."""
        below = float(np.searchsorted(self.reference, value) / len(self.reference))
        verdict = None
        if self.one_class:
            verdict = "anomalous" if value > self.value else "normal"
        return {"score": value, "share_below": below, "verdict": verdict}

    def describe(self) -> dict:
        return {
            "score": self.score,
            "threshold": self.value if self.one_class else None,
            "quantile": QUANTILE,
            "source": self.source,
        }
