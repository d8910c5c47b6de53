"""Choosing a one-class recipe without the test set: candidate scores on a validation split.

    python benchmarks/oneclass_validation.py --data-dir DIR --out runs/validation \
        [--dataset mnist] [--model vae16] [--json FILE]

For every class c: train the model on 90% of c's training images (`DataConfig.validation
= 0.1`, seed 0), then score the held-out 10% (normal) against 3,000 training images of the
other classes drawn at random with a fixed seed (anomalous), and report the AUROC of each
candidate score. The test split is never read, so a recipe picked from this table is
picked without looking at test AUROC; the anomalies here are other classes' *training*
images, which the detector itself never trains on.

The candidates are the registered scores (among them `recon-mse-edge`, the error divided
by the image's edge energy) and other ratios of the squared reconstruction error to a
measure of the image's complexity: its ink, the size of its PNG file, its total variation.
Trained runs are kept in `--out` and reused.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable
from pathlib import Path
from statistics import fmean

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from vaelab import fit
from vaelab.config import (
    DataConfig,
    LikelihoodConfig,
    ModelConfig,
    NetworkConfig,
    ObjectiveConfig,
    RunConfig,
    TrainConfig,
)
from vaelab.data import load, prepare
from vaelab.scores import SCORES, reconstruct, score

MODELS: dict[str, ModelConfig] = {
    "vae16": ModelConfig("vae", latent_dim=16),
    "vae32": ModelConfig("vae", latent_dim=32),
    "vae16-gaussian": ModelConfig("vae", latent_dim=16, likelihood=LikelihoodConfig("gaussian")),
    "vae16-wide": ModelConfig(
        "vae",
        latent_dim=16,
        encoder=NetworkConfig("conv", [32, 32, 32]),
        decoder=NetworkConfig("conv", [32, 32, 32]),
    ),
    "vae16-beta0.5": ModelConfig("vae", latent_dim=16, objective=ObjectiveConfig(beta=0.5)),
}
ANOMALIES = 3000


def png_bits(images: torch.Tensor) -> torch.Tensor:
    """Each image's size in bits as an 8-bit PNG at zlib's highest compression."""
    sizes = []
    for image in (images[:, 0] * 255).round().to(torch.uint8).numpy():
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG", optimize=True)
        sizes.append(8 * buffer.tell())
    return torch.tensor(sizes, dtype=torch.float32)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    rows = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).sum(1)
    return rows + (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).sum(1)


def candidates(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every candidate score of the images `x` (higher = more anomalous)."""
    values = {name: score(model, x, name) for name, s in SCORES.items() if not s.sampled}
    values["elbo (K=10)"] = score(model, x, "elbo", samples=10)
    error = (torch.sigmoid(reconstruct(model, x)) - x).square().flatten(1).sum(1)
    ratios: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "mse / ink": lambda v: v.flatten(1).sum(1),
        "mse / PNG bits": png_bits,
        "mse / total variation": total_variation,
    }
    return {**values, **{name: error / measure(x) for name, measure in ratios.items()}}


def run_class(args: argparse.Namespace, normal: int) -> dict[str, float]:
    data = DataConfig(args.dataset, args.data_dir, [normal], validation=0.1)
    config = RunConfig(data, MODELS[args.model], TrainConfig(epochs=args.epochs, seed=0))
    folder = Path(args.out) / f"{args.dataset}-{args.model}-e{args.epochs}-c{normal}"
    run = fit(config, folder, resume=(folder / "checkpoint.safetensors").exists(), progress=False)
    model = run.load_model().eval()
    _, held_out = prepare(data)
    others = load(args.dataset, "train", args.data_dir)
    others = others.with_classes([c for c in others.classes if c != normal])
    pick = torch.randperm(len(others), generator=torch.Generator().manual_seed(1))[:ANOMALIES]
    images = torch.cat([held_out.float(), others.float()[pick]])
    is_anomaly = np.r_[np.zeros(len(held_out)), np.ones(ANOMALIES)]
    return {
        name: float(roc_auc_score(is_anomaly, values.numpy()))
        for name, values in candidates(model, images).items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True, help="folder for the trained runs")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--model", choices=list(MODELS), default="vae16")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--json", help="write the AUROC per class and score here")
    args = parser.parse_args()
    per_class = {c: run_class(args, c) for c in range(10)}
    names = list(per_class[0])
    table = {name: {str(c): per_class[c][name] for c in per_class} for name in names}
    for name, row in table.items():
        cells = " ".join(f"{100 * v:5.1f}" for v in row.values())
        print(f"{name:24s} {cells} | {100 * fmean(row.values()):.2f}")
    if args.json:
        record = {"dataset": args.dataset, "model": args.model, "epochs": args.epochs,
                  "auroc": table}  # fmt: skip
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
