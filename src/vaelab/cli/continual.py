"""`vaelab continual`: learn digits one after another and measure what the VAE forgets."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from vaelab.cli.options import (
    add_data_dir,
    add_device,
    add_executor,
    add_fast_paths,
    add_model,
    class_list,
    model_config,
    positive_int,
)

if TYPE_CHECKING:
    from vaelab.continual import ContinualConfig

STRATEGY_NAMES = ["naive", "cumulative", "replay", "generative-replay"]
"""The keys of `vaelab.continual.strategies.STRATEGIES`, listed here so that `--help` does not
import torch; `--strategy` also takes the strategies registered by the modules
`VAELAB_PLUGINS` names, so the core checks the name, not argparse."""


def add_to(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "continual",
        help="learn digits one at a time and measure what the VAE forgets",
        description="Train the article's VAE on the first digit of --order, then continue "
        "on each next digit; after every stage measure the test loss of every digit and "
        "the share of each digit among the model's samples. Rerunning into the same --out "
        "skips finished stages.",
    )
    p.add_argument("--dataset", default="mnist", help="mnist or mnist-sample (default: mnist)")
    add_data_dir(p)
    p.add_argument(
        "--order",
        type=class_list,
        default=[7, 0, 1, 2, 3, 4, 5, 6, 8, 9],
        help="digits in the order they are learned (default: 7,0,1,2,3,4,5,6,8,9)",
    )
    p.add_argument(
        "--strategy",
        metavar="NAME",
        default="naive",
        help=f"what the model sees besides the new digit: {', '.join(STRATEGY_NAMES)} or one "
        "you registered (default: naive); several separated by commas, or all, run each and "
        "compare them",
    )
    p.add_argument(
        "--first-stage-epochs",
        type=positive_int,
        metavar="N",
        default=20,
        help="epochs on the first digit, the article's 7-model (20)",
    )
    p.add_argument(
        "--epochs-per-stage",
        type=positive_int,
        metavar="N",
        default=2,
        help="epochs on each later digit (2)",
    )
    p.add_argument(
        "--replay-size",
        type=positive_int,
        metavar="N",
        default=1000,
        help="real past images kept by the replay strategy, in total (1000)",
    )
    add_model(p, "vae, the article's VAE with latent 2")
    p.add_argument(
        "--batch-size", type=positive_int, metavar="N", default=128, help="batch size (128)"
    )
    p.add_argument(
        "--train-size",
        type=positive_int,
        metavar="N",
        help="use only the first N training images of each digit (default: all)",
    )
    p.add_argument(
        "--dream-samples",
        type=positive_int,
        metavar="N",
        default=1000,
        help="prior samples classified after each stage (1000)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    add_device(p)
    add_fast_paths(p)
    p.add_argument(
        "--jobs",
        type=positive_int,
        metavar="N",
        default=1,
        help="strategies (of several --strategy) trained at once on each machine (1)",
    )
    add_executor(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run_continual)


def continual_config(args: argparse.Namespace) -> ContinualConfig:
    from vaelab.config import ModelConfig, TrainConfig
    from vaelab.continual import ContinualConfig

    return ContinualConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        order=args.order,
        strategy=args.strategy,
        first_stage_epochs=args.first_stage_epochs,
        replay_size=args.replay_size,
        model=model_config(args, ModelConfig("vae")),
        train=TrainConfig(
            epochs=args.epochs_per_stage,
            batch_size=args.batch_size,
            seed=args.seed,
            device=args.device or "auto",
            precision=args.precision or "fp32",
            compile=bool(args.compile),
        ),
        dream_samples=args.dream_samples,
        train_size=args.train_size,
    )


def run_continual(args: argparse.Namespace) -> None:
    from vaelab.continual import run_continual
    from vaelab.errors import Interrupted

    config = continual_config(args)
    try:
        metrics = run_continual(
            config,
            args.out,
            jobs=args.jobs,
            executor=args.executor,
            ray_address=args.ray_address,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; the finished stages are saved in {args.out}: "
            "rerun the same command to continue"
        ) from None
    for name in config.strategies:
        summary = metrics["strategies"][name]
        print(f"{name}: average forgetting {summary['avg_forgetting']:.2f} nats")
    print(f"wrote {args.out}")
