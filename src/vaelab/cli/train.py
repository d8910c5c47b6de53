"""`vaelab train` and `vaelab eval`."""

from __future__ import annotations

import argparse
import json
from operator import attrgetter

from vaelab.cli.options import (
    add_data_dir,
    add_device,
    add_fast_paths,
    add_lr_schedule,
    class_list,
    positive_int,
)
from vaelab.wording import count


def add_to(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model into a run folder",
        description="Train a model; the run folder gets its config, "
        "weights, checkpoint and per-epoch metrics. Started by torchrun "
        "(torchrun --nproc-per-node N -m vaelab train ...), N processes train "
        "the model together with DistributedDataParallel.",
    )
    p.add_argument(
        "model", help="model preset, e.g. ae, vae, vq-vae, resnet-vae (`vaelab models` lists them)"
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="mnist, fashion-mnist, kmnist, mnist-sample, a folder of class "
        "subfolders or an .npz with x and y (default: mnist-sample)",
    )
    add_data_dir(p)
    p.add_argument("--classes", type=class_list, help="train on these classes only, e.g. 7")
    p.add_argument(
        "--train-size", type=positive_int, metavar="N", help="train on N of the training images"
    )
    p.add_argument(
        "--subset",
        choices=["first", "stratified"],
        help="which --train-size N images: the first in file order, as the article does "
        "(default), or balanced over the classes",
    )
    p.add_argument(
        "--validation",
        type=validation_split,
        metavar="test|FRACTION",
        help="validate on the test split of the same classes (default) or hold out a fraction",
    )
    p.add_argument("--image-size", type=positive_int, metavar="PX", help="resize images to PX x PX")
    p.add_argument(
        "--binarize",
        choices=["none", "dynamic"],
        help="none: grey levels (default); dynamic: the log-likelihood protocol, each training "
        "image re-drawn as Bernoulli(intensity) every epoch, the test images binarised once",
    )
    p.add_argument(
        "--latent-dim", type=positive_int, metavar="N", help="latent size (the model's own)"
    )
    p.add_argument(
        "--codebook-size", type=positive_int, metavar="K", help="a VQ-VAE's codebook vectors (512)"
    )
    add_objective_options(p)
    p.add_argument(
        "--epochs",
        type=positive_int,
        metavar="N",
        help="epochs (10). Too few leave a model that draws every image alike: on the "
        "bundled sample the AE draws digits after about 10 epochs with Adam, and the VAE "
        "trained on sevens alone needs about 50 for a useful anomaly score (AUROC 0.96; 0.63 "
        "after 5)",
    )
    p.add_argument("--batch-size", type=positive_int, metavar="N", help="batch size (128)")
    p.add_argument("--optimizer", choices=["adam", "adadelta"], help="optimiser (adam)")
    p.add_argument("--lr", type=float, help="learning rate (adam 1e-3, adadelta 1.0)")
    add_lr_schedule(p)
    p.add_argument("--seed", type=int, help="random seed (0)")
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="torch threads (default: the cores no other process is using when "
                   "the run starts; the count is saved, and the same count repeats a run "
                   "exactly)")  # fmt: skip
    add_device(p)
    add_fast_paths(p)
    p.add_argument("--out", required=True, metavar="DIR", help="run folder to write")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint (only --epochs, --device, "
        "--threads, --precision, --compile, --data-dir, the number of processes and the "
        "learning rate of epochs not yet begun may change)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run_train)

    p = subparsers.add_parser(
        "eval",
        help="test loss of a trained run, or its -log p(x) with --nll",
        description="Print a run's mean test loss and its parts as JSON; with --nll, its "
        "K-sample importance-weighted estimate of -log p(x) in nats per test image (mean and "
        "standard error over the images), on the test set binarised as the run was trained.",
    )
    p.add_argument("run_dir", metavar="RUN", help="run folder")
    add_data_dir(p)
    add_nll_options(p)
    p.set_defaults(run=run_eval)


def add_nll_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nll", action="store_true", help="estimate -log p(x) instead (a VAE)")
    p.add_argument("--iw-samples", type=positive_int, metavar="K",
                   help="importance samples per image (5000, the literature's)")  # fmt: skip
    p.add_argument("--batch", type=positive_int, metavar="N",
                   help="images per pass; the estimate does not depend on it "
                   "(default: about 1,000 decoded samples a pass on a CPU, fewer for a "
                   "pixelcnn; 10,000 on a GPU)")  # fmt: skip
    p.add_argument("--seed", type=int, help="seed of the posterior samples (0)")
    p.add_argument("--test-images", type=positive_int, metavar="N",
                   help="only the first N test images (default: all)")  # fmt: skip
    add_device(p)


def add_objective_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--beta", type=float, help="KL weight of the elbo objective (the model's)")
    p.add_argument(
        "--warmup-steps",
        type=int,
        metavar="N",
        help="raise the KL weight linearly to --beta over the first N optimiser steps",
    )
    p.add_argument(
        "--capacity",
        type=float,
        metavar="NATS",
        help="KL capacity target C (Burgess et al. 2018): the KL term becomes beta |KL - C|",
    )
    p.add_argument(
        "--capacity-steps", type=int, metavar="N", help="grow C from 0 to --capacity over N steps"
    )
    p.add_argument(
        "--iw-samples", type=positive_int, metavar="K", help="samples K of the iwae objective"
    )
    p.add_argument(
        "--likelihood",
        choices=["bernoulli", "gaussian", "pixelcnn"],
        help="p(x|z): bernoulli for nearly binary images, gaussian otherwise, pixelcnn "
        "(autoregressive) for binary ones (the model's)",
    )


# fmt: off
SETTINGS = {
    "data": [
        "dataset", "data_dir", "classes", "train_size", "subset", "validation", "image_size",
        "binarize",
    ],
    "model": ["latent_dim", "codebook_size"],
    "model.objective": ["beta", "warmup_steps", "capacity", "capacity_steps"],
    "train": [
        "epochs", "batch_size", "optimizer", "lr", "lr_milestones", "lr_decay", "seed", "device",
        "threads", "precision", "compile",
    ],
}
# fmt: on
"""Config fields each section takes from the command line (options of the same name)."""
RENAMED = {("model.objective", "samples"): "iw_samples", ("model.likelihood", "name"): "likelihood"}
"""Config fields whose option has another name."""


def validation_split(text: str) -> str | float:
    if text == "test":
        return text
    try:
        fraction = float(text)
    except ValueError:
        fraction = -1.0
    if not 0 < fraction < 1:
        raise argparse.ArgumentTypeError(f"expected 'test' or a fraction such as 0.1, got {text!r}")
    return fraction


def run_train(args: argparse.Namespace) -> None:
    from vaelab.config import ModelConfig, RunConfig
    from vaelab.distributed import is_main_process
    from vaelab.errors import SettingError, VaelabError
    from vaelab.run import Run
    from vaelab.train import fit

    config = Run(args.out).config if args.resume else RunConfig()
    if not args.resume:
        config.model = ModelConfig(args.model).resolved()
    elif args.model != config.model.name:
        raise VaelabError(
            f"{args.out} holds a {config.model.name} run, not {args.model}; resume it with "
            f"vaelab train {config.model.name} --out {args.out} --resume"
        )
    options = {(s, f): f for s, fields in SETTINGS.items() for f in fields} | RENAMED
    for (section, field), option in options.items():
        value = getattr(args, option)
        if value is not None:
            setattr(attrgetter(section)(config), field, value)
    try:
        run = fit(config, args.out, resume=args.resume, progress=not args.quiet)
    except SettingError as err:
        raise err.renamed({"samples": "iw_samples"}) from None
    if not is_main_process():  # the main process wrote the run and reports it
        return
    last = run.metrics()[-1] if run.metrics() else {}
    threads = count(run.config.train.threads or 1, "CPU thread")  # a run's numbers hang on it
    print(
        f"trained {config.model.name} for {count(last.get('epoch', 0), 'epoch')} on {threads} "
        f"into {run.path} (val loss {last.get('val_loss', float('nan')):.4f}); see it with: "
        f"vaelab report {run.path} --open"
    )


NLL_OPTIONS = ("iw_samples", "batch", "seed", "test_images", "device")
"""Options of `vaelab eval` that only --nll reads."""


def run_eval(args: argparse.Namespace) -> None:
    from vaelab.errors import SettingError
    from vaelab.run import Run

    run = Run(args.run_dir)
    given = [name for name in NLL_OPTIONS if getattr(args, name) is not None]
    if not args.nll:
        from vaelab.train import evaluate_run

        if given:
            raise SettingError(f"{{{given[0]}}} is read only with {{nll}}", given[0], "nll")
        print(json.dumps(evaluate_run(run, data_dir=args.data_dir), indent=2))
        return
    from vaelab import threads
    from vaelab.devices import resolve_device
    from vaelab.likelihood import DEFAULT_SAMPLES, estimate_nll

    result = estimate_nll(
        run,
        args.iw_samples or DEFAULT_SAMPLES,
        batch=args.batch,
        seed=args.seed or 0,
        data_dir=args.data_dir,
        test_images=args.test_images,
        device=resolve_device(args.device or "auto"),
        threads=threads.choose(),
    )
    print(json.dumps(result, indent=2))
