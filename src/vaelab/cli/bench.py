"""`vaelab bench oneclass`, `split-mnist` and `nll`: benchmarks beside the published results."""

from __future__ import annotations

import argparse
from pathlib import Path

from vaelab.bench import OneClassConfig
from vaelab.cli.anomaly import add_score_options
from vaelab.cli.options import (
    add_data_dir,
    add_device,
    add_executor,
    add_fast_paths,
    add_lr_schedule,
    add_model,
    class_list,
    model_config,
    positive_int,
    recipe_training,
)
from vaelab.nll_bench import NllConfig
from vaelab.recipes import DATASET_RECIPES, DEFAULT_RECIPE, RECIPES

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
    mine = ", ".join([DEFAULT_RECIPE] + [f"{r} on {s}" for s, r in DATASET_RECIPES.items()])
    p.add_argument("--seeds", type=positive_int, default=d.seeds, metavar="N",
                   help=f"seeds 0..N-1 per class ({d.seeds})")  # fmt: skip
    p.add_argument("--recipe", choices=list(RECIPES), metavar="NAME",
                   help=f"the detector: model, training and score (the dataset's: {mine}; "
                   f"one of {', '.join(RECIPES)}); the options below change one part of "
                   "it")  # fmt: skip
    add_model(p, "the recipe's")
    p.add_argument("--epochs", type=positive_int, metavar="N",
                   help="epochs per class (the recipe's)")  # fmt: skip
    p.add_argument("--batch-size", type=positive_int, metavar="N",
                   help="batch size (the recipe's)")  # fmt: skip
    add_score_options(p, None)
    p.add_argument("--train-size", type=positive_int, metavar="N",
                   help="train on the first N images of each class (default: all)")  # fmt: skip
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                   help="trainings at once on each machine, sharing its cores (1)")  # fmt: skip
    add_executor(p)
    p.add_argument("--out", metavar="DIR", help="results folder (default: bench/oneclass-DATASET)")
    add_data_dir(p)
    add_device(p)
    add_fast_paths(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_oneclass)
    add_split_mnist(commands)
    add_nll(commands)


NLL = NllConfig()
"""vaelab's log-likelihood protocol and budget, read for --help without importing torch."""


def add_nll(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "nll",
        help="test -log p(x) on dynamically binarised MNIST beside the published table",
        description="Train a VAE on dynamically binarised MNIST (60,000 training images "
        "re-drawn as bits every epoch, 10,000 test images binarised once), estimate its test "
        "-log p(x) with K importance samples per image, and write results.json, table.md and "
        "a figure beside the published rows (Burda et al. 2016; pythae). Finished seeds are "
        "kept in --out and not retrained.",
    )
    add_model(p, NLL.model.name)
    p.add_argument("--epochs", type=positive_int, default=NLL.train.epochs, metavar="N",
                   help=f"epochs per seed ({NLL.train.epochs}; the paper trained 3,280 "
                   "passes)")  # fmt: skip
    p.add_argument("--batch-size", type=positive_int, default=NLL.train.batch_size,
                   metavar="N", help=f"training batch size ({NLL.train.batch_size})")  # fmt: skip
    add_lr_schedule(p)
    p.add_argument("--train-samples", type=positive_int, metavar="K",
                   help="train on the K-sample importance-weighted bound, an IWAE (default: "
                   "the model's objective; the ELBO for mlp-vae-iwae)")  # fmt: skip
    p.add_argument("--iw-samples", type=positive_int, default=NLL.iw_samples, metavar="K",
                   help=f"importance samples per test image ({NLL.iw_samples})")  # fmt: skip
    p.add_argument("--seeds", type=positive_int, default=NLL.seeds, metavar="N",
                   help=f"seeds 0..N-1 ({NLL.seeds})")  # fmt: skip
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                   help="seeds trained at once on a machine (1)")  # fmt: skip
    add_executor(p)
    p.add_argument(
        "--test-images",
        type=positive_int,
        metavar="N",
        help="estimate on the first N test images only (default: all 10,000)",
    )
    p.add_argument("--train-size", type=positive_int, metavar="N",
                   help="train on the first N images (default: all)")  # fmt: skip
    p.add_argument("--batch", type=positive_int, metavar="N",
                   help="test images per pass of the estimate (speed and memory only; "
                   "default: sized by the model and device)")  # fmt: skip
    p.add_argument("--dataset", choices=["mnist", "mnist-sample"], default=NLL.dataset,
                   help="mnist (default) or the bundled mnist-sample, for a trial")  # fmt: skip
    p.add_argument("--out", metavar="DIR", help="results folder (default: bench/nll-MODEL)")
    add_data_dir(p)
    add_device(p)
    add_fast_paths(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_nll)


def add_split_mnist(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "split-mnist",
        help="class-incremental Split-MNIST accuracy beside the published table",
        description="Learn MNIST two digits at a time, (0,1) to (8,9), with one 10-way "
        "classifier (van de Ven and Tolias 2019: 784-400-400-10 MLP, Adam, 2000 batches of "
        "128 per task) and report the accuracy on all ten digits after the last task, mean "
        "and standard error over seeds, beside the published rows. Finished tasks are kept "
        "in --out and not retrained.",
    )
    p.add_argument("--strategy", default="all", metavar="NAMES",
                   help="comma-separated strategies, or all (default): none, offline, "
                   "replay, dgr, dgr-distill, cvae-replay, cvae-distill, "
                   "generative-classifier")  # fmt: skip
    p.add_argument("--seeds", type=positive_int, default=5, metavar="N",
                   help="seeds 0..N-1 per strategy (5)")  # fmt: skip
    p.add_argument("--iterations", type=positive_int, metavar="N",
                   help="batches per task (the protocol's 2000)")  # fmt: skip
    p.add_argument("--class-iterations", type=positive_int, metavar="N",
                   help="batches per digit of the generative classifier (1000)")  # fmt: skip
    p.add_argument("--importance-samples", type=positive_int, metavar="K",
                   help="samples of the generative classifier's likelihood bound (50)")  # fmt: skip
    p.add_argument("--replay-size", type=positive_int, metavar="N",
                   help="real images the replay strategy keeps (1000)")  # fmt: skip
    p.add_argument("--train-size", type=positive_int, metavar="N",
                   help="train on the first N images of each digit (default: all)")  # fmt: skip
    p.add_argument("--dataset", choices=["mnist", "mnist-sample"], default="mnist",
                   help="mnist (default) or the bundled mnist-sample")  # fmt: skip
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                   help="(strategy, seed) runs at once on each machine (1)")  # fmt: skip
    add_executor(p)
    p.add_argument("--out", metavar="DIR", help="results folder (default: bench/split-mnist)")
    add_data_dir(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_split_mnist)


def run_oneclass(args: argparse.Namespace) -> None:
    from vaelab.bench import OneClassConfig, run_oneclass
    from vaelab.recipes import default_recipe, get_recipe
    from vaelab.scores import check_samples_drawn

    recipe = get_recipe(args.recipe or default_recipe(args.dataset))
    check_samples_drawn(args.score or recipe.score, args.samples)
    train = recipe_training(args, recipe.train)
    config = OneClassConfig(
        dataset=args.dataset,
        classes=args.classes,
        seeds=args.seeds,
        model=model_config(args, recipe.model),
        train=train,
        score=args.score or recipe.score,
        samples=args.samples or recipe.samples,
        train_size=args.train_size,
        data_dir=args.data_dir,
    )
    out = args.out or f"bench/oneclass-{args.dataset}"
    results = run_oneclass(
        config,
        out,
        jobs=args.jobs,
        executor=args.executor,
        ray_address=args.ray_address,
        progress=not args.quiet,
    )
    print((Path(out) / "table.md").read_text())
    print(f"mean AUROC {results['mean_auroc']:.4f}; results in {out}/results.json")


SPLIT_OPTIONS = (
    "iterations",
    "class_iterations",
    "importance_samples",
    "replay_size",
    "train_size",
)


def run_split_mnist(args: argparse.Namespace) -> None:
    from vaelab.continual.split import STRATEGIES, SplitConfig
    from vaelab.continual.split_bench import run_split_mnist

    given = {k: getattr(args, k) for k in SPLIT_OPTIONS if getattr(args, k) is not None}
    config = SplitConfig(dataset=args.dataset, data_dir=args.data_dir, **given)
    strategies = list(STRATEGIES) if args.strategy == "all" else args.strategy.split(",")
    out = args.out or "bench/split-mnist"
    run_split_mnist(
        config,
        out,
        strategies,
        seeds=args.seeds,
        jobs=args.jobs,
        executor=args.executor,
        ray_address=args.ray_address,
        progress=not args.quiet,
    )
    print((Path(out) / "table.md").read_text())
    print(f"results in {out}/results.json; figures in {out}/accuracy_matrix.png")


def run_nll(args: argparse.Namespace) -> None:
    import dataclasses

    from vaelab.config import ObjectiveConfig
    from vaelab.nll_bench import run_nll

    train = dataclasses.replace(
        recipe_training(args, NLL.train),
        lr_milestones=args.lr_milestones or NLL.train.lr_milestones,
        lr_decay=NLL.train.lr_decay if args.lr_decay is None else args.lr_decay,
    )
    model = model_config(args, NLL.model)
    if args.train_samples:
        bound = ObjectiveConfig("iwae", samples=args.train_samples)
        model = dataclasses.replace(model, objective=bound)
    config = NllConfig(
        model=model,
        train=train,
        iw_samples=args.iw_samples,
        seeds=args.seeds,
        dataset=args.dataset,
        train_size=args.train_size,
        test_images=args.test_images,
        batch=args.batch,
        data_dir=args.data_dir,
    )
    out = args.out or f"bench/nll-{config.model.name}"
    results = run_nll(
        config,
        out,
        jobs=args.jobs,
        executor=args.executor,
        ray_address=args.ray_address,
        progress=not args.quiet,
    )
    print((Path(out) / "table.md").read_text())
    print(f"-log p(x) {results['nll_mean']:.2f} nats; results in {out}/results.json")
