"""`vaelab detector fit|score|evaluate`: an anomaly detector from a folder of normal images,
the scores of new ones, and how well it tells normal images from anomalous ones."""

from __future__ import annotations

import argparse

from vaelab.cli.anomaly import add_score_options, metrics_line
from vaelab.cli.options import (
    add_device,
    add_model,
    model_config,
    positive_int,
    recipe_training,
)
from vaelab.recipes import DEFAULT_RECIPE, RECIPES


def add_to(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "detector",
        help="train an anomaly detector on your own images, score new ones",
        description="An AnomalyDetector on image files: `fit` trains it on normal images "
        "and sets its threshold, `score` writes every new image's score as CSV, `evaluate` "
        "measures it on images known to be normal or anomalous.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_fit(actions)
    add_score(actions)
    add_evaluate(actions)


def add_fit(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser(
        "fit",
        help="train a detector on normal images",
        description="Train a detector on the normal images in IMAGES (files, or folders "
        "searched for images), holding out --holdout of them to set the threshold that flags "
        "--fpr of normal images; save it to --out (a run folder and detector.json, for "
        "`vaelab detector score`, `vaelab export` and AnomalyDetector.load).",
    )
    p.add_argument("images", nargs="+", metavar="IMAGES", help="image files or folders")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to save the detector in")
    p.add_argument("--recipe", choices=list(RECIPES), metavar="NAME",
                   help=f"model, training and score ({DEFAULT_RECIPE}; one of "
                   f"{', '.join(RECIPES)}); the options below change one part of it")  # fmt: skip
    add_model(p, "the recipe's")
    p.add_argument("--epochs", type=positive_int, metavar="N", help="epochs (the recipe's)")
    p.add_argument("--batch-size", type=positive_int, metavar="N",
                   help="batch size (the recipe's)")  # fmt: skip
    add_score_options(p, None)
    p.add_argument("--image-size", type=positive_int, default=28, metavar="PX",
                   help="resize every image to PX x PX (28, the conv models' size)")  # fmt: skip
    p.add_argument("--fpr", type=float, default=0.05, metavar="F",
                   help="share of normal images the threshold flags (0.05)")  # fmt: skip
    p.add_argument("--holdout", type=float, default=0.1, metavar="F",
                   help="share of the images held out to set the threshold (0.1)")  # fmt: skip
    p.add_argument("--seed", type=int, metavar="N", help="seed of the weights and the holdout (0)")
    add_device(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_fit)


def add_score(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser(
        "score",
        help="score images with a saved detector, as CSV",
        description="Score every image in IMAGES (files, or folders searched for images) "
        "with the detector saved in DETECTOR, each resized to the detector's size: print "
        "`file,score,anomaly` lines (higher score = more anomalous; anomaly is 1 above the "
        "detector's threshold), or write them to --csv.",
    )
    p.add_argument("detector", metavar="DETECTOR", help="folder of a saved detector")
    p.add_argument("images", nargs="+", metavar="IMAGES", help="image files or folders")
    p.add_argument("--csv", metavar="FILE", help="write the scores here (default: print them)")
    p.add_argument("--maps", metavar="PNG",
                   help="also draw the --top highest-scoring images, their reconstructions and "
                   "the pixels they fail on, into this PNG")  # fmt: skip
    p.add_argument("--top", type=positive_int, default=10, metavar="N",
                   help="images in --maps (10)")  # fmt: skip
    p.set_defaults(run=run_score)


def add_evaluate(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser(
        "evaluate",
        help="measure a saved detector on labelled images: AUROC, what its threshold flags",
        description="Score images known to be normal (--normal) and anomalous (--anomalous) "
        "with the detector saved in DETECTOR: print AUROC, AUPR and FPR at 95% TPR over all "
        "anomalies and for each --anomalous path alone (a folder per kind of defect, say), "
        "and the share of each that the detector's threshold flags. --out also writes "
        "metrics.json, scores.csv and the figures and page of `vaelab anomaly` there.",
    )
    p.add_argument("detector", metavar="DETECTOR", help="folder of a saved detector")
    p.add_argument("--normal", nargs="+", required=True, metavar="PATH",
                   help="image files or folders of normal images")  # fmt: skip
    p.add_argument("--anomalous", nargs="+", required=True, metavar="PATH",
                   help="image files or folders of anomalous images (each also measured "
                   "alone)")  # fmt: skip
    p.add_argument("--out", metavar="DIR",
                   help="write metrics.json, scores.csv, figures and report.html here")  # fmt: skip
    p.set_defaults(run=run_evaluate)


def run_fit(args: argparse.Namespace) -> None:
    from vaelab.anomaly import AnomalyDetector
    from vaelab.recipes import get_recipe
    from vaelab.scores import check_samples_drawn

    recipe = get_recipe(args.recipe or DEFAULT_RECIPE)
    check_samples_drawn(args.score or recipe.score, args.samples)
    train = recipe_training(args, recipe.train)
    detector = AnomalyDetector(
        model=model_config(args, recipe.model),
        train=train,
        score=args.score or recipe.score,
        samples=args.samples or recipe.samples,
        fpr=args.fpr,
        holdout=args.holdout,
        progress=not args.quiet,
        recipe=args.recipe or DEFAULT_RECIPE,
    )
    detector.fit_files(args.images, args.image_size, out=args.out)
    print(
        f"score {detector.score_name()}, threshold {detector.threshold_:.6g} (flags "
        f"{detector.held_out_flagged_:.1%} of the held-out normal images, --fpr "
        f"{args.fpr:.1%}); detector saved to {args.out}"
    )


def run_score(args: argparse.Namespace) -> None:
    import contextlib
    import csv
    import sys
    from pathlib import Path

    from vaelab.anomaly import AnomalyDetector, maps_file, score_text
    from vaelab.wording import count

    maps = maps_file(args.maps, "maps") if args.maps else None  # refused before any work
    if args.csv:
        check_csv_file(args.csv)
    for file in (args.csv, maps):  # a folder that cannot be made fails now, not after scoring
        if file:
            Path(file).parent.mkdir(parents=True, exist_ok=True)
    detector = AnomalyDetector.load(args.detector)
    images, files = detector.read_files(args.images)
    scores = detector.score_samples(images)
    flags = scores > detector.threshold_
    with open(args.csv, "w", newline="") if args.csv else contextlib.nullcontext(sys.stdout) as out:
        table = csv.writer(out)
        table.writerow(["file", "score", "anomaly"])
        table.writerows(
            (str(f), score_text(s), int(a)) for f, s, a in zip(files, scores, flags, strict=True)
        )
    if maps:
        names = [file.name for file in files]
        detector.draw_most_anomalous(images, scores, names, maps, args.top)
    saved = [("scores", args.csv), ("maps", maps)]
    where = "".join(f"; {what} in {file}" for what, file in saved if file)
    print(
        f"{int(flags.sum())} of {count(len(files), 'image')} score above the threshold "
        f"{detector.threshold_:.6g} (anomalies){where}",
        file=sys.stderr,
    )


def check_csv_file(path: str) -> None:
    """--csv replaces the file it names, so it must name a CSV file: never an image (one of
    the inputs, say), a script or a folder."""
    from pathlib import Path

    from vaelab.errors import VaelabError

    if Path(path).suffix.lower() != ".csv" or Path(path).is_dir():
        raise VaelabError(
            f"--csv {path} is not a .csv file name: the scores replace what the file holds, "
            "so name a file ending in .csv"
        )


def run_evaluate(args: argparse.Namespace) -> None:
    import sys

    from vaelab.anomaly import AnomalyDetector
    from vaelab.wording import count

    detector = AnomalyDetector.load(args.detector)
    report = detector.evaluate_files(args.normal, args.anomalous, args.out)
    summary = report.to_dict()
    print(
        f"{count(summary['n_normal'], 'normal image')} and {summary['n_anomalous']:,} "
        f"anomalous, score {report.score}: {metrics_line(summary)}"
    )
    print(
        f"the threshold {report.threshold:.6g} flags {summary['normal_flagged']:.1%} of the "
        f"normal images and catches {summary['anomalies_caught']:.1%} of the anomalies"
    )
    for source, metrics in summary["per_source"].items():
        print(
            f"  {source}: {count(metrics['images'], 'image')}, AUROC {metrics['auroc']:.4f}, "
            f"caught {metrics['caught']:.1%}"
        )
    if args.out:
        print(f"wrote metrics.json, scores.csv, figures and report.html to {args.out}")
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
