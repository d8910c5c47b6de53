"""`vaelab bench oneclass`: the one-class anomaly benchmark beside the published results."""

from __future__ import annotations

import argparse
from pathlib import Path

from vaelab.bench import OneClassConfig
from vaelab.cli.anomaly import add_score_options
from vaelab.cli.options import add_data_dir, add_device, class_list, positive_int

DEFAULTS = OneClassConfig()
"""vaelab's benchmark protocol; the bench module imports no torch, so --help stays fast."""


def add_to(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench", help="benchmarks", description="Benchmarks against published results."
    )
    commands = p.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    p = commands.add_parser(
        "oneclass",
        help="one-class anomaly detection AUROC per class (Deep SVDD protocol)",
        description="For each class: train on that class's training images only, score the "
        "whole test set (that class normal, the others anomalous), report AUROC per class "
        "averaged over seeds beside the published results. Finished class/seed runs are kept "
        "in --out and not retrained.",
    )
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist", "mnist-sample"],
                   default=DEFAULTS.dataset, help=f"dataset ({DEFAULTS.dataset})")  # fmt: skip
    p.add_argument("--classes", type=class_list, default=list(range(10)),
                   help="normal classes to run, e.g. 0-9 (all) or 3,5")  # fmt: skip
    d = DEFAULTS
    p.add_argument("--seeds", type=positive_int, default=d.seeds, metavar="N",
                   help=f"seeds 0..N-1 per class ({d.seeds})")  # fmt: skip
    p.add_argument("--model", default=d.model, help=f"model name ({d.model})")
    p.add_argument("--latent-dim", type=positive_int, default=d.latent_dim, metavar="N",
                   help=f"latent size ({d.latent_dim})")  # fmt: skip
    p.add_argument("--epochs", type=positive_int, default=d.epochs, metavar="N",
                   help=f"epochs per class ({d.epochs})")  # fmt: skip
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size, metavar="N",
                   help=f"batch size ({d.batch_size})")  # fmt: skip
    add_score_options(p, d.score)
    p.add_argument("--train-size", type=positive_int, metavar="N",
                   help="train on the first N images of each class (default: all)")  # fmt: skip
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                   help="trainings run in parallel processes (1)")  # fmt: skip
    p.add_argument("--out", metavar="DIR", help="results folder (default: bench/oneclass-DATASET)")
    add_data_dir(p)
    add_device(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_oneclass)


def run_oneclass(args: argparse.Namespace) -> None:
    from vaelab.bench import OneClassConfig, run_oneclass

    config = OneClassConfig(
        dataset=args.dataset,
        classes=args.classes,
        seeds=args.seeds,
        model=args.model,
        latent_dim=args.latent_dim,
        epochs=args.epochs,
        batch_size=args.batch_size,
        score=args.score,
        samples=args.samples,
        train_size=args.train_size,
        data_dir=args.data_dir,
        device=args.device or DEFAULTS.device,
    )
    out = args.out or f"bench/oneclass-{args.dataset}"
    results = run_oneclass(config, out, jobs=args.jobs, progress=not args.quiet)
    print((Path(out) / "table.md").read_text())
    print(f"mean AUROC {results['mean_auroc']:.4f}; results in {out}/results.json")
