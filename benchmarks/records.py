"""What every benchmark's results file starts with, and how it is written."""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path
from typing import Any


def stamp(benchmark: str, protocol: str | dict[str, Any]) -> dict[str, Any]:
    """The kind of table (`benchmark`), the day, the command that measured it, and the
    protocol (in words, or as the settings the benchmark recorded)."""
    script = f"benchmarks/{Path(sys.argv[0]).name}"
    return {
        "benchmark": benchmark,
        "measured": datetime.date.today().isoformat(),
        "command": " ".join(["python", script, *sys.argv[1:]]),
        "protocol": protocol,
    }


def report(results: dict[str, Any], path: str | None) -> None:
    """Print `results` as JSON, and write them to `path` if one is given."""
    text = json.dumps(results, indent=2)
    print(text)
    if path:
        Path(path).write_text(text + "\n")
