"""Loading a user's own data: folders of class subfolders and `.npz` archives."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vaelab.data import load, read_images
from vaelab.errors import DatasetError

pytestmark = pytest.mark.usefixtures("isolated_data_env")


def save_image(path: Path, size: tuple[int, int] = (6, 4), mode: str = "L", value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, 0, 255)).save(path)


def test_flat_folder_of_classes(tmp_path: Path):
    for label, name in enumerate(["10", "2", "9"]):
        for i in range(label + 1):
            save_image(tmp_path / "digits" / name / f"{i}.png", value=40 * label + i)
    (tmp_path / "digits" / "2" / "notes.txt").write_text("not an image")
    data = load(tmp_path / "digits")
    assert data.class_names == ["2", "9", "10"]  # numeric order, not string order
    assert data.labels.tolist() == [0, 0, 1, 1, 1, 2]
    assert data.images.shape == (6, 1, 4, 6) and data.images.dtype == torch.uint8
    assert data.images[0, 0, 0, 0] == 40 and data.name == "digits"
    with pytest.raises(DatasetError, match="no test/ folder"):
        load(tmp_path / "digits", "test")


def test_train_and_test_folders_share_class_ids(tmp_path: Path):
    save_image(tmp_path / "set" / "train" / "cat" / "a.png")
    save_image(tmp_path / "set" / "train" / "dog" / "a.png")
    save_image(tmp_path / "set" / "test" / "dog" / "b.png")
    assert load(tmp_path / "set", "test").labels.tolist() == [1]
    assert load(tmp_path / "set").class_names == ["cat", "dog"]


def test_rgb_is_kept_and_grayscale_widened_to_match(tmp_path: Path):
    save_image(tmp_path / "c" / "red" / "a.png", mode="RGB", value=200)
    save_image(tmp_path / "c" / "gray" / "b.png", value=7)
    data = load(tmp_path / "c")
    assert data.images.shape == (2, 3, 4, 6)
    assert data.images[0, :, 0, 0].tolist() == [7, 7, 7]  # gray sorts first
    assert data.images[1, :, 0, 0].tolist() == [200, 0, 255]


def test_mixed_sizes_need_an_image_size(tmp_path: Path):
    save_image(tmp_path / "m" / "a" / "small.png", size=(6, 4))
    save_image(tmp_path / "m" / "b" / "large.png", size=(10, 12))
    with pytest.raises(DatasetError, match="large.png is 10x12.*image size"):
        load(tmp_path / "m")
    assert load(tmp_path / "m", image_size=8).images.shape == (2, 1, 8, 8)


def test_unreadable_image_is_named(tmp_path: Path):
    save_image(tmp_path / "u" / "a" / "good.png")
    (tmp_path / "u" / "a" / "broken.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(DatasetError, match=r"broken\.png: unreadable image"):
        load(tmp_path / "u")


def test_folder_without_classes_or_images(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no class subfolders"):
        load(tmp_path / "empty")
    (tmp_path / "empty" / "a").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        load(tmp_path / "empty")


@pytest.mark.parametrize(
    "shape, transpose",
    [
        ((5, 4, 3), None),
        ((5, 4, 3, 1), (0, 3, 1, 2)),
        ((5, 4, 3, 3), (0, 3, 1, 2)),
        ((5, 3, 4, 5), None),
    ],
)
def test_npz_layouts(tmp_path: Path, shape, transpose):
    x = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 2, 1, 0]))
    data = load(tmp_path / "d.npz")
    expected = x[:, None] if transpose is None and x.ndim == 3 else x
    expected = expected.transpose(transpose) if transpose else expected
    np.testing.assert_array_equal(data.images.numpy(), expected)
    assert data.class_names == ["0", "1", "2"] and data.name == "d"


def test_npz_floats_test_split_class_names_and_resize(tmp_path: Path):
    x = np.full((4, 6, 6), 0.5, dtype=np.float32)
    np.savez(
        tmp_path / "f.npz",
        x=x,
        y=np.arange(4),
        x_test=x[:2],
        y_test=np.array([3, 3]),
        class_names=np.array(["a", "b", "c", "d"]),
    )
    data = load(tmp_path / "f.npz", image_size=3)
    assert data.images.shape == (4, 1, 3, 3) and data.images.unique().tolist() == [128]
    assert data.class_names == ["a", "b", "c", "d"]
    assert load(tmp_path / "f.npz", "test").labels.tolist() == [3, 3]


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"y": np.zeros(2, int)}, "no x array"),
        ({"x": np.zeros((2, 3, 3), np.uint8)}, "no y array"),
        ({"x": np.zeros((2, 3, 3), np.uint8), "y": np.zeros(3, int)}, "2 images but y 3"),
        ({"x": np.zeros((2, 9), np.uint8), "y": np.zeros(2, int)}, r"shape \(2, 9\)"),
        ({"x": np.zeros((2, 5, 5, 5), np.uint8), "y": np.zeros(2, int)}, "C 1 or 3"),
        ({"x": np.full((2, 3, 3), 2.0), "y": np.zeros(2, int)}, r"outside \[0, 1\]"),
        ({"x": np.zeros((2, 3, 3), np.int32), "y": np.zeros(2, int)}, "dtype int32"),
        ({"x": np.zeros((2, 3, 3), np.uint8), "y": np.zeros(2)}, "1-D integer"),
        ({"x": np.zeros((2, 3, 3), np.uint8), "y": np.array([0, -1])}, "negative label"),
        ({"x": np.zeros((0, 3, 3), np.uint8), "y": np.zeros(0, int)}, "no images"),
    ],
)
def test_npz_errors_name_the_file_and_problem(tmp_path: Path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=message) as err:
        load(path)
    assert str(path) in str(err.value)


def test_npz_without_test_split_and_corrupt_archive(tmp_path: Path):
    np.savez(tmp_path / "a.npz", x=np.zeros((2, 3, 3), np.uint8), y=np.zeros(2, int))
    with pytest.raises(
        DatasetError,
        match="no x_test or y_test array for the test split .*"
        "or use a held-out fraction for validation instead \\(validation=0.1",
    ):
        load(tmp_path / "a.npz", "test")
    (tmp_path / "b.npz").write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / "c.npz").write_text("not an archive")
    for name in ("b.npz", "c.npz"):
        with pytest.raises(DatasetError, match=rf"{name[0]}\.npz: not a \.npz archive.*savez"):
            load(tmp_path / name)
    with zipfile.ZipFile(tmp_path / "d.npz", "w") as archive:
        archive.writestr("x.npy", b"not an array")
        archive.writestr("y.npy", b"not an array")
    with pytest.raises(DatasetError, match=r"d\.npz: x is not a NumPy array"):
        load(tmp_path / "d.npz")


def test_missing_path_is_an_unknown_dataset(tmp_path: Path):
    with pytest.raises(DatasetError, match="unknown dataset .*nor an existing folder"):
        load(tmp_path / "nowhere.npz")


def test_image_files_and_folders_are_read_in_order_resized_and_made_grey_or_rgb(tmp_path: Path):
    save_image(tmp_path / "new" / "b" / "2.png", size=(8, 8), value=10)
    save_image(tmp_path / "new" / "a.jpg", size=(16, 16), mode="RGB", value=0)
    save_image(tmp_path / "one.png", size=(4, 4), value=200)
    (tmp_path / "new" / "notes.txt").write_text("not an image")
    images, files = read_images([tmp_path / "new", tmp_path / "one.png"], image_size=4)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "new/a.jpg", "new/b/2.png", "one.png"
    ]  # fmt: skip
    assert images.shape == (3, 3, 4, 4) and images.dtype == torch.uint8  # one has colour: RGB
    assert images[2].unique().tolist() == [200]  # a grey image, widened to RGB
    grey, _ = read_images([tmp_path / "new"], image_size=4, channels=1)
    assert grey.shape == (2, 1, 4, 4)
    (tmp_path / "new" / "folder.png").mkdir()  # not files, and not images: passed over
    save_image(tmp_path / "new" / "__MACOSX" / "._a.jpg")
    save_image(tmp_path / "new" / ".hidden.png")
    alone, found = read_images(str(tmp_path / "new"), image_size=4)  # one path, not a list
    assert len(alone) == 2 and [f.name for f in found] == ["a.jpg", "2.png"]
    with pytest.raises(
        DatasetError, match="images differ in size: .*a.jpg is 16x16, .*2.png is 8x8"
    ):
        read_images([tmp_path / "new"])


def test_reading_image_files_names_the_path_at_fault(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    for path, message in [
        ("missing", "missing: no such file or folder"),
        ("empty", r"empty: no images \(.bmp, .gif"),
        ("notes.txt", r"notes.txt: not an image file \(expected .bmp"),
        ("broken.png", "broken.png: unreadable image"),
    ]:
        with pytest.raises(DatasetError, match=message):
            read_images([tmp_path / path])
    with pytest.raises(DatasetError, match="no images given"):
        read_images([])
    with pytest.raises(DatasetError, match="channels must be 1 .grey. or 3 .RGB., got 2"):
        read_images([tmp_path], channels=2)
