"""Datasets for vaelab: load by name or path, select, and manage the downloaded files.

    train = load("mnist").first(1000)           # the article's 1,000 training digits
    train, val = prepare(DataConfig(classes=[3, 5]))

Named datasets: `mnist`, `fashion-mnist`, `kmnist` (files found locally or
downloaded and checksummed) and `mnist-sample` (shipped with vaelab, no
network needed). A path loads a folder of class subfolders or an `.npz`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaelab.config import NO_DATASET, DataConfig
from vaelab.data import named
from vaelab.data.dataset import Dataset, check_binarize, check_image_size, redraw_bits
from vaelab.data.folder import load_folder, read_images, read_images_as
from vaelab.data.npz import load_npz
from vaelab.data.sources import SAMPLE, SAMPLE_FILE, SOURCES, Source, normalize
from vaelab.errors import DatasetError, SettingError

__all__ = [
    "Dataset",
    "DatasetInfo",
    "check_binarize",
    "check_subset",
    "fetch",
    "fixed_bits",
    "list_datasets",
    "load",
    "prepare",
    "protocol",
    "read_images",
    "read_images_as",
    "redraw_bits",
    "verify",
]

SAMPLE_PATH = Path(__file__).with_name(SAMPLE_FILE)
SAMPLE_DESCRIPTION = (
    "10,000-image stratified subset of MNIST shipped with vaelab "
    "(800 per digit train, 200 per digit test)"
)
SELECTION_SEED = 0
TEST_BITS_SEED = 0
"""The seed that binarises the validation (test) images once, for every run alike, so the
likelihoods of all dynamically binarised runs are measured on the same bits."""
PathLike = str | os.PathLike


@dataclass(frozen=True)
class DatasetInfo:
    """What `vaelab data list` shows: a dataset, whom to credit, where its files are."""

    name: str
    description: str
    credit: str
    license: str
    homepage: str
    location: Path | None


def list_datasets(data_dir: PathLike | None = None) -> list[DatasetInfo]:
    """Every named dataset, with the folder its files were found in (None if not yet fetched)."""
    mnist = SOURCES["mnist"]
    sample = DatasetInfo(
        SAMPLE, SAMPLE_DESCRIPTION, mnist.credit, mnist.license, mnist.homepage, SAMPLE_PATH
    )
    return [sample] + [
        DatasetInfo(s.name, s.description, s.credit, s.license, s.homepage, named.find(s, data_dir))
        for s in SOURCES.values()
    ]


def fetch(name: str, data_dir: PathLike | None = None, progress: bool = True) -> Path:
    """The folder holding `name`'s files, downloading any that are missing.

    With `data_dir` the files end up in `data_dir/<name>/` (created if missing), copied
    from another folder on the lookup path when one has them, so the folder can be used
    as `$VAELAB_DATA_DIR` later; without, a complete copy anywhere on the path will do.
    """
    if normalize(name) == SAMPLE:
        return SAMPLE_PATH.parent
    if data_dir:
        return named.fetch_into(_source(name), data_dir, progress)
    return named.fetch(_source(name), None, progress)


def verify(name: str, data_dir: PathLike | None = None) -> list[Path]:
    """Check every file of `name`, raising `DatasetError` on the first bad one."""
    if normalize(name) == SAMPLE:
        for split in ("train", "test"):
            load_npz(SAMPLE_PATH, split, SAMPLE)
        return [SAMPLE_PATH]
    return named.verify(_source(name), data_dir)


def load(
    source: str | os.PathLike,
    split: str = "train",
    data_dir: PathLike | None = None,
    image_size: int | None = None,
    download: bool = True,
) -> Dataset:
    """One split of a named dataset, an image folder or an `.npz`, as uint8 images.

    Names win over paths: use `./mnist` for a folder called `mnist`.
    """
    check_image_size(image_size)
    dataset = _load(source, split, data_dir, image_size, download)
    return dataset.resized(image_size) if image_size else dataset


def prepare(config: DataConfig) -> tuple[Dataset, Dataset]:
    """(train, validation) as `config` describes them.

    Classes are chosen first; a held-out validation fraction is taken before
    `train_size` trims the training set, so it does not shrink with it. With dynamic
    binarisation the validation images are binarised once (the whole test split, before
    any class selection, so an image's bits do not depend on the selection); the training
    images stay grey levels, which the training loop re-draws as bits at every batch.
    """
    check_binarize(config.binarize)
    train = load(config.dataset, "train", config.data_dir, config.image_size)
    if config.classes is not None:
        train = train.with_classes(config.classes)
    if config.validation == "test":
        test = load(config.dataset, "test", config.data_dir, config.image_size)
        validation = fixed_bits(test, config.binarize)
        if config.classes is not None:
            validation = validation.with_classes(config.classes)
    else:
        fraction = _fraction(config.validation)
        kept, validation = train.split(fraction, SELECTION_SEED)
        _check_room(kept, len(train), fraction, config)
        train, validation = kept, fixed_bits(validation, config.binarize)
    if config.train_size is not None:
        train = _subset(train, config.train_size, config.subset)
    return train, validation


def protocol(config: DataConfig) -> dict[str, Any]:
    """How the images were binarised, to print next to every likelihood measured on them."""
    if config.binarize == "dynamic":
        return {
            "dataset": config.dataset,
            "binarize": "dynamic",
            "train": "each image re-drawn as Bernoulli(pixel intensity) every time a batch "
            "holds it (new bits every epoch), from the run's seed",
            "test": "binarised once as Bernoulli(pixel intensity) with test_bits_seed",
            "test_bits_seed": TEST_BITS_SEED,
        }
    return {
        "dataset": config.dataset,
        "binarize": "none",
        "test": "grey levels in [0, 1], scored by the model's likelihood as they are",
    }


def fixed_bits(dataset: Dataset, binarize: str) -> Dataset:
    """`dataset` as every measurement of a run trained with `binarize` sees it: with
    dynamic binarisation, bits drawn once from `TEST_BITS_SEED`, else the grey levels. An
    image's bits depend on its place in `dataset`, so the test split's are drawn on the
    whole split, before any class is chosen: the same for every run."""
    return dataset.binarized(TEST_BITS_SEED) if binarize == "dynamic" else dataset


def _load(
    source: str | os.PathLike,
    split: str,
    data_dir: PathLike | None,
    image_size: int | None,
    download: bool,
) -> Dataset:
    if source == NO_DATASET:
        raise DatasetError(
            "this run is a detector fitted on arrays or image files, so it names no dataset to "
            "load: score images with `vaelab detector score`, or check an export on some "
            "(a dataset or image files; --dataset or --images on the command line)"
        )
    key = normalize(source) if isinstance(source, str) else None
    if key == SAMPLE:
        return load_npz(SAMPLE_PATH, split, SAMPLE)
    if key in SOURCES:
        return named.read(SOURCES[key], split, data_dir, download)
    path = Path(source).expanduser()
    if path.is_dir():
        return load_folder(path, split, image_size)
    if path.is_file() and path.suffix == ".npz":
        return load_npz(path, split, path.stem)
    raise DatasetError(
        f"unknown dataset {str(source)!r}: not one of {', '.join(_names())} "
        "nor an existing folder or .npz file"
    )


def _source(name: str) -> Source:
    key = normalize(name)
    if key not in SOURCES:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(_names())}")
    return SOURCES[key]


def _names() -> list[str]:
    return [SAMPLE, *SOURCES]


def _fraction(validation: str | float) -> float:
    try:
        return float(validation)
    except ValueError:
        raise DatasetError(
            f"validation must be 'test' or a fraction such as 0.1, got {validation!r}"
        ) from None


def _check_room(kept: Dataset, total: int, fraction: float, config: DataConfig) -> None:
    """Blame the hold-out when it, not the dataset, leaves too few images for `train_size`:
    "mnist-sample has 10" alone reads as if the dataset held only 10."""
    if config.train_size is None or config.train_size <= len(kept):
        return
    chosen = f" of classes {', '.join(map(str, config.classes))}" if config.classes else ""
    raise DatasetError(
        f"cannot select {config.train_size} images: {kept.name} has {total} training images"
        f"{chosen}, but holding out validation={fraction} took {total - len(kept)} of them, "
        f"leaving {len(kept)}; lower the validation fraction or train_size "
        "(--validation, --train-size on the command line)"
    )


def _subset(train: Dataset, size: int, subset: str) -> Dataset:
    check_subset(subset, size)
    return train.stratified(size, SELECTION_SEED) if subset == "stratified" else train.first(size)


def check_subset(subset: str, train_size: int | None) -> None:
    """Refuse a subset rule that is unknown, or one given with no `train_size` to pick,
    where it would change nothing (`fit` checks before training a new run)."""
    if subset not in ("first", "stratified"):
        raise DatasetError(f"subset must be 'first' or 'stratified', got {subset!r}")
    if subset != "first" and train_size is None:
        raise SettingError(
            f"{{subset}} {subset} says which {{train_size}} images to keep, and no "
            "{train_size} is given: give one, or leave {subset} out",
            "subset",
            "train_size",
        )
