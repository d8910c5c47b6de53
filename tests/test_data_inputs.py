"""Bad input to the data layer: a data dir that is not there, fetching into a chosen folder,
16-bit images, and messages that say what took the images and how to hold some out."""

from __future__ import annotations

import errno
import gzip
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import test_data_named
from conftest import TinySet
from PIL import Image
from test_data_named import Server, listing

from vaelab.cli import main
from vaelab.config import DataConfig
from vaelab.data import fetch, list_datasets, load, prepare, read_images, verify
from vaelab.errors import DatasetError

IMAGES = "train-images-idx3-ubyte"
mirror = test_data_named.server  # the tiny set's mirror on 127.0.0.1, as a fixture here


def missing_dir_message(path: Path, name: str = "tiny") -> str:
    return (
        f"data dir {path} does not exist; check the path, or run "
        f"`vaelab data fetch {name} --data-dir {path}` to put the files there"
    )


def test_a_missing_data_dir_is_refused_not_skipped(
    tiny: TinySet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A complete copy on $VAELAB_DATA_DIR would be read if the typo were skipped."""
    tiny.write(tmp_path / "env" / "tiny")
    monkeypatch.setenv("VAELAB_DATA_DIR", str(tmp_path / "env"))
    typo = tmp_path / "typo"
    for call in (
        lambda: load("tiny", data_dir=typo),
        lambda: load("tiny", "test", data_dir=typo, download=False),
        lambda: verify("tiny", typo),
    ):
        with pytest.raises(DatasetError) as err:
            call()
        assert str(err.value) == missing_dir_message(typo)
    with pytest.raises(DatasetError) as err:
        list_datasets(typo)
    assert str(err.value) == missing_dir_message(typo, "mnist")  # the first one it looks for
    assert not typo.exists()


def test_a_data_dir_that_is_a_file_is_refused(tiny: TinySet, tmp_path: Path):
    tiny.write(tmp_path / "tiny")
    afile = tmp_path / "notes.txt"
    afile.write_text("not a folder")
    expected = f"data dir {afile} is not a folder; give the folder that holds `tiny/`"
    for call in (lambda: load("tiny", data_dir=afile), lambda: fetch("tiny", afile)):
        with pytest.raises(DatasetError) as err:
            call()
        assert str(err.value) == expected
    assert afile.read_text() == "not a folder"


def test_a_data_dir_is_expanded_from_tilde(
    tiny: TinySet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("HOME", str(tmp_path))
    tiny.write(tmp_path / "data" / "tiny")
    assert len(load("tiny", data_dir="~/data", download=False)) == 24


def test_the_bundled_sample_ignores_a_data_dir(isolated_data_env: Path, tmp_path: Path):
    nowhere = tmp_path / "nowhere"
    assert len(load("mnist-sample", data_dir=nowhere)) == 8000
    assert verify("mnist-sample", nowhere)[0].name == "mnist_sample.npz"
    assert (fetch("mnist-sample", nowhere) / "mnist_sample.npz").is_file()
    assert not nowhere.exists()


def test_fetch_copies_a_found_copy_into_a_new_data_dir(
    tiny: TinySet, mirror: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    env = tiny.write(tmp_path / "env" / "tiny")
    monkeypatch.setenv("VAELAB_DATA_DIR", str(tmp_path / "env"))
    new = tmp_path / "new" / "data"
    umask = os.umask(0o022)  # the usual umask, whatever runs the tests
    try:
        assert fetch("tiny", new, progress=False) == new / "tiny"
    finally:
        os.umask(umask)
    assert mirror.requests == []
    modes = {stat.S_IMODE(path.stat().st_mode) for path in (new / "tiny").iterdir()}
    assert modes == {0o644}  # readable by everyone sharing the folder, as a new file is
    for name in tiny.raw:
        assert (new / "tiny" / f"{name}.gz").read_bytes() == (env / f"{name}.gz").read_bytes()
    assert listing(new / "tiny") == sorted(f"{name}.gz" for name in tiny.raw)
    monkeypatch.delenv("VAELAB_DATA_DIR")
    assert len(load("tiny", data_dir=new, download=False)) == 24
    assert verify("tiny", new) == [new / "tiny" / f"{name}.gz" for name in tiny.raw]


def test_fetch_downloads_into_the_data_dir_what_no_folder_has(
    tiny: TinySet, mirror: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """One file found elsewhere is copied, one already there is kept, the rest downloaded."""
    tiny.write(tmp_path / "env" / "tiny", names=[IMAGES])
    monkeypatch.setenv("VAELAB_DATA_DIR", str(tmp_path / "env"))
    labels = "t10k-labels-idx1-ubyte"
    tiny.write(tmp_path / "mine" / "tiny", names=[labels], compress=False)
    folder = fetch("tiny", tmp_path / "mine", progress=False)
    assert folder == tmp_path / "mine" / "tiny"
    assert sorted(mirror.requests) == sorted(
        f"/tiny/{name}.gz" for name in tiny.raw if name not in (IMAGES, labels)
    )
    assert (folder / labels).read_bytes() == tiny.raw[labels]
    assert not (folder / f"{labels}.gz").exists()
    assert verify("tiny", tmp_path / "mine")
    assert listing(tmp_path / "env" / "tiny") == [f"{IMAGES}.gz"]


def test_fetch_names_a_damaged_copy_instead_of_copying_it(
    tiny: TinySet, mirror: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    env = tiny.write(tmp_path / "env" / "tiny")
    flipped = tiny.raw[IMAGES][:-1] + bytes([tiny.raw[IMAGES][-1] ^ 1])
    (env / f"{IMAGES}.gz").write_bytes(gzip.compress(flipped))
    monkeypatch.setenv("VAELAB_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(DatasetError, match="checksum mismatch") as err:
        fetch("tiny", tmp_path / "new", progress=False)
    assert str(err.value).startswith(f"{env / IMAGES}.gz: ")
    assert listing(tmp_path / "new" / "tiny") == []


def test_a_failed_copy_is_reported_and_leaves_no_partial_file(
    tiny: TinySet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    env = tiny.write(tmp_path / "env" / "tiny")
    monkeypatch.setenv("VAELAB_DATA_DIR", str(tmp_path / "env"))

    def full_disk(src: Path, dst: Path) -> None:
        Path(dst).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", full_disk)
    with pytest.raises(DatasetError) as err:
        fetch("tiny", tmp_path / "new")
    assert str(err.value) == (
        f"cannot copy {env / IMAGES}.gz into {tmp_path / 'new' / 'tiny'}: No space left on device"
    )
    assert listing(tmp_path / "new" / "tiny") == []


def test_fetch_says_when_the_data_dir_cannot_be_made(tiny: TinySet, tmp_path: Path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(DatasetError) as err:
        fetch("tiny", tmp_path / "afile" / "data")
    assert (
        str(err.value) == f"cannot create data dir {tmp_path / 'afile' / 'data'}: Not a directory"
    )


def test_fetch_offline_into_a_new_data_dir_says_where_it_looked(tiny: TinySet, tmp_path: Path):
    with pytest.raises(DatasetError, match="tiny not found .*could not download") as err:
        fetch("tiny", tmp_path / "new", progress=False)
    assert str(tmp_path / "new" / "tiny") in str(err.value) and "127.0.0.1:9" in str(err.value)
    assert listing(tmp_path / "new" / "tiny") == []


def test_cli_fetch_fills_the_data_dir_and_verify_refuses_a_typo(
    tiny: TinySet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    tiny.write(tmp_path / "env" / "tiny")
    monkeypatch.setenv("VAELAB_DATA_DIR", str(tmp_path / "env"))
    new = tmp_path / "newdata"
    assert main(["data", "fetch", "tiny", "--data-dir", str(new)]) == 0
    assert capsys.readouterr().out == f"tiny: files in {new / 'tiny'}\n"
    assert main(["data", "verify", "tiny", "--data-dir", str(tmp_path / "typo")]) == 1
    out = capsys.readouterr()
    assert out.out == "" and out.err == f"vaelab: error: {missing_dir_message(tmp_path / 'typo')}\n"
    (tmp_path / "empty").mkdir()  # a folder without the files: not passed on the env's copy
    assert main(["data", "verify", "tiny", "--data-dir", str(tmp_path / "empty")]) == 1
    assert "verify checks the copy under the data dir it is given" in capsys.readouterr().err
    assert main(["data", "verify", "tiny", "--data-dir", str(new)]) == 0


def digits() -> np.ndarray:
    """Four real digits (grey levels over the whole 0-255 range) as (4, 28, 28) uint8."""
    return load("mnist-sample").first(4).images[:, 0].numpy()


@pytest.mark.usefixtures("isolated_data_env")
@pytest.mark.parametrize("suffix, mode", [(".png", "I;16"), (".pgm", "I")])
def test_16_bit_grey_images_are_scaled_not_clipped(tmp_path: Path, suffix: str, mode: str):
    originals = digits()
    for i, digit in enumerate(originals):
        path = tmp_path / "set" / str(i) / f"digit{suffix}"
        path.parent.mkdir(parents=True)
        Image.fromarray(digit.astype(np.uint16) * 257).save(path)
        with Image.open(path) as image:
            assert image.mode == mode
    assert len(np.unique(originals)) > 100
    assert np.array_equal(load(tmp_path / "set").images[:, 0].numpy(), originals)
    images, _ = read_images([tmp_path / "set"], channels=3)
    assert np.array_equal(images[:, 1].numpy(), originals)


@pytest.mark.usefixtures("isolated_data_env")
def test_16_bit_full_range_maps_onto_8_bits(tmp_path: Path):
    ramp = np.array([[0, 255, 256, 32767, 65280, 65535]], dtype=np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    images, _ = read_images([tmp_path / "ramp.png"])
    assert images[0, 0, 0].tolist() == [0, 0, 1, 127, 255, 255]


@pytest.mark.usefixtures("isolated_data_env")
def test_a_held_out_fraction_that_leaves_too_few_images_is_named():
    with pytest.raises(DatasetError) as err:
        prepare(DataConfig("mnist-sample", train_size=256, validation=0.999))
    assert str(err.value) == (
        "cannot select 256 images: mnist-sample has 8000 training images, but holding out "
        "validation=0.999 took 7990 of them, leaving 10; lower the validation fraction or "
        "train_size (--validation, --train-size on the command line)"
    )
    with pytest.raises(DatasetError, match="has 1600 training images of classes 3, 5, but "):
        prepare(DataConfig("mnist-sample", classes=[3, 5], train_size=900, validation=0.5))
    train, _ = prepare(DataConfig("mnist-sample", train_size=10, validation=0.999))
    assert len(train) == 10


@pytest.mark.usefixtures("isolated_data_env")
def test_a_folder_without_test_split_says_how_to_hold_out(tmp_path: Path):
    (tmp_path / "set" / "a").mkdir(parents=True)
    Image.new("L", (4, 4)).save(tmp_path / "set" / "a" / "x.png")
    with pytest.raises(DatasetError) as err:
        load(tmp_path / "set", "test")
    assert str(err.value) == (
        f"{tmp_path / 'set'} has no test/ folder; use a held-out fraction for validation "
        "instead (validation=0.1; --validation 0.1 on the command line)"
    )


@pytest.mark.usefixtures("isolated_data_env")
@pytest.mark.parametrize(
    "values, dtype, expected",
    [
        ([0.0, 0.5, 1.0], np.float32, [0, 128, 255]),  # float images hold fractions of white
        ([0.0, 100.0, 255.0], np.float32, [0, 100, 255]),
        ([0, 100, 255], np.int32, [0, 100, 255]),  # 8-bit values kept in a 32-bit image
        ([0, 25700, 65535], np.int32, [0, 100, 255]),  # 16-bit values in a 32-bit image
    ],
)
def test_32_bit_grey_images_are_read_by_their_values(
    tmp_path: Path, values: list, dtype: type, expected: list[int]
):
    Image.fromarray(np.array([values], dtype=dtype)).save(tmp_path / "wide.tif")
    with Image.open(tmp_path / "wide.tif") as image:
        assert image.mode == ("F" if dtype is np.float32 else "I")
    images, _ = read_images([tmp_path / "wide.tif"])
    assert images[0, 0, 0].tolist() == expected


@pytest.mark.usefixtures("isolated_data_env")
def test_a_32_bit_image_beyond_16_bits_is_named(tmp_path: Path):
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(tmp_path / "deep.tif")
    with pytest.raises(
        DatasetError,
        match=r"deep\.tif: unreadable image \(32-bit integer grey "
        r"values from 0 to 70000, which fit no 8- or 16-bit range",
    ):
        read_images([tmp_path / "deep.tif"])
