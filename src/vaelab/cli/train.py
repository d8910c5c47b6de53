"""`vaelab train` and `vaelab eval`."""

from __future__ import annotations

import argparse
import json

from vaelab.cli.options import add_data_dir, add_device, class_list, positive_int


def add_to(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model into a run folder",
        description="Train a model; the run folder gets its config, "
        "weights, checkpoint and per-epoch metrics.",
    )
    p.add_argument("model", help="model name: ae or vae")
    p.add_argument(
        "--dataset",
        default=None,
        help="mnist, fashion-mnist, kmnist, mnist-sample, a folder of class "
        "subfolders or an .npz with x and y (default: mnist-sample)",
    )
    add_data_dir(p)
    p.add_argument("--classes", type=class_list, help="train on these classes only, e.g. 7")
    p.add_argument(
        "--train-size", type=positive_int, metavar="N", help="use the first N training images"
    )
    p.add_argument("--latent-dim", type=positive_int, metavar="N", help="VAE latent size (2)")
    p.add_argument("--epochs", type=positive_int, metavar="N", help="epochs (10)")
    p.add_argument("--batch-size", type=positive_int, metavar="N", help="batch size (128)")
    p.add_argument("--optimizer", choices=["adam", "adadelta"], help="optimiser (adam)")
    p.add_argument("--lr", type=float, help="learning rate (adam 1e-3, adadelta 1.0)")
    p.add_argument("--seed", type=int, help="random seed (0)")
    add_device(p)
    p.add_argument("--out", required=True, metavar="DIR", help="run folder to write")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint (only --epochs and "
        "--device may change)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run_train)

    p = subparsers.add_parser(
        "eval",
        help="test loss of a trained run",
        description="Print a run's mean test loss and its parts as JSON.",
    )
    p.add_argument("run_dir", metavar="RUN", help="run folder")
    add_data_dir(p)
    p.set_defaults(run=run_eval)


SETTINGS = {
    "data": {
        "dataset": "dataset",
        "data_dir": "data_dir",
        "classes": "classes",
        "train_size": "train_size",
    },
    "model": {"latent_dim": "latent_dim"},
    "train": {
        "epochs": "epochs",
        "batch_size": "batch_size",
        "optimizer": "optimizer",
        "lr": "lr",
        "seed": "seed",
        "device": "device",
    },
}


def run_train(args: argparse.Namespace) -> None:
    from vaelab.config import RunConfig
    from vaelab.run import Run
    from vaelab.train import fit

    config = Run(args.out).config if args.resume else RunConfig()
    if not args.resume:
        config.model.name = args.model
    for section, options in SETTINGS.items():
        for field, option in options.items():
            value = getattr(args, option)
            if value is not None:
                setattr(getattr(config, section), field, value)
    run = fit(config, args.out, resume=args.resume, progress=not args.quiet)
    last = run.metrics()[-1] if run.metrics() else {}
    print(
        f"trained {config.model.name} for {last.get('epoch', 0)} epochs into {run.path}"
        f" (val loss {last.get('val_loss', float('nan')):.4f})"
    )


def run_eval(args: argparse.Namespace) -> None:
    from vaelab.run import Run
    from vaelab.train import evaluate_run

    print(json.dumps(evaluate_run(Run(args.run_dir), data_dir=args.data_dir), indent=2))
