"""`vaelab demo`: the article end to end, into one folder with an HTML report."""

from __future__ import annotations

import argparse

from vaelab.cli.options import add_data_dir, add_device


def add_to(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="reproduce the article: every model, figure and GIF, an HTML report",
        description="Train the article's autoencoder, its 2-D VAE and a VAE on sevens alone, "
        "draw every figure and write DIR/report.html. By default on the bundled MNIST sample "
        "with shortened schedules (a few minutes on a laptop CPU); --full uses full MNIST and "
        "the article's schedules.",
    )
    p.add_argument(
        "--out", default="vaelab-demo", metavar="DIR", help="folder to write (default: vaelab-demo)"
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="full MNIST (fetched if missing) and the article's schedules: AE 10 epochs on "
        "1,000 images, the same AE with Adam 2 epochs on 60,000, VAE 100 epochs on 60,000, "
        "7-only VAE 100 epochs (about 27 minutes on 2 CPU cores)",
    )
    add_data_dir(p)
    add_device(p)
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> None:
    import time

    from vaelab.demo import demo
    from vaelab.wording import duration

    started = time.perf_counter()
    report = demo(
        args.out,
        full=args.full,
        data_dir=args.data_dir,
        progress=not args.quiet,
        seed=args.seed,
        device=args.device or "auto",
    )
    took = duration(time.perf_counter() - started)
    print(f"wrote {report} and its figures in {took}; open it in a browser")
