"""`vaelab plot` and `vaelab.plot` refuse bad input in one line naming the setting, before
writing anything, and always say which file they wrote."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from vaelab import plotting
from vaelab.cli import build_parser, main
from vaelab.errors import RunError, SettingError
from vaelab.plotting import plot


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory, tiny_run):
    return tiny_run(tmp_path_factory.mktemp("runs") / "vae", "vae")


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory, tiny_run):
    return tiny_run(tmp_path_factory.mktemp("runs") / "cvae", "cvae", latent_dim=2)


def files(*folders: Path) -> set[Path]:
    return {path for folder in folders for path in folder.rglob("*")}


GRID = "is out of range: choose 1 to 100 images per side of the grid"
WALK = "is out of range: choose 2 to 1000 frames of the walk"
RECONSTRUCTIONS = "is out of range: choose 1 to 100 test images to reconstruct"
RANGE = "is not a positive number up to 1e+06: the figure spans z in [-R, R]; choose e.g. 3"
POINT = "is not a latent point: give numbers up to 1e+06 in size, one per latent dimension"
SEED = (
    "is out of range: choose a whole number from 0 to 2**32 - 1 (torch's generator keeps 32 "
    "bits of a seed, so others repeat those seeds' draws)"
)
STATIC = ".png, .pdf, .svg, .svgz, .eps, .ps, .jpg, .jpeg, .tif, .tiff, .webp or .gif"

REFUSED = [
    ("manifold", {"size": 1000}, f"size 1000 {GRID}"),
    ("samples", {"size": 0}, f"size 0 {GRID}"),
    ("interpolate", {"steps": 100000}, f"steps 100000 {WALK}"),
    ("interpolate", {"steps": 1}, f"steps 1 {WALK}"),
    ("reconstructions", {"count": 101}, f"count 101 {RECONSTRUCTIONS}"),
    ("manifold", {"limit": float("nan")}, f"limit nan {RANGE}"),
    ("scatter", {"limit": float("inf")}, f"limit inf {RANGE}"),
    ("manifold", {"limit": -3.0}, f"limit -3 {RANGE}"),
    ("manifold", {"limit": 1e308}, f"limit 1e+308 {RANGE}"),
    (
        "interpolate",
        {"images": (1, 2), "start": [0.0, 0.0], "end": [1.0, 1.0]},
        "a walk runs between two test images (images) or two latent points (start, end), not "
        "both; give one pair",
    ),
    ("interpolate", {"start": [float("nan"), 0.0], "end": [1.0, 1.0]}, f"start nan 0 {POINT}"),
    ("samples", {"seed": 2**64}, f"seed 18446744073709551616 {SEED}"),
]


@pytest.mark.parametrize(("kind", "options", "message"), REFUSED)
def test_python_callers_are_refused_naming_the_parameter(vae_run, tmp_path, kind, options, message):
    before = files(vae_run.path, tmp_path)
    with pytest.raises(SettingError) as refused:
        plot(vae_run, kind, tmp_path / "figure", **options)
    assert str(refused.value) == message
    assert files(vae_run.path, tmp_path) == before


CLI_REFUSED = [
    ("manifold", ["--size", "1000"], f"--size 1000 {GRID}"),
    ("interpolate", ["--steps", "100000"], f"--steps 100000 {WALK}"),
    ("reconstructions", ["--count", "500"], f"--count 500 {RECONSTRUCTIONS}"),
    ("manifold", ["--range", "nan"], f"--range nan {RANGE}"),
    ("manifold", ["--range", "inf"], f"--range inf {RANGE}"),
    ("manifold", ["--range", "0"], f"--range 0 {RANGE}"),
    ("interpolate", ["--from", "0", "0", "--to", "inf", "1"], f"--to inf 1 {POINT}"),
    ("samples", ["--seed", "99999999999999999999999"], f"--seed 99999999999999999999999 {SEED}"),
]


@pytest.mark.parametrize(("kind", "flags", "message"), CLI_REFUSED)
def test_the_cli_names_the_flag_typed(vae_run, tmp_path, capsys, kind, flags, message):
    before = files(vae_run.path, tmp_path)
    assert main(["plot", str(vae_run.path), kind, "--out", str(tmp_path / "f"), *flags]) == 1
    assert capsys.readouterr().err == f"vaelab: error: {message}\n"
    assert files(vae_run.path, tmp_path) == before


@pytest.mark.parametrize("label", ["12", "-1", "10"])
@pytest.mark.parametrize("kind", ["samples", "manifold", "interpolate"])
def test_a_label_the_model_lacks_is_named_with_its_classes(cvae_run, tmp_path, capsys, kind, label):
    before = files(cvae_run.path, tmp_path)
    args = ["plot", str(cvae_run.path), kind, "--label", label, "--out", str(tmp_path / "f")]
    assert main(args) == 1
    expected = f"vaelab: error: --label {label} is not a class of this model: choose 0 to 9\n"
    assert capsys.readouterr().err == expected
    assert files(cvae_run.path, tmp_path) == before


def test_a_label_of_the_model_still_draws(cvae_run, tmp_path):
    path = plot(cvae_run, "samples", tmp_path / "nine.png", size=2, label=9)
    assert path == tmp_path / "nine.png" and path.exists()


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        ("scatter", "out.txt", f"the scatter figure cannot be written as .txt; choose {STATIC}, "
         "or no suffix for .png"),
        ("interpolate", "walk.txt", "the interpolate figure cannot be written as .txt; choose "
         ".gif, .png or .webp, or no suffix for .gif"),
        ("loss", "loss.pgf", f"the loss figure cannot be written as .pgf; choose {STATIC}, or no "
         "suffix for .png"),
    ],
)  # fmt: skip
def test_a_suffix_the_kind_cannot_write_is_refused(vae_run, tmp_path, capsys, kind, name, message):
    out = tmp_path / name
    before = files(vae_run.path, tmp_path)
    assert main(["plot", str(vae_run.path), kind, "--out", str(out)]) == 1
    assert capsys.readouterr().err == f"vaelab: error: --out {out}: {message}\n"
    assert files(vae_run.path, tmp_path) == before


@pytest.mark.parametrize(
    ("kind", "out", "written"),
    [
        ("loss", "noext", "noext.png"),
        ("interpolate", "walk", "walk.gif"),
        ("loss", ".", "loss.png"),
        ("loss", "folder", "folder/loss.png"),
        ("interpolate", "new/", "new/interpolation.gif"),
        ("loss", "curves.PDF", "curves.PDF"),
        ("interpolate", "walk.png", "walk.png"),
    ],
)
def test_the_path_printed_is_the_file_written(
    vae_run, tmp_path, monkeypatch, capsys, kind, out, written
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    before = files(vae_run.path)
    steps = ["--steps", "2"] if kind == "interpolate" else []
    assert main(["plot", str(vae_run.path), kind, "--out", out, *steps]) == 0
    assert capsys.readouterr().out == f"wrote {Path(written)}\n"
    parts = Path(written).parts
    made = {tmp_path.joinpath(*parts[: i + 1]) for i in range(len(parts))}
    assert files(tmp_path) == {tmp_path / "folder", *made}
    assert files(vae_run.path) == before


def test_a_file_given_as_the_run_is_named_as_a_file(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("not a run")
    message = f"run folder {afile} is a file, not a run folder"
    with pytest.raises(RunError) as refused:
        plot(afile, "loss")
    assert str(refused.value) == message
    assert main(["plot", str(afile), "loss"]) == 1
    assert capsys.readouterr().err == f"vaelab: error: {message}\n"
    assert files(tmp_path) == {afile}


def test_the_help_states_the_limits_the_api_keeps():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in commands.choices["plot"]._actions}
    assert f"N at most {plotting.MAX_SIZE}" in helps["size"]
    assert f"2 to {plotting.MAX_STEPS}" in helps["steps"]
    assert f"at most {plotting.MAX_COUNT}" in helps["count"]
    assert "positive and finite" in helps["limit"]


@pytest.mark.parametrize(
    ("kind", "flags", "message"),
    [
        ("manifold", ["--steps", "5"], "the manifold figure does not read --steps (it reads "
         "--size, --range, --dims and --label): leave it out"),
        ("scatter", ["--seed", "3", "--count", "4"], "the scatter figure does not read --count "
         "and --seed (it reads --range): leave them out"),
        ("loss", ["--size", "3"], "the loss figure does not read --size (it reads no option): "
         "leave it out"),
    ],
)  # fmt: skip
def test_a_flag_the_kind_does_not_read_is_refused(vae_run, tmp_path, capsys, kind, flags, message):
    before = files(vae_run.path, tmp_path)
    assert main(["plot", str(vae_run.path), kind, "--out", str(tmp_path / "f"), *flags]) == 1
    assert capsys.readouterr().err == f"vaelab: error: {message}\n"
    assert files(vae_run.path, tmp_path) == before
