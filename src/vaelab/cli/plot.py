"""`vaelab plot RUN KIND`: one figure of a trained run."""

from __future__ import annotations

import argparse

from vaelab.cli.options import add_data_dir, positive_int
from vaelab.errors import SettingError

KINDS = ("reconstructions", "scatter", "manifold", "interpolate", "loss", "samples", "traverse")
FLAGS = {"limit": "range", "start": "from", "end": "to"}
"""The `plot()` parameters whose flag reads differently, so errors name the flag typed."""


def add_to(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "plot",
        help="draw a figure of a trained run",
        description="Draw one figure of a run, by default into RUN/figures/. Latent spaces "
        "beyond two dimensions are shown by PCA (scatter) or by varying two dimensions with "
        "the others at 0 (manifold).",
    )
    p.add_argument("run_dir", metavar="RUN", help="run folder")
    p.add_argument("kind", choices=KINDS, metavar="KIND", help=" | ".join(KINDS))
    p.add_argument(
        "--out",
        metavar="FILE",
        help="file to write (default: in RUN/figures/): .png, .pdf, .svg, .jpg, .eps and other "
        "matplotlib formats, or for interpolate .gif, .png (animated) or .webp; a name without "
        "suffix gets the kind's own (.png, interpolate .gif), a folder the kind's default name",
    )
    p.add_argument(
        "--size",
        type=positive_int,
        metavar="N",
        help="grid of N x N (manifold, samples), or N values a row (traverse); N at most 100 (15)",
    )
    p.add_argument(
        "--range",
        type=float,
        dest="limit",
        metavar="R",
        help="manifold and traverse over z in [-R, R], R positive and finite; a 2-D VAE's "
        "scatter spans at least that (3)",
    )
    p.add_argument(
        "--dims",
        type=int,
        nargs=2,
        metavar=("I", "J"),
        help="the two latent dimensions a manifold varies (0 1)",
    )
    p.add_argument("--steps", type=positive_int, metavar="N", help="walk steps, 2 to 1000 (8)")
    p.add_argument(
        "--from",
        type=float,
        nargs="+",
        dest="start",
        metavar="Z",
        help="walk start, one number per latent dimension (2-D default: -0.7 -3)",
    )
    p.add_argument(
        "--to",
        type=float,
        nargs="+",
        dest="end",
        metavar="Z",
        help="walk end (2-D default: -0.7 2)",
    )
    p.add_argument(
        "--images",
        type=int,
        nargs=2,
        metavar=("I", "J"),
        help="walk between the codes of test images I and J instead",
    )
    p.add_argument(
        "--image",
        type=int,
        metavar="I",
        help="traverse from the code of test image I (default: z = 0, the prior's mean)",
    )
    p.add_argument(
        "--count",
        type=positive_int,
        metavar="N",
        help="test images to reconstruct (one per class first), or latent dimensions to "
        "traverse (the most used first); at most 100 (10)",
    )
    p.add_argument("--seed", type=int, help="seed for samples (0)")
    p.add_argument(
        "--label",
        type=int,
        metavar="C",
        help="the class a conditional model (cvae) draws in samples, manifold, interpolate "
        "and traverse",
    )
    add_data_dir(p)
    p.set_defaults(run=run_plot)


def run_plot(args: argparse.Namespace) -> None:
    from vaelab.plotting import plot

    try:
        path = plot(
            args.run_dir,
            args.kind,
            args.out,
            size=args.size,
            limit=args.limit,
            dims=tuple(args.dims) if args.dims else None,
            steps=args.steps,
            start=args.start,
            end=args.end,
            images=tuple(args.images) if args.images else None,
            image=args.image,
            count=args.count,
            seed=args.seed,
            label=args.label,
            data_dir=args.data_dir,
        )
    except SettingError as err:
        raise err.renamed(FLAGS) from None
    print(f"wrote {path}")
