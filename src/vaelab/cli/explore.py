"""`vaelab explore RUN`: a live explorer of a run's latent space in the browser."""

from __future__ import annotations

import argparse
import sys

from vaelab.cli.anomaly import add_score_options
from vaelab.cli.options import add_data_dir, positive_int
from vaelab.config import DEFAULT_SCORE

MAX_PORT = 65535


def port_number(text: str) -> int:
    """A TCP port, 0 (any free one) to 65535."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_PORT:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port; choose 1 to {MAX_PORT}, or 0 for any free one"
        )
    return value


def add_to(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "explore",
        help="explore a run's latent space live in the browser",
        description="Serve a local web page that draws the codes of test images (or of "
        "--images, or of --dataset's) over the latent plane (PCA beyond two dimensions), "
        "decodes the point under the mouse, sets a VAE's code one dimension at a time with "
        "sliders, walks between two points or images, and encodes, "
        "reconstructs and scores a digit you draw. A saved AnomalyDetector names no test set: "
        "show it --images or --dataset; it scores with its own score and threshold. Stop with "
        "Ctrl-C.",
    )
    p.add_argument("run_dir", metavar="RUN", help="run folder, or a saved AnomalyDetector")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument(
        "--images",
        nargs="+",
        metavar="PATH",
        help="draw these image files and folders instead of the test images, read at the "
        "run's image size and channels (unlabelled: one colour)",
    )
    shown.add_argument(
        "--dataset",
        metavar="NAME|PATH",
        help="or the test split of this dataset (a name, or a folder of class subfolders)",
    )
    p.add_argument("--port", type=port_number, default=8000, help="port (8000; 0: any free)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (127.0.0.1: this machine only; ::1 for IPv6; 0.0.0.0 exposes "
        "the explorer to your network)",
    )
    p.add_argument(
        "--count",
        type=positive_int,
        default=5000,
        metavar="N",
        help="images drawn on the plane (5000, cycling through the classes)",
    )
    add_score_options(p, DEFAULT_SCORE)
    p.set_defaults(score=None, samples=None)  # the defaults above for a run; a detector's own
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    add_data_dir(p)
    p.set_defaults(run=run_explore)


def run_explore(args: argparse.Namespace) -> None:
    import signal
    import webbrowser

    from vaelab.explore import Explorer, make_server
    from vaelab.explore.address import resolve

    address = resolve(args.host)  # before loading the model, so a bad --host fails at once
    explorer = Explorer.from_run(
        args.run_dir,
        args.count,
        args.data_dir,
        args.score,
        args.samples,
        images=args.images,
        dataset=args.dataset,
    )
    server = make_server(explorer, args.host, args.port)
    urls = address.urls(server.server_port)
    if not address.loopback:
        print(
            f"warning: serving on {args.host}, beyond this machine: anyone who can reach it on "
            f"port {server.server_port} can use the explorer and run the model",
            file=sys.stderr,
        )
    print(f"exploring {explorer.scatter()['title']}", flush=True)
    print(f"open {' or '.join(urls)} (Ctrl-C to stop)", flush=True)
    if args.open:
        webbrowser.open(urls[0])
    # Ctrl-C stops it even where the shell started it ignoring SIGINT (a background job)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
