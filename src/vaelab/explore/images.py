"""The images the explorer draws on the plane: the run's own test split, the test split of
another dataset, or a user's image files and folders.

A detector fitted on image files names no test set, so it is shown the images it is to
judge, read as `vaelab detector score` reads them. Files carry no labels: their dots share
one colour and a conditional model, which encodes each image with its label, cannot take
them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from vaelab.data import Dataset, load, read_images_as
from vaelab.errors import SettingError, VaelabError
from vaelab.models import Model
from vaelab.plotting import test_set
from vaelab.run import Run

UNLABELLED = -1
"""The label of an image read from a file, which names no class."""


@dataclass(frozen=True)
class Origin:
    """What the explorer's images are, which decides how the page names and walks them."""

    what: str
    """Their name after a count in the title: "test images", "images of photos/new"."""
    files: tuple[str, ...] | None = None
    """The file of each image, for images read from files (which carry no labels)."""
    run_test: bool = False
    """The run's own test split, which `vaelab plot RUN interpolate --images I J` indexes."""

    @property
    def labelled(self) -> bool:
        return self.files is None


def chosen_images(
    run: Run,
    model: Model,
    images: Sequence[str | os.PathLike[str]] | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
) -> tuple[Dataset, Origin]:
    """The image files under `images`, else the test split of `dataset`, else the run's own
    test split."""
    if images is not None:
        return image_files(model, images)
    if dataset is not None:
        return dataset_test(run, model, dataset, data_dir)
    return test_set(run, data_dir), Origin("test images", run_test=True)


def image_files(model: Model, paths: Sequence[str | os.PathLike[str]]) -> tuple[Dataset, Origin]:
    """Every image under `paths` (files and folders), read as a detector reads them:
    resized to the model's size and made grey or RGB as it takes them. A conditional model
    is refused before any is read: it encodes each image with its label, which files lack."""
    if model.capabilities.conditional:
        raise SettingError(
            f"{model.describe()} is conditional: it encodes each image with its label, and "
            "the files of {images} carry none; show it a labelled test set with {dataset}",
            "images",
            "dataset",
        )
    pixels, files = read_images_as(paths, model.shape)
    labels = torch.full((len(pixels),), UNLABELLED, dtype=torch.int64)
    where = ", ".join(map(str, paths))
    return Dataset(pixels, labels, where, []), Origin(f"images of {where}", tuple(map(str, files)))


def dataset_test(run: Run, model: Model, name: str, data_dir: str | None) -> tuple[Dataset, Origin]:
    """The test split of `name` (a named dataset or a folder of class subfolders) at the
    run's image size, as `vaelab export --dataset` checks on; refused unless the model
    takes its images."""
    config = run.config.data
    test = load(name, "test", data_dir or config.data_dir, config.image_size)
    if tuple(test.images.shape[1:]) != tuple(model.shape):
        raise VaelabError(
            f"the test images of {name} are {tuple(test.images.shape[1:])} (C, H, W) but "
            f"{model.describe()} takes {tuple(model.shape)}"
        )
    return test, Origin(f"test images of {name}")
