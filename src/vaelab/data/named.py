"""Find, fetch, verify and read the datasets vaelab knows by name.

Every read checks the file's MD5 as it decodes it (the bytes are in memory
anyway), so a damaged file is reported by name instead of training on noise.
"""

from __future__ import annotations

import hashlib
import os
from functools import partial
from pathlib import Path

import numpy as np

from vaelab.data import idx
from vaelab.data.dataset import Dataset
from vaelab.data.download import copy, download
from vaelab.data.sources import (
    DATA_DIR_ENV,
    FileSpec,
    Source,
    checked_dir,
    download_dir,
    find_file,
    given_dir,
    mirrors,
    search_dirs,
)
from vaelab.errors import DatasetError

PathLike = str | os.PathLike


def find(source: Source, data_dir: PathLike | None) -> Path | None:
    """The first folder in lookup order that holds all of `source`'s files."""
    for folder in search_dirs(source, data_dir):
        if all(find_file(folder, spec) for spec in source.files):
            return folder
    return None


def fetch(
    source: Source, data_dir: PathLike | None, progress: bool = True, allow_download: bool = True
) -> Path:
    """The folder holding `source`'s files, downloading the missing ones if allowed."""
    folder = find(source, data_dir)
    if folder is not None:
        return folder
    if not allow_download:
        raise _not_found(source, data_dir, "downloading is turned off")
    dest = download_dir(source, data_dir)
    try:
        for spec in source.files:
            if find_file(dest, spec) is None:
                check = partial(read_checked, spec=spec)
                download(mirrors(source), dest / spec.remote, check, progress)
    except (DatasetError, OSError) as err:
        raise _not_found(source, data_dir, str(err)) from None
    return dest


def fetch_into(source: Source, data_dir: PathLike, progress: bool = True) -> Path:
    """`data_dir/<name>/` holding all of `source`'s files: the user asked for them there
    (to point `$VAELAB_DATA_DIR` at it, say), so a copy found elsewhere is not enough."""
    dest = _made(source, Path(data_dir).expanduser()) / source.name
    for spec in source.files:
        if find_file(dest, spec) is None:
            _fill(source, spec, dest, progress)
    return dest


def _made(source: Source, root: Path) -> Path:
    """`root`, created if missing: fetching is how a new data dir gets its files."""
    if not root.exists():
        try:
            root.mkdir(parents=True)
        except OSError as err:
            raise DatasetError(f"cannot create data dir {root}: {err.strerror}") from None
    return checked_dir(source, root)


def _fill(source: Source, spec: FileSpec, dest: Path, progress: bool) -> None:
    """Put `spec`'s file in `dest`: copied from another folder on the search path that has
    it, else downloaded."""
    local = _found_elsewhere(source, spec, dest.parent)
    if local is not None:
        _copy_checked(local, spec, dest)
        return
    try:
        download(mirrors(source), dest / spec.remote, partial(read_checked, spec=spec), progress)
    except (DatasetError, OSError) as err:
        raise _not_found(source, dest.parent, str(err)) from None


def _found_elsewhere(source: Source, spec: FileSpec, root: Path) -> Path | None:
    """The file for `spec` in the first folder on the search path that has it."""
    found = (find_file(folder, spec) for folder in search_dirs(source, root))
    return next((path for path in found if path is not None), None)


def _copy_checked(local: Path, spec: FileSpec, dest: Path) -> None:
    """`local` copied into `dest`, checked first so that a damaged copy is named, not spread."""
    read_checked(local, spec)
    try:
        copy(local, dest / local.name)
    except OSError as err:
        raise DatasetError(f"cannot copy {local} into {dest}: {err.strerror}") from None


def verify(source: Source, data_dir: PathLike | None) -> list[Path]:
    """Check every file of `source` (checksum and structure); raise on the first bad one.
    With `data_dir`, the copy there only: a check of the folder asked about must not pass
    on a copy found elsewhere."""
    folder = find(source, None) if not data_dir else given_dir(source, data_dir) / source.name
    if data_dir and not all(find_file(folder, spec) for spec in source.files):
        files = ", ".join(spec.remote for spec in source.files)
        raise DatasetError(
            f"{folder} does not hold all of {files}: verify checks the copy under the data "
            "dir it is given, not one found elsewhere"
        )
    if folder is None:
        raise _not_found(source, data_dir, "nothing was downloaded (verify only checks)")
    paths = [find_file(folder, spec) for spec in source.files]
    for path, spec in zip(paths, source.files, strict=True):
        read_checked(path, spec)
    return paths


def read(source: Source, split: str, data_dir: PathLike | None, allow_download: bool) -> Dataset:
    """One split of `source` as a `Dataset`, fetching the files first when needed."""
    if split not in source.splits:
        raise DatasetError(
            f"{source.name} has no split {split!r}; use one of {list(source.splits)}"
        )
    folder = fetch(source, data_dir, allow_download=allow_download)
    images_spec, labels_spec = source.splits[split]
    images_at, labels_at = find_file(folder, images_spec), find_file(folder, labels_spec)
    images = read_checked(images_at, images_spec)
    labels = read_checked(labels_at, labels_spec)
    x, y = idx.images_and_labels(images, labels, images_at, labels_at)
    return Dataset(x, y, source.name, list(source.class_names))


def read_checked(path: Path, spec: FileSpec) -> np.ndarray:
    """The array in `path`, checked for structure (the more telling message) then MD5."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DatasetError(f"{path}: cannot read ({err.strerror})") from None
    data = idx.decompress(raw, path)
    array = idx.parse(data, path, spec.ndim)
    if spec.md5:
        _compare(path, data, spec.md5, "decompressed content")
    elif spec.gz_md5 and idx.is_gzip(raw):
        _compare(path, raw, spec.gz_md5, "gzip file")
    return array


def _compare(path: Path, data: bytes, expected: str, what: str) -> None:
    actual = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if actual != expected:
        raise DatasetError(
            f"{path}: checksum mismatch (MD5 of the {what} is {actual}, expected {expected}); "
            "the file is damaged or not the official one: delete it and fetch it again"
        )


def _not_found(source: Source, data_dir: PathLike | None, why: str) -> DatasetError:
    looked = ", ".join(str(d) for d in search_dirs(source, data_dir))
    files = ", ".join(spec.remote for spec in source.files)
    return DatasetError(
        f"{source.name} not found (looked in {looked}; {why}). "
        f"Provide {files} (gzipped or not) in a `{source.name}/` folder under the data folder "
        f"(data_dir; --data-dir on the command line) or ${DATA_DIR_ENV}, or run "
        f"`vaelab data fetch {source.name}` where the network is reachable."
    )
