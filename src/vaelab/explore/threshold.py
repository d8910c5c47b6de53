"""How unusual a drawn image is to the run's model, measured against images it should know.

A score alone (say 41.7) means nothing to a learner, so it is set against
the same score on reference images. For a run these are held-out images of
the classes it was trained on: its validation split, which training never
fits. For a run trained on some classes only (a one-class anomaly detector),
an image is called anomalous when it scores above the 95th percentile of
those images: by construction about 5% of new normal images are flagged too,
and the page says so.

A saved `AnomalyDetector` brings its own score and threshold, set when it was
fitted on the normal images it held out from training. It keeps no scores of
those images, so the share scoring lower is measured on the images the
explorer shows, and the page says that too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor

from vaelab.anomaly import compute_score
from vaelab.data import Dataset
from vaelab.models import Model
from vaelab.run import Run
from vaelab.scores import SAMPLES

if TYPE_CHECKING:
    from vaelab.anomaly import AnomalyDetector

QUANTILE = 0.95
REFERENCE = 2000
"""Held-out images scored at start-up: enough for a stable 95th percentile, quick on a CPU."""


@dataclass
class Threshold:
    """A score, its values on reference images, and the value above which an image is
    called anomalous (None where the run names no normal classes to tell apart)."""

    score: str
    measure: Callable[[Tensor], np.ndarray]
    """The score of float images (N, C, H, W) in [0, 1]."""
    reference: np.ndarray
    """The reference images' scores, sorted."""
    source: str
    """What the reference images are, as the page names them."""
    value: float | None
    quantile: float
    """The share of normal images scoring below `value` when it was set."""
    rule: str
    """How `value` was set, as the page says it."""

    @classmethod
    def of_run(
        cls, run: Run, model: Model, validation: Dataset, score: str, samples: int = SAMPLES
    ) -> Threshold:
        """`score` on up to `REFERENCE` validation images; a one-class run's threshold is
        their 95th percentile."""
        config = run.config

        def measure(images: Tensor) -> np.ndarray:
            return compute_score(model, images, score, samples, config.train.seed).numpy()

        images = validation.float()[:REFERENCE]
        reference = np.sort(measure(images))
        split = config.data.validation
        where = "test split" if split == "test" else f"{split} of the training images held out"
        source = f"{len(images):,} validation images ({where}) of the run's classes"
        one_class = config.data.classes is not None
        value = float(np.quantile(reference, QUANTILE)) if one_class else None
        rule = f"the {100 * QUANTILE:g}th percentile of those images"
        return cls(score, measure, reference, source, value, QUANTILE, rule)

    @classmethod
    def of_detector(cls, detector: AnomalyDetector, scores: np.ndarray, source: str) -> Threshold:
        """The detector's own score and threshold, read against `scores`: the detector's
        scores of the images `source` names."""
        rule = (
            f"the detector's own, set when it was fitted so that {percent(detector.fpr)} of the "
            f"normal images it held out from training ({percent(detector.holdout)} of those it "
            "was given) scored above it"
        )
        return cls(
            detector.score_name(),
            detector.score_samples,
            np.sort(scores),
            source,
            detector.threshold_,
            1 - detector.fpr,
            rule,
        )

    def judge(self, value: float) -> dict:
        """The score, the share of reference images scoring lower, and where there is a
        threshold whether it is anomalous."""
        below = float(np.searchsorted(self.reference, value) / len(self.reference))
        verdict = None
        if self.value is not None:
            verdict = "anomalous" if value > self.value else "normal"
        return {"score": value, "share_below": below, "verdict": verdict}

    def describe(self) -> dict:
        return {
            "score": self.score,
            "threshold": self.value,
            "quantile": self.quantile,
            "rule": self.rule,
            "source": self.source,
        }


def percent(share: float) -> str:
    """A share as the page writes it: 0.05 as 5%, 0.025 as 2.5%."""
    return f"{100 * share:.3g}%"
