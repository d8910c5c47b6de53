"""`Dataset`: labelled images held in memory as uint8, and the ways to select from them.

Images stay uint8 (a quarter of float32's memory) until a model asks for
`float()`. Selections keep the original label ids (digit 3 stays 3 after
`with_classes([3, 5])`) so plots and class names still line up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vaelab.errors import DatasetError, SettingError
from vaelab.seeding import keyed_generator

RESIZE_CHUNK = 4096
BINARIZE = ("none", "dynamic")
MAX_IMAGE_SIZE = 1024
"""The largest side images are resized to: the models are conv stacks for small images (28
pixels by default), and 100,000 pixels a side filled 24 GiB of memory with one image."""


def check_image_size(size: int | None) -> None:
    """Refuse a side no model here can take, naming the setting, before any image is read."""
    if size is not None and not 1 <= size <= MAX_IMAGE_SIZE:
        raise SettingError(
            f"{{image_size}} {size} is not a side the models can take: choose 1 to "
            f"{MAX_IMAGE_SIZE:,} pixels (28, the default, suits the conv models)",
            "image_size",
        )


@dataclass
class Dataset:
    """Images (N, C, H, W) uint8 with int64 labels (N,) indexing `class_names`."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    class_names: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            shape = tuple(self.images.shape)
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {shape}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (len(self.images),):
            shape = tuple(self.labels.shape)
            raise ValueError(
                f"labels must be int64 (N,) as images, got {self.labels.dtype} {shape}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def classes(self) -> list[int]:
        """Label ids present, sorted."""
        return torch.unique(self.labels).tolist()

    def float(self) -> torch.Tensor:
        """Images as float32 in [0, 1], the input every model expects."""
        return self.images.float().div_(255)

    def with_classes(self, classes: Sequence[int]) -> Dataset:
        """Only the images whose label is in `classes`."""
        available = self.classes
        if not classes:
            raise DatasetError(f"empty class list for {self.name}; available: {self._describe()}")
        missing = sorted(set(classes) - set(available))
        if missing:
            raise DatasetError(
                f"{self.name} has no class {', '.join(map(str, missing))}; "
                f"available: {self._describe()}"
            )
        return self._take(torch.isin(self.labels, torch.tensor(list(classes))).nonzero()[:, 0])

    def first(self, n: int) -> Dataset:
        """The first `n` images in file order (the article trains on MNIST's first 1,000)."""
        self._check_size(n)
        return self._take(torch.arange(n))

    def stratified(self, n: int, seed: int) -> Dataset:
        """`n` images drawn evenly over the classes (earlier classes take any remainder),
        kept in file order; the same seed gives the same images."""
        self._check_size(n)
        per_class = self._per_class()
        quotas = [n // len(per_class) + (i < n % len(per_class)) for i in range(len(per_class))]
        generator = torch.Generator().manual_seed(seed)
        picked = []
        for (label, idx), quota in zip(per_class.items(), quotas, strict=True):
            if quota > len(idx):
                raise DatasetError(
                    f"{self.name}: class {self._describe_one(label)} has {len(idx)} images, "
                    f"a balanced {n} needs {quota}"
                )
            picked.append(idx[torch.randperm(len(idx), generator=generator)[:quota]])
        return self._take(torch.cat(picked).sort().values)

    def split(self, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
        """(kept, held_out): `fraction` of each class held out at random, both in file order."""
        if not 0 < fraction < 1:
            raise DatasetError(f"hold-out fraction must be between 0 and 1, got {fraction}")
        generator = torch.Generator().manual_seed(seed)
        held = []
        for idx in self._per_class().values():
            count = round(fraction * len(idx))
            held.append(idx[torch.randperm(len(idx), generator=generator)[:count]])
        mask = torch.zeros(len(self), dtype=torch.bool)
        mask[torch.cat(held)] = True
        if mask.all() or not mask.any():
            raise DatasetError(
                f"holding out {fraction} of {len(self)} images of {self.name} leaves a side empty"
            )
        return self._take(mask.logical_not().nonzero()[:, 0]), self._take(mask.nonzero()[:, 0])

    def resized(self, size: int) -> Dataset:
        """Images scaled to `size` x `size` (antialiased bilinear), labels unchanged."""
        if self.images.shape[-2:] == (size, size):
            return self
        chunks = [resize(chunk, size) for chunk in self.images.split(RESIZE_CHUNK)]
        return Dataset(torch.cat(chunks), self.labels, self.name, self.class_names)

    def binarized(self, seed: int) -> Dataset:
        """Every pixel drawn once as Bernoulli(intensity / 255), stored as 0 or 255; the same
        seed gives the same bits."""
        uniform = torch.rand(self.images.shape, generator=torch.Generator().manual_seed(seed))
        bits = bernoulli_bits(self.float(), uniform)
        return Dataset(bits.to(torch.uint8) * 255, self.labels, self.name, self.class_names)

    def _take(self, indices: torch.Tensor) -> Dataset:
        return Dataset(self.images[indices], self.labels[indices], self.name, self.class_names)

    def _per_class(self) -> dict[int, torch.Tensor]:
        """Indices of each class's images, in file order."""
        return {c: (self.labels == c).nonzero()[:, 0] for c in self.classes}

    def _check_size(self, n: int) -> None:
        if not 0 < n <= len(self):
            raise DatasetError(f"cannot select {n} images: {self.name} has {len(self)}")

    def _describe_one(self, label: int) -> str:
        name = self.class_names[label] if label < len(self.class_names) else ""
        return f"{label} ({name})" if name and name != str(label) else str(label)

    def _describe(self) -> str:
        return ", ".join(self._describe_one(c) for c in self.classes)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) images scaled to `size` x `size`, antialiased bilinear."""
    scaled = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True)
    return scaled.round_().clamp_(0, 255).to(torch.uint8)


def check_binarize(binarize: str) -> None:
    """Refuse a binarisation vaelab does not know, naming the setting."""
    if binarize not in BINARIZE:
        raise SettingError(
            f"{{binarize}} must be {' or '.join(BINARIZE)}, got {binarize!r}", "binarize"
        )


def bernoulli_bits(probabilities: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """0/1 pixels (of the input's dtype and device), 1 where the `uniform` draw (made on the
    CPU, so the bits do not depend on the device) falls below the pixel's probability."""
    return (uniform.to(probabilities.device) < probabilities).to(probabilities.dtype)


def redraw_bits(
    images: torch.Tensor,
    seed: int,
    epoch: int,
    step: int,
    rows: torch.Tensor | None = None,
    batch: int | None = None,
) -> torch.Tensor:
    """A training batch binarised afresh from the stream keyed by (seed, epoch, step): new
    bits every epoch, and the same bits again when a stopped run resumes at that step.

    `images` may be the `rows` of a global batch of `batch` images (one process's slice
    under torchrun): the uniforms are drawn for the whole batch and the rows taken, so an
    image gets the same bits whatever the number of processes.
    """
    shape = (batch or len(images), *images.shape[1:])
    uniform = torch.rand(shape, generator=keyed_generator(seed, epoch, step))
    return bernoulli_bits(images, uniform if rows is None else uniform[rows])
