"""Options shared by several commands, so they read the same everywhere."""

from __future__ import annotations

import argparse
import difflib
import shlex
from argparse import Namespace
from collections.abc import Iterator, Sequence
from typing import Any


def class_list(text: str) -> list[int]:
    """Parse `7`, `0,1,2` or `0-9` into a list of class indices."""
    classes: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                low, high = part.split("-")
                classes.extend(range(int(low), int(high) + 1))
            else:
                classes.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a class list; write e.g. 7, 0,1,2 or 0-9"
        ) from None
    return classes


def nonempty(text: str) -> str:
    """A value taken as typed, but never an empty one: `--out "$DIR"` with DIR unset would
    otherwise mean the current folder, and write a run among the user's files."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty (an unset shell variable?); give it a value")
    return text


def every_parser(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """`parser` and the parsers of all its subcommands, however deep."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                yield from every_parser(subparser)


def refuse_empty_values(parser: argparse.ArgumentParser) -> None:
    """Give `nonempty` to every argument of `parser` and its subcommands that takes text
    as typed, so that no path, name or address can be left blank by mistake."""
    for each in every_parser(parser):
        for action in each._actions:
            if action.nargs != 0 and action.type is None and not action.choices:
                action.type = nonempty


def parse_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> Namespace:
    """`parser.parse_args`, but an argument no command takes is refused by the command it
    was given to, with its usage and the option it may have meant: argparse itself
    answers with the top-level usage, which lists no option of the command."""
    for each in every_parser(parser):
        each.set_defaults(command_parser=each)  # the deepest command's default wins
    args, extras = parser.parse_known_args(argv)
    if extras:
        command: argparse.ArgumentParser = args.command_parser
        options = [name for action in command._actions for name in action.option_strings]
        names = {option.lstrip("-"): option for option in options}
        typed = extras[0].partition("=")[0].lstrip("-") if extras[0].startswith("-") else ""
        guesses = difflib.get_close_matches(typed, names, n=1, cutoff=0.7) if typed else []
        meant = f"; did you mean {names[guesses[0]]}?" if guesses else ""
        command.error(f"unrecognized arguments: {shlex.join(extras)}{meant}")
    return args


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def epoch_list(text: str) -> list[int]:
    """Parse `800,900` into a list of epochs."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of epochs; write e.g. 800,900"
        ) from None


def add_lr_schedule(parser: argparse.ArgumentParser) -> None:
    """`--lr-milestones E,E,...` and `--lr-decay F`: a staged learning-rate schedule."""
    parser.add_argument(
        "--lr-milestones", type=epoch_list, metavar="E,E,...",
        help="multiply the learning rate by --lr-decay after each of these epochs (none; the "
        "IWAE paper's stages of 3^i epochs end at 1,4,13,40,121,364,1093); a resumed run may "
        "change the rate of the epochs it has not begun",
    )  # fmt: skip
    parser.add_argument(
        "--lr-decay",
        type=float,
        metavar="F",
        help="factor of each of --lr-milestones, which it needs (0.1; the IWAE paper's "
        "10^(-1/7) = 0.72)",
    )


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder holding <dataset>/ folders (default: $VAELAB_DATA_DIR, then the user cache)",
    )


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda", "mps"],
        default=None,
        help="where to compute (default: auto)",
    )


def add_fast_paths(parser: argparse.ArgumentParser) -> None:
    """`--precision` and `--compile`: the training step's optional fast paths."""
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        help="fp32 (default), or bf16: the training forward pass under bfloat16 autocast, on "
        "cpu or cuda; weights, optimiser and evaluation stay fp32 (docs/speed.md)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="compile the training step with torch.compile (CUDA graphs on a GPU); about 40 s "
        "of compiling first, and no faster than eager on a CPU (docs/speed.md)",
    )


def add_executor(parser: argparse.ArgumentParser) -> None:
    """`--executor NAME` and `--ray-address ADDR`: where the benchmark's trainings run."""
    from vaelab.executors import EXECUTORS

    places = "; ".join(f"{name}: {entry.summary}" for name, entry in EXECUTORS.items())
    parser.add_argument(
        "--executor",
        choices=list(EXECUTORS),
        default="local",
        help=f"where the trainings run (local). {places}",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="the Ray cluster of --executor ray, e.g. 10.0.0.5:6379; its workers must reach "
        "--out (default: $RAY_ADDRESS, a cluster `ray start` began here, else a local one)",
    )


def add_model(parser: argparse.ArgumentParser, default: str) -> None:
    """`--model NAME` and `--latent-dim N`; without them the command's own default model."""
    parser.add_argument(
        "--model",
        metavar="NAME",
        help=f"model preset or registered model ({default}; `vaelab models` lists them)",
    )
    parser.add_argument(
        "--latent-dim", type=positive_int, metavar="N", help="latent size (the model's own)"
    )


TRAIN_FLAGS = ("epochs", "batch_size", "seed", "device", "precision", "compile")
"""Flags that change one field of a recipe's `TrainConfig`, where a command has them."""


def recipe_training(args: argparse.Namespace, train: Any) -> Any:
    """`train` (a recipe's `TrainConfig`) with the `TRAIN_FLAGS` the command has and the
    user gave."""
    import dataclasses

    given = {name: getattr(args, name, None) for name in TRAIN_FLAGS}
    return dataclasses.replace(train, **{k: v for k, v in given.items() if v is not None})


def model_config(args: argparse.Namespace, default: Any) -> Any:
    """The `ModelConfig` that `--model` and `--latent-dim` ask for, else `default`."""
    from vaelab.config import ModelConfig

    if args.model is None and args.latent_dim is None:
        return default
    name = args.model or default.name
    latent = args.latent_dim or (default.latent_dim if name == default.name else None)
    return ModelConfig(name, latent_dim=latent)
