"""The `vaelab` command: one subcommand per API function, parsing and messages only.

Heavy imports (torch, matplotlib) happen inside each command's `run`, so
`vaelab --help` starts fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from vaelab import __version__
from vaelab.cli import (
    anomaly,
    bench,
    continual,
    data,
    demo,
    detector,
    explore,
    export,
    models,
    plot,
    report,
    train,
)
from vaelab.cli.options import parse_arguments, refuse_empty_values
from vaelab.errors import Interrupted, SettingError, VaelabError, VaelabWarning
from vaelab.plugins import import_plugins

COMMANDS = [
    demo,
    train,
    models,
    data,
    plot,
    report,
    explore,
    continual,
    anomaly,
    detector,
    export,
    bench,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vaelab",
        description="Learn, see and use autoencoders and VAEs on image data.",
        epilog="Your own models, presets, scores and strategies: name the modules that "
        "register them in VAELAB_PLUGINS, separated by commas (docs/extending.md).",
    )
    parser.add_argument("--version", action="version", version=f"vaelab {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_to(subparsers)
    refuse_empty_values(parser)
    return parser


def one_line_warnings() -> None:
    """Show vaelab's own warnings as one line, like its errors; others as Python does."""
    python_way = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if issubclass(category, VaelabWarning):
            print(f"vaelab: warning: {message}", file=sys.stderr)
        else:
            python_way(message, category, filename, lineno, file, line)

    warnings.simplefilter("always", VaelabWarning)
    warnings.showwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    try:
        with warnings.catch_warnings():
            one_line_warnings()
            import_plugins()  # first: the user's recipes join the choices of --recipe
            args = parse_arguments(build_parser(), argv)
            return args.run(args) or 0
    except Interrupted as err:
        print(f"vaelab: {err}", file=sys.stderr)
        return 130
    except SettingError as err:
        print(f"vaelab: error: {err.as_flags()}", file=sys.stderr)
        return 1
    except VaelabError as err:
        print(f"vaelab: error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (`vaelab ... | head`): nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # quiets exit's flush
        return 1
    except FileExistsError as err:  # a folder to make where a file is
        print(
            f"vaelab: error: cannot create the folder {err.filename}: a file of that name is "
            "in the way; choose another path",
            file=sys.stderr,
        )
        return 1
    except OSError as err:  # a file in the way, no permission, a full disk: the user's to mend
        if err.filename is None:
            raise
        print(
            f"vaelab: error: cannot create or open {err.filename}: {err.strerror}", file=sys.stderr
        )
        return 1
    except KeyboardInterrupt:
        print("vaelab: interrupted", file=sys.stderr)
        return 130
