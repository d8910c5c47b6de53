"""`vaelab explore RUN`: a live explorer of a run's latent space in the browser."""

from __future__ import annotations

import argparse

from vaelab.cli.options import add_data_dir, positive_int


def add_to(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "explore",
        help="explore a run's latent space live in the browser",
        description="Serve a local web page that draws the codes of test images over the "
        "latent plane (PCA beyond two dimensions) and decodes the point under the mouse. "
        "Stop with Ctrl-C.",
    )
    p.add_argument("run_dir", metavar="RUN", help="run folder")
    p.add_argument("--port", type=int, default=8000, help="port to serve on (8000; 0: any free)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (127.0.0.1: this machine only)",
    )
    p.add_argument(
        "--count",
        type=positive_int,
        default=5000,
        metavar="N",
        help="test images drawn on the plane (5000, cycling through the classes)",
    )
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    add_data_dir(p)
    p.set_defaults(run=run_explore)


def run_explore(args: argparse.Namespace) -> None:
    import webbrowser

    from vaelab.explore import Explorer, make_server

    explorer = Explorer.from_run(args.run_dir, args.count, args.data_dir)
    server = make_server(explorer, args.host, args.port)
    url = f"http://{args.host}:{server.server_port}/"
    print(f"exploring {explorer.title}\nopen {url} (Ctrl-C to stop)", flush=True)
    if args.open:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
