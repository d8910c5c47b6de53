"""Load images and labels from a NumPy `.npz` archive.

Keys: `x` and `y` for the training split, `x_test` and `y_test` for the
test split, and optionally `class_names`. `x` may be (N, H, W),
(N, H, W, C) or (N, C, H, W) with C of 1 or 3, as uint8 or as floats in
[0, 1] (a last axis of 1 or 3 is read as channels, so (N, 3, H, 3) is
channels-last); `y` holds non-negative integer labels.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from vaelab.data.dataset import Dataset
from vaelab.errors import DatasetError, NoTestSplitError

KEYS = {"train": ("x", "y"), "test": ("x_test", "y_test")}


def load_npz(path: Path, split: str, name: str) -> Dataset:
    """One split of the archive at `path` as a `Dataset` called `name`."""
    if split not in KEYS:
        raise DatasetError(f"unknown split {split!r}; use one of {list(KEYS)}")
    x_key, y_key = KEYS[split]
    if not zipfile.is_zipfile(path):  # np.load would read it as a pickle and suggest one
        raise DatasetError(
            f"{path}: not a .npz archive (a zip of arrays, as numpy.savez writes); save the "
            "images with numpy.savez(path, x=images, y=labels)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in (x_key, y_key) if k not in archive.files]
            if missing:
                raise (NoTestSplitError if split == "test" else DatasetError)(
                    f"{path} has no {' or '.join(missing)} array for the {split} split "
                    f"(it holds: {', '.join(archive.files) or 'nothing'})"
                    + ("; add them, or use a held-out fraction for validation instead "
                       "(validation=0.1; --validation 0.1 on the command line)"
                       if split == "test" else "")
                )  # fmt: skip
            x, y = archive[x_key], archive[y_key]
            for key, value in ((x_key, x), (y_key, y)):
                if not isinstance(value, np.ndarray):  # a member that is no .npy file
                    raise DatasetError(
                        f"{path}: {key} is not a NumPy array; save it with numpy.savez"
                    )
            names = archive["class_names"].tolist() if "class_names" in archive.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DatasetError(f"{path}: not a readable .npz archive ({err})") from None
    images, labels = _images(x, f"{path}[{x_key}]"), _labels(y, f"{path}[{y_key}]")
    if len(images) != len(labels):
        raise DatasetError(f"{path}: {x_key} holds {len(images)} images but {y_key} {len(labels)}")
    names = names or [str(c) for c in range(int(labels.max()) + 1)]
    if labels.max() >= len(names):
        raise DatasetError(f"{path}: label {int(labels.max())} but only {len(names)} class names")
    return Dataset(images, labels, name, [str(n) for n in names])


def _images(x: np.ndarray, where: str) -> torch.Tensor:
    """uint8 (N, C, H, W) from any of the accepted layouts and types."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    elif x.ndim != 4 or x.shape[1] not in (1, 3):
        raise DatasetError(
            f"{where}: shape {x.shape}; expected (N, H, W), (N, H, W, C) or (N, C, H, W), C 1 or 3"
        )
    if len(x) == 0:
        raise DatasetError(f"{where}: no images")
    return torch.from_numpy(np.ascontiguousarray(_to_uint8(x, where)))


def _to_uint8(x: np.ndarray, where: str) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise DatasetError(f"{where}: dtype {x.dtype}; expected uint8 or floats in [0, 1]")
    if not (np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
        raise DatasetError(f"{where}: float values outside [0, 1] (uint8 data must be uint8)")
    return np.rint(x * 255).astype(np.uint8)


def _labels(y: np.ndarray, where: str) -> torch.Tensor:
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{where}: expected a 1-D integer array, got {y.dtype} {y.shape}")
    if len(y) and y.min() < 0:
        raise DatasetError(f"{where}: negative label {int(y.min())}")
    return torch.from_numpy(y.astype(np.int64))
