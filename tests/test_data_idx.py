"""IDX parsing and every kind of damaged file, as a user meets them through `load`."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from conftest import TinySet, idx_bytes

from vaelab.data import idx, load, verify
from vaelab.errors import DatasetError

pytestmark = pytest.mark.usefixtures("isolated_data_env")

IMAGES = "train-images-idx3-ubyte"
LABELS = "train-labels-idx1-ubyte"


def test_parse_round_trips_shape_and_values():
    array = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    np.testing.assert_array_equal(idx.parse(idx_bytes(array), "f", 3), array)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00\x00\x09\x03" + bytes(12), "bad magic"),
        (b"PK\x03\x04", "bad magic"),
        (b"", "bad magic"),
        (idx_bytes(np.zeros((2, 3), np.uint8)), "has 2 dimensions, expected 3"),
        (idx_bytes(np.zeros((2, 3, 3), np.uint8))[:-1], "truncated"),
        (idx_bytes(np.zeros((2, 3, 3), np.uint8))[:10], "truncated header"),
        (idx_bytes(np.zeros((2, 3, 3), np.uint8)) + b"\0", "trailing bytes"),
    ],
)
def test_parse_rejects_bad_files_naming_them(data, message):
    with pytest.raises(DatasetError, match=message) as err:
        idx.parse(data, "some/file", 3)
    assert "some/file" in str(err.value)


def test_load_reads_gzipped_and_plain_files(tiny: TinySet, tmp_path):
    tiny.write(tmp_path / "gz" / "tiny")
    tiny.write(tmp_path / "plain" / "tiny", compress=False)
    for root in ("gz", "plain"):
        data = load("tiny", data_dir=tmp_path / root, download=False)
        assert data.images.shape == (24, 1, 5, 5)
        assert data.images.dtype == torch.uint8 and data.labels.dtype == torch.int64
        assert data.labels.tolist() == [i % 4 for i in range(24)]
        assert data.class_names == ["a", "b", "c", "d"]
    assert len(load("tiny", "test", data_dir=tmp_path / "gz", download=False)) == 8


def corrupt(tiny: TinySet, kind: str) -> tuple[str, bytes]:
    """A damaged version of one tiny file: (file name on disk, bytes)."""
    images = tiny.raw[IMAGES]
    if kind == "corrupt gzip":
        return IMAGES + ".gz", tiny.gz(IMAGES)[:-20]
    if kind == "bad magic":
        return IMAGES + ".gz", gzip.compress(b"\x00\x00\x0d\x03" + images[4:])
    if kind == "truncated":
        return IMAGES + ".gz", gzip.compress(images[:-7])
    if kind == "count mismatch":
        return LABELS + ".gz", gzip.compress(idx_bytes(np.zeros(23, np.uint8)))
    if kind == "wrong dims":
        return IMAGES + ".gz", gzip.compress(idx_bytes(np.zeros((24, 25), np.uint8)))
    assert kind == "checksum"
    flipped = images[:-1] + bytes([images[-1] ^ 1])
    return IMAGES + ".gz", gzip.compress(flipped)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("corrupt gzip", "corrupt gzip"),
        ("bad magic", "bad magic number"),
        ("truncated", "truncated"),
        ("count mismatch", "checksum mismatch"),
        ("wrong dims", "has 2 dimensions, expected 3"),
        ("checksum", "checksum mismatch"),
    ],
)
def test_damaged_file_is_named_by_load_and_verify(tiny: TinySet, tmp_path, kind, message):
    folder = tiny.write(tmp_path / "tiny")
    name, data = corrupt(tiny, kind)
    (folder / name).write_bytes(data)
    for check in (lambda: load("tiny", data_dir=tmp_path), lambda: verify("tiny", tmp_path)):
        with pytest.raises(DatasetError, match=message) as err:
            check()
        assert str(folder / name) in str(err.value)


def test_count_mismatch_names_both_files():
    """A structurally good labels file of the wrong length (its checksum also fails)."""
    images, labels = np.zeros((3, 2, 2), np.uint8), np.zeros(2, np.uint8)
    with pytest.raises(DatasetError, match="images holds 3 images but labels 2 labels"):
        idx.images_and_labels(images, labels, "images", "labels")


def test_corrupt_gzip_message():
    with pytest.raises(DatasetError, match="f.gz: corrupt gzip"):
        idx.decompress(b"\x1f\x8bnot really gzip", "f.gz")
