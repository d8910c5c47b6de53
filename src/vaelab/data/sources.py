"""The datasets vaelab knows by name, and where their files are looked for.

Checksums are MD5s of the *decompressed* IDX content, so a copy that was
re-compressed (as Debian and some mirrors do) is still recognised. Lookup
order: an explicit `data_dir`, then `$VAELAB_DATA_DIR`, then the user cache,
then system folders that distributions install to; each of the first three
holds one `<name>/` folder per dataset. An explicit `data_dir` must be an
existing folder: a mistyped one would otherwise fall through, unnoticed, to
another copy further down the order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from vaelab.errors import DatasetError

DATA_DIR_ENV = "VAELAB_DATA_DIR"
MIRRORS_ENV = "VAELAB_MIRRORS"
SAMPLE = "mnist-sample"
SAMPLE_FILE = "mnist_sample.npz"


@dataclass(frozen=True)
class FileSpec:
    """One IDX file: its official name (without `.gz`) and how to check it.

    `md5` is of the decompressed bytes; `gz_md5` of the official `.gz`, for
    datasets whose decompressed checksums are not established.
    """

    name: str
    md5: str | None = None
    gz_md5: str | None = None

    @property
    def remote(self) -> str:
        return self.name + ".gz"

    @property
    def ndim(self) -> int:
        """Dimensions of the array, from the name's `idx3`/`idx1` part."""
        return int(self.name.split("-idx")[1][0])


@dataclass(frozen=True)
class Source:
    """A named dataset: its files per split, where to download them and whom to credit."""

    name: str
    description: str
    credit: str
    license: str
    homepage: str
    class_names: tuple[str, ...]
    splits: dict[str, tuple[FileSpec, FileSpec]]
    mirrors: tuple[str, ...]
    system_dirs: tuple[Path, ...] = field(default=())

    @property
    def files(self) -> list[FileSpec]:
        return [spec for pair in self.splits.values() for spec in pair]


DIGITS = tuple(str(d) for d in range(10))

SOURCES: dict[str, Source] = {
    "mnist": Source(
        name="mnist",
        description="MNIST handwritten digits, 28x28 grayscale, 60,000 train / 10,000 test",
        credit="Yann LeCun, Corinna Cortes, Christopher J. C. Burges",
        license="CC BY-SA 3.0",
        homepage="http://yann.lecun.com/exdb/mnist/",
        class_names=DIGITS,
        splits={
            "train": (
                FileSpec("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb"),
                FileSpec("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624"),
            ),
            "test": (
                FileSpec("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
                FileSpec("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"),
            ),
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
    ),
    "fashion-mnist": Source(
        name="fashion-mnist",
        description="Fashion-MNIST clothing images, 28x28 grayscale, 60,000 train / 10,000 test",
        credit="Han Xiao, Kashif Rasul, Roland Vollgraf (Zalando Research)",
        license="MIT",
        homepage="https://github.com/zalandoresearch/fashion-mnist",
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),  # fmt: skip
        splits={
            "train": (
                FileSpec("train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
                FileSpec("train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9"),
            ),
            "test": (
                FileSpec("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a"),
                FileSpec("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965"),
            ),
        },
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),  # Debian: dataset-fashion-mnist
    ),
    # Only the MD5s of the official .gz files are established for KMNIST, so an
    # uncompressed or re-compressed copy is checked for structure, not checksum.
    "kmnist": Source(
        name="kmnist",
        description="Kuzushiji-MNIST cursive Japanese characters, 28x28 grayscale, 60,000 / 10,000",
        credit="Tarin Clanuwat et al., ROIS-DS Center for Open Data in the Humanities",
        license="CC BY-SA 4.0",
        homepage="https://github.com/rois-codh/kmnist",
        class_names=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        splits={
            "train": (
                FileSpec("train-images-idx3-ubyte", gz_md5="bdb82020997e1d708af4cf47b453dcf7"),
                FileSpec("train-labels-idx1-ubyte", gz_md5="e144d726b3acfaa3e44228e80efcd344"),
            ),
            "test": (
                FileSpec("t10k-images-idx3-ubyte", gz_md5="5c965bf0a639b31b8f53240b1b52f4d7"),
                FileSpec("t10k-labels-idx1-ubyte", gz_md5="7320c461ea6c1c855c0b718fb2a4b134"),
            ),
        },
        mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
    ),
}


def normalize(name: str) -> str:
    """Accept `Fashion_MNIST` and friends for `fashion-mnist`."""
    return name.strip().lower().replace("_", "-")


def cache_dir() -> Path:
    """The user cache, where downloads go unless a data dir is given."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vaelab"


def search_dirs(source: Source, data_dir: str | os.PathLike | None) -> list[Path]:
    """Every folder that may hold `source`'s files, in lookup order."""
    roots = [given_dir(source, data_dir), os.environ.get(DATA_DIR_ENV), cache_dir()]
    found = [Path(root) / source.name for root in roots if root]
    return found + list(source.system_dirs)


def given_dir(source: Source, data_dir: str | os.PathLike | None) -> Path | None:
    """The explicit data dir, refused unless it is a folder, so that a typo is reported
    instead of the files being read from wherever else they happen to be."""
    return checked_dir(source, Path(data_dir).expanduser()) if data_dir else None


def checked_dir(source: Source, path: Path) -> Path:
    """`path` if it is a folder; else an error naming it and saying what to do."""
    if path.is_dir():
        return path
    if path.exists():
        raise DatasetError(
            f"data dir {path} is not a folder; give the folder that holds `{source.name}/`"
        )
    raise DatasetError(
        f"data dir {path} does not exist; check the path, or run "
        f"`vaelab data fetch {source.name} --data-dir {path}` to put the files there"
    )


def download_dir(source: Source, data_dir: str | os.PathLike | None) -> Path:
    """Where downloads go: never next to data merely read (it may be read-only)."""
    return Path(data_dir or cache_dir()).expanduser() / source.name


def find_file(folder: Path, spec: FileSpec) -> Path | None:
    """The file for `spec` in `folder`, compressed or not."""
    for path in (folder / spec.remote, folder / spec.name):
        if path.is_file():
            return path
    return None


def mirrors(source: Source) -> list[str]:
    """Base URLs to try in order; `$VAELAB_MIRRORS` (comma-separated, each holding
    `<name>/` folders) replaces the official ones, e.g. for an internal mirror."""
    override = [b.strip().rstrip("/") for b in os.environ.get(MIRRORS_ENV, "").split(",")]
    if any(override):
        return [f"{base}/{source.name}/" for base in override if base]
    return list(source.mirrors)
