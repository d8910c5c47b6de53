"""`vaelab models`: the model presets, what each is for and its size on MNIST."""

from __future__ import annotations

import argparse


def add_to(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "models",
        help="list the model presets",
        description="List the model presets (usable wherever a model name is taken) and "
        "the models registered in this process, with their parameter count on 28x28 "
        "grey images (MNIST).",
    )
    p.set_defaults(run=run_models)


def run_models(args: argparse.Namespace) -> None:
    from vaelab.models import describe_models

    rows = describe_models()
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        print(f"{row['name']:<{width}}  {row['parameters']:>9,}  {row['summary']}")
