"""`vaelab report RUN`: every figure of a run, its test numbers and its settings, one page."""

from __future__ import annotations

import argparse

from vaelab.cli.options import add_data_dir


def add_to(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="every figure of a run and its test numbers in one HTML page",
        description="Draw every figure the run's model can draw (loss, reconstructions, the "
        "latent space, each dimension, samples, a walk: the `vaelab plot` kinds with their "
        "defaults) into RUN/figures/, measure its test loss as `vaelab eval` does, and write "
        "them with the run's settings into RUN/report.html, a page that opens with no network.",
    )
    p.add_argument("run_dir", metavar="RUN", help="run folder")
    p.add_argument(
        "--out", metavar="DIR", help="folder for the page and its figures (default: RUN)"
    )
    add_data_dir(p)
    p.add_argument("--open", action="store_true", help="open the page in the web browser")
    p.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> None:
    import webbrowser

    from vaelab.run_report import write_report

    page = write_report(args.run_dir, args.out, args.data_dir)
    print(f"wrote {page}")
    if args.open:
        webbrowser.open(page.resolve().as_uri())
