"""Does the VAE remember? The default continual protocol on full MNIST, strategies in parallel.

    python benchmarks/continual_mnist.py --out runs/continual-mnist \
        [--strategies naive,generative-replay,cumulative] [--data-dir DIR] \
        [--first-stage-epochs N] [--epochs-per-stage N] [--json FILE]

Each strategy trains in its own process, the cores split between them (small
convolutions use two cores better as two processes than as two threads): the
same as `vaelab continual --strategy A,B,C --jobs 3`, which writes OUT
(metrics.json, matrix.csv, figures, report). Finished stages are skipped, so an
interrupted measurement continues where it stopped. `--json` writes the table's
record (docs/results/continual-mnist.json) from OUT/metrics.json.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from statistics import fmean
from typing import Any

from vaelab.config import TrainConfig
from vaelab.continual import ContinualConfig, run_continual

sys.path.insert(0, str(Path(__file__).parent))
from records import report, stamp  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--strategies", default="naive,generative-replay,cumulative")
    parser.add_argument("--data-dir")
    parser.add_argument(
        "--first-stage-epochs", type=int, default=ContinualConfig.first_stage_epochs
    )
    parser.add_argument("--epochs-per-stage", type=int, default=ContinualConfig().train.epochs)
    parser.add_argument("--json", help="write the table's record here")
    args = parser.parse_args()
    config = ContinualConfig(
        dataset="mnist",
        data_dir=args.data_dir,
        strategy=args.strategies,
        first_stage_epochs=args.first_stage_epochs,
        train=TrainConfig(epochs=args.epochs_per_stage),
    )
    jobs = len(config.strategies)
    metrics = run_continual(config, args.out, jobs=jobs, progress=False)
    for name, summary in metrics["strategies"].items():
        print(f"{name}: average forgetting {summary['avg_forgetting']:.2f} nats")
    if args.json:
        report(record(metrics), args.json)


def record(metrics: dict[str, Any]) -> dict[str, Any]:
    """The table's record: per strategy, its forgetting, its final losses, what became of
    the first digit, and what it trained on in stages 1 onwards."""
    protocol = metrics["protocol"]
    first = str(protocol["order"][0])
    machine = (
        f"{os.cpu_count()} CPU cores shared by the {len(metrics['strategies'])} strategies, "
        "one process each"
    )
    stage_0 = next(iter(metrics["strategies"].values()))["stages"][0]
    return {
        **stamp("continual", {**protocol, "classifier": metrics["classifier"], "machine": machine}),
        "dataset": protocol["dataset"],
        "stage_0": f"{stage_0['epochs']} epochs on the {stage_0['train_images']:,} training "
        f"images of digit {first}, {stage_0['train_seconds'] / 60:.1f} min, the same for every "
        "strategy",
        "rows": [_row(name, s, first) for name, s in metrics["strategies"].items()],
    }


def _row(name: str, summary: dict[str, Any], first: str) -> dict[str, Any]:
    later = summary["stages"][1:]
    real = sum(s["real_images"] for s in later)
    dreamed = sum(s["dreamed_images"] for s in later)
    return {
        "strategy": name,
        "avg_forgetting": round(summary["avg_forgetting"], 1),
        "final_mean_loss": round(fmean(summary["final_loss"].values()), 1),
        "first_digit_loss": [
            round(summary["stages"][0]["loss"][first], 1),
            round(summary["final_loss"][first], 1),
        ],
        "first_digit_dream_share": [
            round(summary["stages"][0]["dream_share"][first], 2),
            round(summary["final_dream_share"][first], 2),
        ],
        "images_trained": f"{real + dreamed:,}" + (f" ({dreamed:,} dreamed)" if dreamed else ""),
        "train_minutes": round(sum(s["train_seconds"] for s in later) / 60, 1),
    }


if __name__ == "__main__":
    main()
