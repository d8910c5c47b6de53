"""How many epochs does the 7-only VAE need before its anomaly score is useful?

    python benchmarks/short_runs.py --json docs/results/short-runs-sample.json [--threads 2]

Trains the article's VAE (latent 2, Adam, batch 128, seed 0) on the 800
sevens of the bundled sample, resuming the same run to each number of epochs
(bit for bit the weights of a straight run), and after each scores the 2,000
test images by `recon-mse` with the sevens normal: the overall AUROC, and
the worst digit's (sevens against the single hardest other digit). The sums
inside a batch's gradient are split between the CPU threads, so the numbers
depend on `--threads` (2 by default), as on the CPU and the PyTorch build.
Then `python scripts/doc_tables.py` redraws the table in the README and in
docs/anomaly.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import date
from pathlib import Path

import numpy as np

import vaelab
from vaelab.config import DataConfig, ModelConfig, RunConfig, TrainConfig

EPOCHS = (1, 5, 10, 20, 50, 100)


def measure(run: vaelab.Run, test: vaelab.Dataset) -> dict[str, float]:
    """AUROC overall, and the lowest of sevens against each other digit."""
    model = run.load_model()
    scores = vaelab.score(model, test.float(), "recon-mse").numpy()
    labels = test.labels.numpy()
    pairs = [np.isin(labels, [7, digit]) for digit in range(10) if digit != 7]
    against = [vaelab.anomaly_metrics(labels[p] != 7, scores[p])["auroc"] for p in pairs]
    overall = vaelab.anomaly_metrics(labels != 7, scores)["auroc"]
    return {"auroc": round(overall, 4), "worst_digit_auroc": round(min(against), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="results file to write")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (2)")
    args = parser.parse_args()
    test = vaelab.load_dataset("mnist-sample", "test")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for epochs in EPOCHS:
            config = RunConfig(
                DataConfig("mnist-sample", classes=[7]),
                ModelConfig("vae", 2),
                TrainConfig(epochs, threads=args.threads),
            )
            run = vaelab.fit(config, folder, resume=bool(rows), progress=False)
            rows.append({"epochs": epochs, **measure(run, test)})
            print(rows[-1], flush=True)
    results = {
        "benchmark": "epochs",
        "dataset": "mnist-sample",
        "measured": date.today().isoformat(),
        "command": f"python benchmarks/short_runs.py --json {args.json} --threads {args.threads}",
        "protocol": {
            "model": "vae, latent 2 (the article's)",
            "train": "the 800 sevens of mnist-sample, Adam lr 1e-3, batch 128, seed 0, "
            f"{args.threads} CPU threads",
            "score": "recon-mse on the 2,000 test images, sevens normal, the rest anomalous",
            "worst_digit_auroc": "the lowest AUROC of sevens against one other digit",
        },
        "rows": rows,
    }
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
