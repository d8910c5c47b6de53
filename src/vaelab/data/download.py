"""Download one file from a list of mirrors, or copy a local one, atomically.

Bytes go to a temporary file in the destination folder, are checked, and
only then renamed into place: an interrupted, dropped or wrong download
never leaves a file that a later run would mistake for good data.
"""

from __future__ import annotations

import os
import secrets
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def copy(src: Path, dest: Path) -> Path:
    """`src` copied to `dest` (whose folder is created) so that an interrupted copy leaves
    nothing behind; the caller checks `src` first."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _staged(dest) as tmp:
        shutil.copyfile(src, tmp)
    return dest


def _fetch_checked(url: str, dest: Path, check: Callable[[Path], object], progress: bool) -> None:
    with _staged(dest) as tmp:
        with tmp.open("wb") as out:
            _copy(url, out, dest.name, progress)
        check(tmp)


@contextmanager
def _staged(dest: Path) -> Iterator[Path]:
    """A temporary file beside `dest`, renamed onto it when the block succeeds and removed
    when it fails, so that `dest` is only ever absent or complete. It ends with the
    permissions of any new file (the umask's), not owner-only ones as `mkstemp` gives: a shared
    data folder stays readable by the others who use it."""
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        yield tmp
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
