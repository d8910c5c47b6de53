"""The JSON files vaelab writes and reads back: configs, settings, results, cards.

A run or a results folder outlives the process that wrote it: a crash can cut
a file short and a person can edit one by hand. Reading one back either gives
the JSON object it should hold or says which file is damaged and what to do,
instead of a `JSONDecodeError` traceback far from the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vaelab.errors import RunError

REDO = "delete it and run again: that result is computed again"
"""What to do about a damaged result file of a finished task."""


def read_json(path: Path, remedy: str) -> dict[str, Any]:
    """The JSON object in `path`; a `RunError` naming the file and `remedy` when it is
    not valid JSON or holds something else than an object. A missing file is the caller's
    to explain (`FileNotFoundError` passes through)."""
    try:
        value = json.loads(path.read_text())
    except ValueError as err:  # not JSON, or not even text (UnicodeDecodeError)
        raise RunError(f"{path} is damaged (not valid JSON: {err}); {remedy}") from None
    if not isinstance(value, dict):
        kind = type(value).__name__ if value is not None else "null"
        raise RunError(f"{path} is damaged (it holds a {kind}, not a JSON object); {remedy}")
    return value


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a file appended to one line at a time (`metrics.jsonl`).

    A last line cut short (no newline after it) is an append a crash interrupted: it was
    never written, and is left out. Any other bad line is a `RunError` naming the file and
    the line."""
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise RunError(f"{path} is damaged (not text: {err}); delete it") from None
    lines = text.splitlines()
    torn = len(lines) if text and not text.endswith("\n") else None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if number == torn:
                break
            raise RunError(f"{path}, line {number}, is damaged ({err}); delete that line") from None
        if not isinstance(row, dict):
            raise RunError(f"{path}, line {number}, is not a JSON object; delete that line")
        rows.append(row)
    return rows
