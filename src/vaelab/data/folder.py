"""Load a folder of images with one subfolder per class, or any image files.

Layouts: `root/<class>/*.png`, or `root/train/<class>/...` and
`root/test/<class>/...`. Class folders are sorted (numerically when all names
are numbers, so `10` follows `9`) and their position is the label.
Grayscale images give one channel, colour images three; if both appear,
grayscale ones are widened to RGB. 16-bit grey images (modes `I;16`, and `I`
from PGM files) are scaled to 8 bits, not clipped; 32-bit integer and float
grey images (TIFF), whose range no header states, are read by their values
(`_eight_bit`). `read_images` reads unlabelled files and folders, as a
detector scores them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vaelab.data.dataset import Dataset, check_image_size
from vaelab.errors import DatasetError, NoTestSplitError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
WIDE_GRAY_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
"""Grey modes holding 16-bit values, which `convert("L")` would clip at 255 instead of scale."""
SPLITS = ("train", "test")


def load_folder(root: Path, split: str, image_size: int | None) -> Dataset:
    """Images of `split` under `root`, each resized to `image_size` when given."""
    folder, class_names = _layout(root, split)
    files, labels = [], []
    for label, name in enumerate(class_names):
        found = _image_files(folder / name)
        files += found
        labels += [label] * len(found)
    if not files:
        raise DatasetError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    arrays = _same_channels([_read_image(path, image_size) for path in files])
    _check_same_size(arrays, files)
    images = torch.from_numpy(np.stack(arrays))
    return Dataset(images, torch.tensor(labels, dtype=torch.int64), root.name, class_names)


def read_images(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    image_size: int | None = None,
    channels: int | None = None,
) -> tuple[torch.Tensor, list[Path]]:
    """uint8 (N, C, H, W) images from image files and folders (every image under a folder,
    in sorted order), and the file of each. Each image is resized to `image_size` when
    given; `channels` 1 or 3 makes them grey or RGB (default: grey unless one has colour)."""
    if channels not in (None, 1, 3):
        raise DatasetError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    check_image_size(image_size)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = [file for path in paths for file in _files_under(Path(path))]
    if not files:
        raise DatasetError(f"no images given: {', '.join(map(str, paths)) or 'no paths'}")
    mode = {None: None, 1: "L", 3: "RGB"}[channels]
    arrays = _same_channels([_read_image(file, image_size, mode) for file in files])
    _check_same_size(arrays, files)
    return torch.from_numpy(np.stack(arrays)), files


def _files_under(path: Path) -> list[Path]:
    """`path` itself if it is an image file, else every image file below it."""
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if _is_image_file(p.relative_to(path), p))
        if not found:
            raise DatasetError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
        return found
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DatasetError(
            f"{path}: not an image file (expected {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return [path]


def read_images_as(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], shape: Sequence[int]
) -> tuple[torch.Tensor, list[Path]]:
    """`read_images` for a model of square (C, H, W) `shape`: resized to its size, grey or
    RGB as it takes them."""
    channels, height, width = shape
    if height != width:
        raise DatasetError(
            f"image files can be read for square images only; this model takes {height}x{width}"
        )
    return read_images(paths, height, channels)


def _is_image_file(relative: Path, path: Path) -> bool:
    """An image file, not a folder named like one, a hidden file or macOS's `__MACOSX/` and
    `._name` copies of archive metadata."""
    hidden = any(part.startswith(".") or part == "__MACOSX" for part in relative.parts)
    return not hidden and path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _layout(root: Path, split: str) -> tuple[Path, list[str]]:
    """The folder for `split` and the class names shared by all splits."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; use one of {list(SPLITS)}")
    split_dirs = [root / s for s in SPLITS if (root / s).is_dir()]
    if not split_dirs:
        if split != "train":
            raise NoTestSplitError(
                f"{root} has no test/ folder; use a held-out fraction for validation instead "
                "(validation=0.1; --validation 0.1 on the command line)"
            )
        split_dirs, folder = [root], root
    elif not (root / split).is_dir():
        raise DatasetError(f"{root} has no {split}/ folder")
    else:
        folder = root / split
    names = {p.name for d in split_dirs for p in d.iterdir() if p.is_dir() and p.name[0] != "."}
    if not names:
        raise DatasetError(f"{folder}: no class subfolders (expected {folder}/<class>/<image>)")
    return folder, sorted(names, key=_class_key)


def _class_key(name: str) -> tuple[int, int | str]:
    return (0, int(name)) if name.isdigit() else (1, name)


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _read_image(path: Path, size: int | None, mode: str | None = None) -> np.ndarray:
    """One image as uint8 (C, H, W), in `mode` ("L" or "RGB"; default: its own)."""
    try:
        with Image.open(path) as image:
            image = _eight_bit(image)
            image = image.convert(mode or ("L" if image.mode in GRAY_MODES else "RGB"))
            if size:
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(image)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise DatasetError(f"{path}: unreadable image ({err})") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _eight_bit(image: Image.Image) -> Image.Image:
    """A grey image of more than 8 bits as 8 bits, any other image as it is; PIL's own
    conversion clips, leaving a 16-bit image only 0 or 255 and a 0-1 float one black.

    16-bit images (`I;16`, or `I` from a PGM, which PIL scales to 0-65535) keep their top
    byte, so v * 257 reads back as v. A 32-bit integer or float image states no range, so
    its values decide: 0-255 are taken as they are, integers up to 65535 as 16-bit, floats
    within 0-1 as fractions of white. Each image is judged alone: a 16-bit one whose
    brightest pixel is under 256 reads as 8-bit.
    """
    if image.mode not in WIDE_GRAY_MODES | {"F"}:
        return image
    values = np.asarray(image, dtype=np.float64)
    if image.mode in WIDE_GRAY_MODES - {"I"} or image.format == "PPM":
        return _top_byte(values)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if image.mode == "F" and low >= 0 and high <= 1:
        return Image.fromarray(np.rint(values * 255).astype(np.uint8))
    if low >= 0 and high <= 255:
        return Image.fromarray(np.rint(values).astype(np.uint8))
    if image.mode == "I" and low >= 0 and high <= 0xFFFF:
        return _top_byte(values)
    kind = "float" if image.mode == "F" else "32-bit integer"
    raise ValueError(
        f"{kind} grey values from {low:g} to {high:g}, which fit no 8- or 16-bit range; "
        "save it as 8- or 16-bit (or, for floats, scaled to 0-1)"
    )


def _top_byte(values: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(values, 0, 0xFFFF).astype(np.int64) >> 8).astype(np.uint8))


def _same_channels(arrays: list[np.ndarray]) -> list[np.ndarray]:
    if all(a.shape[0] == 1 for a in arrays):
        return arrays
    return [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in arrays]


def _check_same_size(arrays: list[np.ndarray], files: list[Path]) -> None:
    first = arrays[0].shape[1:]
    for array, path in zip(arrays, files, strict=True):
        if array.shape[1:] != first:
            raise DatasetError(
                f"images differ in size: {files[0]} is {first[1]}x{first[0]}, "
                f"{path} is {array.shape[2]}x{array.shape[1]}; pass an image size to resize them"
            )
