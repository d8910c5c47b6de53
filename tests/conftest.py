"""Shared fixtures: where real MNIST lives, an isolated data environment, tiny IDX datasets,
and the sample's digits as a user's image files."""

from __future__ import annotations

import gzip
import hashlib
import importlib
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from vaelab.data.sources import SOURCES, FileSpec, Source

# Runs choose their thread count from the cores free when they start; the tests pin it, so
# two runs that must match do, whatever else the machine is doing.
os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))

# Read at import, before any fixture clears the variable for isolation.
DATA_DIR = Path(os.environ.get("VAELAB_DATA_DIR", "/work/shared/data"))


@pytest.fixture
def mnist_dir() -> Path:
    """The folder holding `mnist/` with the official files; skips the test if absent."""
    if not (DATA_DIR / "mnist").is_dir():
        pytest.skip(f"full MNIST not found under {DATA_DIR} (set VAELAB_DATA_DIR)")
    return DATA_DIR


@pytest.fixture
def isolated_data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No data dir, an empty user cache and an unreachable mirror, so a test never reads
    the user's files, writes to the shared data dir, or reaches the network. Returns the cache."""
    monkeypatch.delenv("VAELAB_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("VAELAB_MIRRORS", "http://127.0.0.1:9")
    return tmp_path / "cache" / "vaelab"


@pytest.fixture
def restored_registries(monkeypatch: pytest.MonkeyPatch):
    """vaelab's registries (and the modules workers import) hold what they held before once
    the test ends, so that no other test sees what it registered."""
    from vaelab import plugins
    from vaelab.continual.strategies import STRATEGIES
    from vaelab.models import MODELS
    from vaelab.scores import SCORES

    monkeypatch.setattr(plugins, "_MODULES", set(plugins._MODULES))
    registries = (MODELS, SCORES, STRATEGIES)
    saved = [dict(registry) for registry in registries]
    yield
    for registry, before in zip(registries, saved, strict=True):
        registry.clear()
        registry.update(before)


@pytest.fixture
def user_module(restored_registries):
    """Import `tests/user_models.py`, a user's module registering a model, a score and a
    continual strategy, for one test."""
    sys.modules.pop("user_models", None)
    yield importlib.import_module("user_models")
    sys.modules.pop("user_models", None)


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """`array` encoded as an IDX file."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


@dataclass
class TinySet:
    """A made-up IDX dataset registered as the named dataset `tiny`."""

    raw: dict[str, bytes]  # official file name (no .gz) -> IDX bytes
    source: Source

    def gz(self, name: str) -> bytes:
        return gzip.compress(self.raw[name], mtime=0)

    def write(self, folder: Path, names: list[str] | None = None, compress: bool = True) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name in names or list(self.raw):
            path = folder / (name + ".gz" if compress else name)
            path.write_bytes(self.gz(name) if compress else self.raw[name])
        return folder


def tiny_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` random 5x5 images with labels cycling over 4 classes."""
    images = np.random.default_rng(seed).integers(0, 256, (n, 5, 5), dtype=np.uint8)
    return images, np.arange(n, dtype=np.uint8) % 4


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch, isolated_data_env: Path) -> TinySet:
    """24 train and 8 test images known as `tiny`, with decompressed-MD5 checksums."""
    (x, y), (x_test, y_test) = tiny_arrays(24, 0), tiny_arrays(8, 1)
    raw = {
        "train-images-idx3-ubyte": idx_bytes(x),
        "train-labels-idx1-ubyte": idx_bytes(y),
        "t10k-images-idx3-ubyte": idx_bytes(x_test),
        "t10k-labels-idx1-ubyte": idx_bytes(y_test),
    }
    spec = {name: FileSpec(name, hashlib.md5(data).hexdigest()) for name, data in raw.items()}
    source = Source(
        name="tiny",
        description="tiny test set",
        credit="the tests",
        license="CC0",
        homepage="http://127.0.0.1/",
        class_names=("a", "b", "c", "d"),
        splits={
            "train": (spec["train-images-idx3-ubyte"], spec["train-labels-idx1-ubyte"]),
            "test": (spec["t10k-images-idx3-ubyte"], spec["t10k-labels-idx1-ubyte"]),
        },
        mirrors=(),
    )
    monkeypatch.setitem(SOURCES, "tiny", source)
    return TinySet(raw, source)


@pytest.fixture(scope="session")
def tiny_run():
    """A function that trains a small run on the bundled sample: tiny_run(path, "vae")."""
    from vaelab.config import DataConfig, ModelConfig, RunConfig, TrainConfig
    from vaelab.train import fit

    def train_tiny(path: Path, model: str, epochs: int = 1, classes=None, **model_options):
        config = RunConfig(
            DataConfig("mnist-sample", classes=classes, train_size=256),
            ModelConfig(model, **model_options),
            TrainConfig(epochs, batch_size=64, optimizer="adadelta" if model == "ae" else "adam"),
        )
        return fit(config, path, progress=False)

    return train_tiny


def write_digit_files(root: Path, normal: int | None = None, new: int = 400) -> Path:
    """The sample's training sevens (the first `normal`, default all 800) as 28x28 grey PNGs in
    `root`/normal/, and its first `new` test images as 56x56 colour PNGs in
    `root`/new/<digit>/, as a user's camera might give them; returns `root`."""
    from PIL import Image

    from vaelab.data import load

    train, test = load("mnist-sample", "train"), load("mnist-sample", "test")
    (root / "normal").mkdir(parents=True)
    for i in (train.labels == 7).nonzero().flatten()[:normal].tolist():
        Image.fromarray(train.images[i, 0].numpy()).save(root / "normal" / f"{i:04d}.png")
    for i in range(new):
        folder = root / "new" / str(int(test.labels[i]))
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(test.images[i, 0].numpy()).resize((56, 56)).convert("RGB")
        image.save(folder / f"{i:04d}.png")
    return root
