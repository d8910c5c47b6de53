"""`vaelab data list|fetch|verify`."""

from __future__ import annotations

import argparse

from vaelab.cli.options import add_data_dir


def add_to(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "data",
        help="list, download or verify datasets",
        description="Manage the datasets vaelab knows by name.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="known datasets and where their files are")
    add_data_dir(listing)
    listing.set_defaults(run=run_list)
    for name, helptext, func in (
        (
            "fetch",
            "download a dataset's files if they are missing (with --data-dir: into DIR/NAME/, "
            "copied from another copy found, else downloaded)",
            run_fetch,
        ),
        ("verify", "check a dataset's files against their checksums", run_verify),
    ):
        action = actions.add_parser(name, help=helptext, description=helptext)
        action.add_argument("name", help="dataset name, e.g. mnist")
        add_data_dir(action)
        action.set_defaults(run=func)


def run_list(args: argparse.Namespace) -> None:
    from vaelab.data import list_datasets

    for info in list_datasets(args.data_dir):
        where = str(info.location) if info.location else "not found (vaelab data fetch NAME)"
        print(f"{info.name:<14} {info.description}\n{'':<14} {where}")


def run_fetch(args: argparse.Namespace) -> None:
    from vaelab.data import fetch

    print(f"{args.name}: files in {fetch(args.name, args.data_dir)}")


def run_verify(args: argparse.Namespace) -> None:
    from vaelab.data import verify

    for path in verify(args.name, args.data_dir):
        print(f"ok  {path}")
