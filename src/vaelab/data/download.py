"""Download one file from a list of mirrors, atomically.

Bytes go to a temporary file in the destination folder, are checked, and
only then renamed into place: an interrupted, dropped or wrong download
never leaves a file that a later run would mistake for good data.
"""

from __future__ import annotations

import os
import tempfile
import urllib.request
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from vaelab.errors import DatasetError

CHUNK = 1 << 16
TIMEOUT_S = 30


def download(
    bases: list[str], dest: Path, check: Callable[[Path], object], progress: bool = True
) -> Path:
    """Fetch `dest.name` from the first mirror in `bases` that serves it and passes `check`.

    `check(path)` raises `DatasetError` for bad content. Raises `DatasetError`
    listing every mirror's failure when none succeeds.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for base in bases:
        url = base.rstrip("/") + "/" + dest.name
        try:
            _fetch_checked(url, dest, check, progress)
            return dest
        except (OSError, HTTPException, DatasetError) as err:
            failures.append(f"{url}: {err}")
    raise DatasetError(f"could not download {dest.name}: " + "; ".join(failures))


def _fetch_checked(url: str, dest: Path, check: Callable[[Path], object], progress: bool) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            _copy(url, out, dest.name, progress)
        check(Path(tmp))
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _copy(url: str, out: BinaryIO, label: str, progress: bool) -> None:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        total = response.length
        with tqdm(
            total=total, unit="B", unit_scale=True, desc=label, disable=not progress, leave=False
        ) as bar:
            received = 0
            while chunk := response.read(CHUNK):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received < total:
        raise DatasetError(f"connection dropped after {received} of {total} bytes")
