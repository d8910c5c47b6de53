"""Options shared by several commands, so they read the same everywhere."""

from __future__ import annotations

import argparse


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


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


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
