"""The log-likelihood benchmark's figure: what a model draws from its prior, and how its
estimate of -log p(x) settles as the number of importance samples K grows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import figure as mpl
from torch import Tensor

from vaelab.figures.images import tile
from vaelab.figures.plots import _show, save


def nll_figure(
    samples: Tensor,
    ks: Sequence[int],
    curves: Sequence[Sequence[float]],
    title: str,
    path: Path,
) -> Path:
    """Left: `samples` (N, C, H, W) in [0, 1] decoded from the prior. Right: each test image's
    estimate (a row of `curves`, nats) at every K of `ks`, on a log axis; the drop from
    K = 1 is how loose the ELBO is for that image."""
    fig = mpl.Figure(figsize=(9.5, 4.0), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1, 1.3])
    columns = int(np.ceil(np.sqrt(len(samples))))
    _show(left, tile(samples, columns=columns, pad=1))
    left.set_title("decoded from z ~ N(0, I): pixel probabilities", fontsize=9)
    for image, values in enumerate(curves):
        right.plot(ks, values, marker="o", markersize=3, label=f"test image {image}")
    right.set_xscale("log")
    right.set_xlabel("K, importance samples per image")
    right.set_ylabel("estimate of -log p(x) (nats)")
    right.set_title("the estimate tightens as K grows", fontsize=9)
    right.grid(alpha=0.3)
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.suptitle(title, fontsize=10)
    return save(fig, path)
