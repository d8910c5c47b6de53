"""Does the VAE remember? The default continual protocol on full MNIST, strategies in parallel.

    python benchmarks/continual_mnist.py --out runs/continual-mnist \
        [--strategies naive,generative-replay,cumulative] [--data-dir DIR] \
        [--first-stage-epochs N] [--epochs-per-stage N]

Each strategy trains in its own process, the cores split between them (small
convolutions use two cores better as two processes than as two threads), then the
results are collected into OUT (metrics.json, matrix.csv, figures, report)
exactly as `vaelab continual` writes them. Finished stages are skipped, so
an interrupted measurement continues where it stopped.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from vaelab.config import TrainConfig
from vaelab.continual import ContinualConfig, run_continual
from vaelab.continual.loop import strategy_task
from vaelab.executors import LocalExecutor


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
    base = ContinualConfig(
        dataset="mnist",
        data_dir=args.data_dir,
        first_stage_epochs=args.first_stage_epochs,
        train=TrainConfig(epochs=args.epochs_per_stage),
    )
    configs = [replace(base, strategy=name) for name in args.strategies.split(",")]
    for config in configs:
        config.check()
    calls = [(config, config.strategy, str(args.out), False) for config in configs]
    for name in LocalExecutor().run(strategy_task, calls, jobs=len(calls)):
        print(f"{name}: trained", flush=True)
    metrics = {}
    for config in configs:  # every stage is saved: this only collects and measures dreams
        metrics = run_continual(config, args.out, progress=False)
    for name, summary in metrics["strategies"].items():
        print(f"{name}: average forgetting {summary['avg_forgetting']:.2f} nats")


if __name__ == "__main__":
    main()
