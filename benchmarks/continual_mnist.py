"""Does the VAE remember? The default continual protocol on full MNIST, strategies in parallel.

    python benchmarks/continual_mnist.py --out runs/continual-mnist \
        [--strategies naive,generative-replay,cumulative] [--data-dir DIR] \
        [--first-stage-epochs N] [--epochs-per-stage N]

Each strategy trains in its own process, the cores split between them (small
convolutions use two cores better as two processes than as two threads): the
same as `vaelab continual --strategy A,B,C --jobs 3`, which writes OUT
(metrics.json, matrix.csv, figures, report). Finished stages are skipped, so an
interrupted measurement continues where it stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vaelab.config import TrainConfig
from vaelab.continual import ContinualConfig, run_continual


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--strategies", default="naive,generative-replay,cumulative")
    parser.add_argument("--data-dir")
    parser.add_argument(
        "--first-stage-epochs", type=int, default=ContinualConfig.first_stage_epochs
    )
    parser.add_argument("--epochs-per-stage", type=int, default=ContinualConfig().train.epochs)
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


if __name__ == "__main__":
    main()
