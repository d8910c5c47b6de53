"""Parse the IDX format of MNIST-style files straight from bytes.

The whole file is decoded with one `numpy.frombuffer`, never a Python loop
over samples, so 60,000 images load in well under a second. Every check
names the file, because a user with a damaged copy needs to know which one.
"""

from __future__ import annotations

import gzip
import zlib

import numpy as np
import torch

from vaelab.errors import DatasetError

GZIP_MAGIC = b"\x1f\x8b"
UBYTE = 0x08


def is_gzip(raw: bytes) -> bool:
    """Tell gzip from plain IDX by content, so a misnamed file still reads."""
    return raw[:2] == GZIP_MAGIC


def decompress(raw: bytes, where: object) -> bytes:
    """Return the IDX bytes of `raw`, gunzipping it when it is gzip data."""
    if not is_gzip(raw):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetError(
            f"{where}: corrupt gzip data ({err}); delete it and fetch it again"
        ) from None


def parse(data: bytes, where: object, ndim: int) -> np.ndarray:
    """Decode an unsigned-byte IDX array of `ndim` dimensions (a read-only view of `data`)."""
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != UBYTE:
        raise DatasetError(f"{where}: bad magic number {data[:4].hex() or 'none'}, not an IDX file")
    if data[3] != ndim:
        raise DatasetError(f"{where}: has {data[3]} dimensions, expected {ndim}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{where}: truncated header")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    size = int(np.prod(shape))
    if len(data) - header != size:
        problem = "truncated" if len(data) - header < size else "has trailing bytes"
        raise DatasetError(
            f"{where}: {problem}: header says {shape} = {size} bytes of data, "
            f"file holds {len(data) - header}"
        )
    return np.frombuffer(data, np.uint8, count=size, offset=header).reshape(shape)


def images_and_labels(
    images: np.ndarray, labels: np.ndarray, images_at: object, labels_at: object
) -> tuple[torch.Tensor, torch.Tensor]:
    """Parsed IDX arrays as uint8 (N, 1, H, W) images and int64 (N,) labels."""
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_at} holds {len(images)} images but {labels_at} {len(labels)} labels"
        )
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))
