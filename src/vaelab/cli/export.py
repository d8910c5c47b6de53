"""`vaelab export`: a run's encoder, decoder and anomaly score as ONNX, checked against PyTorch."""

from __future__ import annotations

import argparse

from vaelab.cli.anomaly import SCORE_NAMES
from vaelab.cli.options import add_data_dir, class_list


def add_to(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="ONNX encoder, decoder and detector score, checked against PyTorch",
        description="Write a run's encoder and decoder (and the anomaly score of a saved "
        "AnomalyDetector, or of --score) as ONNX files with card.json, which says what each "
        "graph takes and returns; then run them with onnxruntime on every test image of the "
        "run's dataset and print the largest absolute difference from PyTorch per graph. "
        "Needs the onnx extra: pip install 'vaelab[onnx]'.",
    )
    p.add_argument("run_dir", metavar="RUN", help="run folder, or a saved AnomalyDetector")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUN/onnx)")
    p.add_argument(
        "--score",
        metavar="NAME",
        help=f"also export this anomaly score ({', '.join(SCORE_NAMES)} or one you registered; "
        "a detector exports its own); elbo and iwae sample and cannot be exported",
    )
    checked_on = p.add_mutually_exclusive_group()
    checked_on.add_argument(
        "--dataset",
        metavar="NAME|PATH",
        help="test images to check on (default: the run's dataset; a detector names none)",
    )
    checked_on.add_argument(
        "--images",
        nargs="+",
        metavar="PATH",
        help="or unlabelled image files and folders to check on, read at the run's image size "
        "(no AUROC: a detector's decisions are compared)",
    )
    add_data_dir(p)
    p.add_argument(
        "--normal", type=class_list, help="normal classes for the AUROC check (default: the run's)"
    )
    p.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> None:
    from pathlib import Path

    from vaelab.export import (
        FOLDER,
        check_export,
        export_run,
        image_files_set,
        require_onnx,
        test_set,
    )

    require_onnx()
    # refused before any export
    if args.images:
        test = image_files_set(args.run_dir, args.images, normal=args.normal)
    else:
        test = test_set(
            args.run_dir, args.dataset, args.data_dir, normal=args.normal, score=args.score
        )
    card = export_run(args.run_dir, args.out, score=args.score)
    out = Path(args.out) if args.out else Path(args.run_dir) / FOLDER
    files = [entry["file"] for entry in card["graphs"].values()]
    print(f"wrote {', '.join(files)} and card.json (opset {card['opset']}) to {out}")
    check = check_export(args.run_dir, args.out, test=test, normal=args.normal)
    print(
        f"onnxruntime against PyTorch on the {check.images} test images of {check.dataset}, "
        "largest absolute difference:"
    )
    for name, difference in check.max_abs_diff.items():
        outputs = [output["name"] for output in card["graphs"][name]["outputs"]]
        shown = card["score"]["name"] if name == "score" else ", ".join(outputs)
        print(f"  {name:<8} {difference:.2e}  ({shown})")
    if check.auroc is not None:
        in_torch, in_onnx = check.auroc
        print(
            f"{card['score']['name']} AUROC, normal classes {check.normal}: {in_torch:.7f} "
            f"with PyTorch, {in_onnx:.7f} with ONNX (difference {abs(in_torch - in_onnx):.1e})"
        )
    if check.decisions_differ is not None:
        threshold = card["score"]["threshold"]
        print(f"threshold {threshold:.6g}: {check.decisions_differ} images decided differently")
