"""Selecting images (`Dataset`), `prepare` from a `DataConfig`, the bundled sample, real MNIST."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vaelab.config import DataConfig
from vaelab.data import Dataset, check_subset, fetch, load, prepare, verify
from vaelab.errors import DatasetError, SettingError

pytestmark = pytest.mark.usefixtures("isolated_data_env")


def make(counts: list[int]) -> Dataset:
    """Images whose single pixel holds their file position; `counts[c]` images of class c,
    interleaved so that file order and class order differ."""
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))]
    images = torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1)
    return Dataset(images, labels, "toy", [f"c{c}" for c in range(len(counts))])


def positions(data: Dataset) -> list[int]:
    return data.images.flatten().tolist()


def test_float_is_unit_range_and_shape_preserving():
    data = Dataset(
        torch.tensor([0, 51, 255], dtype=torch.uint8).view(3, 1, 1, 1),
        torch.zeros(3, dtype=torch.int64),
        "t",
        ["0"],
    )
    assert data.float().dtype == torch.float32 and data.float().shape == (3, 1, 1, 1)
    assert data.float().flatten().tolist() == pytest.approx([0.0, 0.2, 1.0])
    assert data.images.dtype == torch.uint8  # float() copies, the uint8 stays


def test_with_classes_keeps_label_ids_and_file_order():
    data = make([5, 5, 5])
    picked = data.with_classes([2, 0])
    assert set(picked.labels.tolist()) == {0, 2} and len(picked) == 10
    assert positions(picked) == sorted(positions(picked))
    with pytest.raises(DatasetError, match="empty class list.*available: 0 \\(c0\\)"):
        data.with_classes([])
    with pytest.raises(DatasetError, match="no class 7; available: 0 \\(c0\\), 1 \\(c1\\)"):
        data.with_classes([1, 7])


def test_first_takes_file_order():
    data = make([4, 4])
    assert positions(data.first(3)) == [0, 1, 2]
    with pytest.raises(DatasetError, match="cannot select 9 images: toy has 8"):
        data.first(9)


def test_stratified_is_balanced_deterministic_and_in_file_order():
    data = make([30, 30, 30])
    picked = data.stratified(10, seed=3)
    assert torch.bincount(picked.labels).tolist() == [4, 3, 3]
    assert positions(picked) == sorted(positions(picked))
    assert positions(data.stratified(10, seed=3)) == positions(picked)
    assert positions(data.stratified(10, seed=4)) != positions(picked)
    with pytest.raises(DatasetError, match="class 2 \\(c2\\) has 2 images"):
        make([30, 30, 2]).stratified(30, seed=0)


def test_split_is_stratified_disjoint_and_deterministic():
    data = make([20, 40])
    kept, held = data.split(0.25, seed=0)
    assert torch.bincount(held.labels).tolist() == [5, 10]
    assert sorted(positions(kept) + positions(held)) == list(range(60))
    assert positions(data.split(0.25, seed=0)[1]) == positions(held)
    for bad in (0, 1, 1.5):
        with pytest.raises(DatasetError, match="between 0 and 1"):
            data.split(bad, seed=0)
    with pytest.raises(DatasetError, match="leaves a side empty"):
        make([1, 1]).split(0.1, seed=0)


def test_resized_changes_only_the_pixels():
    data = Dataset(
        torch.full((2, 3, 4, 4), 200, dtype=torch.uint8), torch.tensor([0, 1]), "t", ["a", "b"]
    )
    small = data.resized(2)
    assert small.images.shape == (2, 3, 2, 2) and small.images.unique().tolist() == [200]
    assert data.resized(4) is data


def test_sample_loads_offline_balanced():
    train, test = load("mnist-sample"), load("mnist-sample", "test")
    assert train.images.shape == (8000, 1, 28, 28) and test.images.shape == (2000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert torch.bincount(train.labels).tolist() == [800] * 10
    assert torch.bincount(test.labels).tolist() == [200] * 10
    assert train.class_names == [str(d) for d in range(10)]
    assert 0 < train.float().mean() < 0.5  # dark background, bright strokes
    assert verify("mnist-sample") == [fetch("mnist-sample") / "mnist_sample.npz"]


def test_prepare_with_test_validation():
    train, val = prepare(DataConfig(classes=[3, 5], train_size=100, subset="stratified"))
    assert torch.bincount(train.labels, minlength=6)[[3, 5]].tolist() == [50, 50]
    assert set(val.labels.tolist()) == {3, 5} and len(val) == 400


def test_prepare_holds_out_before_trimming():
    train, val = prepare(DataConfig(validation=0.1, train_size=1000))
    assert len(train) == 1000 and len(val) == 800
    train_pixels = {bytes(image.numpy()) for image in train.images}
    assert not any(bytes(image.numpy()) in train_pixels for image in val.images[:50])
    assert prepare(DataConfig(validation="0.1", train_size=1000))[0].labels.equal(train.labels)


def test_prepare_rejects_bad_options():
    for config, message in [
        (DataConfig(subset="random", train_size=10), "subset must be"),
        (DataConfig(validation="holdout"), "validation must be 'test' or a fraction"),
        (DataConfig(classes=[]), "empty class list"),
    ]:
        with pytest.raises(DatasetError, match=message):
            prepare(config)
    with pytest.raises(SettingError, match="image_size 0 is not a side the models can take"):
        prepare(DataConfig(image_size=0))


def test_prepare_resizes(tmp_path: Path):
    train, val = prepare(DataConfig(image_size=14, train_size=10))
    assert train.images.shape == (10, 1, 14, 14) and val.images.shape[1:] == (1, 14, 14)


def test_full_mnist_from_the_data_dir(mnist_dir: Path):
    before = sorted(p.name for p in (mnist_dir / "mnist").iterdir())
    train = load("mnist", data_dir=mnist_dir, download=False)
    test = load("mnist", "test", data_dir=mnist_dir, download=False)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    expected = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(train.labels).tolist() == expected
    assert torch.bincount(test.labels).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]
    assert train.labels[:5].tolist() == [5, 0, 4, 1, 9]  # the famous first digits
    assert sorted(p.name for p in (mnist_dir / "mnist").iterdir()) == before


def test_a_subset_rule_with_no_train_size_to_pick_is_refused():
    with pytest.raises(SettingError, match="subset stratified says which train_size images"):
        check_subset("stratified", None)
    check_subset("stratified", 100)
    check_subset("first", None)
