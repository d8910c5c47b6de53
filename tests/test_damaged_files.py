"""Files of runs and results folders cut short by a crash or edited by hand: each is named
with what to do, never a traceback; a run's folder is found again from anywhere."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from vaelab.cli import main
from vaelab.data import load
from vaelab.errors import RunError
from vaelab.jsonfiles import read_json, read_json_lines
from vaelab.run import Run


def test_a_json_file_that_is_not_an_object_is_named_with_the_remedy(tmp_path):
    path = tmp_path / "settings.json"
    for text, held in [('{"a": 1', "not valid JSON"), ("[]", "it holds a list"),
                       ("null", "it holds a null"), ("\udcff{", "not valid JSON")]:  # fmt: skip
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        with pytest.raises(RunError, match=f"^{path} is damaged \\({held}.*; use another --out$"):
            read_json(path, "use another --out")
    path.write_text('{"a": 1}')
    assert read_json(path, "unused") == {"a": 1}


def test_a_metrics_line_cut_short_by_a_crash_is_left_out_and_any_other_is_named(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epoch": 3, "train_lo')
    assert read_json_lines(path) == [{"epoch": 1}, {"epoch": 2}]
    path.write_text('{"epoch": 1}\n{"epoch": 2, "train\n{"epoch": 3}\n')
    with pytest.raises(RunError, match="metrics.jsonl, line 2, is damaged .*; delete that line"):
        read_json_lines(path)
    path.write_text('{"epoch": 1}\n\n{"epoch": 2, "train\n')  # whole lines: an edit, not a crash
    with pytest.raises(RunError, match="metrics.jsonl, line 3, is damaged"):
        read_json_lines(path)
    path.write_bytes(b'{"epoch": 1}\n\xff\xfe\n')
    with pytest.raises(RunError, match="metrics.jsonl is damaged \\(not text"):
        read_json_lines(path)


@pytest.fixture
def tiny_run_copy(tmp_path) -> Path:
    out = tmp_path / "run"
    args = ["train", "ae", "--dataset", "mnist-sample", "--train-size", "128", "--epochs", "2"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    return out


def test_a_run_with_a_torn_metrics_line_plots_and_resumes(tiny_run_copy, capsys):
    with open(tiny_run_copy / "metrics.jsonl", "a") as metrics:
        metrics.write('{"epoch": 3, "train_loss": 0.2')  # the crash came mid-append
    assert main(["plot", str(tiny_run_copy), "loss"]) == 0
    args = ["train", "ae", "--out", str(tiny_run_copy), "--resume", "--epochs", "3", "--quiet"]
    assert main(args) == 0
    assert [row["epoch"] for row in Run(tiny_run_copy).metrics()] == [1, 2, 3]


@pytest.mark.parametrize(
    "text, message",
    [
        ("[]", "it holds a list, not a JSON object"),
        ('{"train": {}}', "has no data or model section"),
    ],
)
def test_a_damaged_config_is_one_line(tiny_run_copy, capsys, text, message):
    (tiny_run_copy / "config.json").write_text(text)
    assert main(["eval", str(tiny_run_copy)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"vaelab: error: {tiny_run_copy / 'config.json'}") and message in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "section, field, value, message",
    [
        ("model", "latent_dim", "two", "model.latent_dim is 'two', not of type int | None"),
        ("data", "classes", "7", "data.classes is '7', not of type list[int] | None"),
        ("train", "epochs", 3.5, "train.epochs is 3.5, not of type int"),
    ],
)
def test_a_config_field_of_the_wrong_type_is_named(
    tiny_run_copy, capsys, section, field, value, message
):
    config = json.loads((tiny_run_copy / "config.json").read_text())
    config[section][field] = value
    (tiny_run_copy / "config.json").write_text(json.dumps(config))
    assert main(["eval", str(tiny_run_copy)]) == 1
    assert capsys.readouterr().err == (
        f"vaelab: error: {tiny_run_copy / 'config.json'}: config field {message}; the run "
        "folder is damaged\n"
    )


def test_a_config_section_that_is_no_object_is_named(tiny_run_copy, capsys):
    config = json.loads((tiny_run_copy / "config.json").read_text())
    config["train"] = 5
    (tiny_run_copy / "config.json").write_text(json.dumps(config))
    assert main(["eval", str(tiny_run_copy)]) == 1
    err = capsys.readouterr().err
    assert err.endswith("config.json: config section train is 5, not an object\n")


def test_a_config_field_no_vaelab_knows_is_named_with_its_file(tiny_run_copy, capsys):
    config = json.loads((tiny_run_copy / "config.json").read_text())
    config["model"]["latnet_dim"] = 3
    (tiny_run_copy / "config.json").write_text(json.dumps(config))
    assert main(["eval", str(tiny_run_copy)]) == 1
    assert capsys.readouterr().err == (
        f"vaelab: error: {tiny_run_copy / 'config.json'}: config has an unknown field "
        "'latnet_dim'; the run folder is damaged, or was written by another vaelab\n"
    )


def test_a_damaged_result_of_a_sweep_is_named_with_what_to_do(tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["bench", "oneclass", "--dataset", "mnist-sample", "--classes", "0", "--seeds", "1",
            "--epochs", "1", "--train-size", "64", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    [result] = (out / "runs").glob("*/result-*.json")
    result.write_text('{"class": 0, "au')
    capsys.readouterr()
    assert main(args) == 1
    assert capsys.readouterr().err == (
        f"vaelab: error: {result} is damaged (not valid JSON: Unterminated string starting at: "
        "line 1 column 14 (char 13)); delete it and run again: that result is computed again\n"
    )
    result.unlink()
    (out / "settings.json").write_text("")
    assert main(args) == 1
    assert "settings.json is damaged (not valid JSON" in capsys.readouterr().err
    assert (result.parent / "weights.safetensors").exists()  # the trained run is kept


def test_a_colour_folder_run_by_a_relative_path_is_found_from_anywhere(tmp_path, monkeypatch):
    """A conv model trains on RGB images, and the run's config records the folder in full."""
    digits = load("mnist-sample", "test")
    for split in ("train", "test"):
        for label in (0, 1):
            folder = tmp_path / "photos" / split / str(label)
            folder.mkdir(parents=True)
            for i in (digits.labels == label).nonzero().flatten()[:16].tolist():
                grey = Image.fromarray(digits.images[i, 0].numpy())
                Image.merge("RGB", (grey, grey.point(lambda v: v // 2), grey)).save(
                    folder / f"{i}.png"
                )
    monkeypatch.chdir(tmp_path)
    args = ["train", "vae", "--dataset", "photos", "--epochs", "1", "--out", "run", "--quiet"]
    assert main(args) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["data"]["dataset"] == str(tmp_path / "photos")
    monkeypatch.chdir(Path("/"))
    assert main(["eval", str(tmp_path / "run")]) == 0


def test_weights_of_another_model_are_named_in_a_few_words(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "vae", "--dataset", "mnist-sample", "--train-size", "128", "--epochs", "1"]
    assert main([*args, "--out", str(run), "--quiet"]) == 0
    config = json.loads((run / "config.json").read_text())
    config["model"]["latent_dim"] = 3  # the weights are of a 2-D latent space
    (run / "config.json").write_text(json.dumps(config))
    assert main(["eval", str(run)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert re.search(
        r"weights.safetensors holds the weights of another model than its config.json "
        r"describes \(vae, latent 3: .+ is \[\d+, 2\], not \[\d+, 3\]\); the run folder",
        err,
    ), err


def test_a_run_whose_data_folder_moved_finds_its_data_and_resumes_from_another(
    tmp_path, monkeypatch, capsys
):
    """A saved --data-dir that is gone (the run copied to another machine) is passed over;
    resuming with another --data-dir is allowed: it says where the files are, not what
    trains."""
    shared = tmp_path / "data"
    shared.mkdir()
    args = ["train", "ae", "--dataset", "mnist-sample", "--train-size", "128", "--epochs", "1",
            "--data-dir", str(shared), "--out", str(tmp_path / "run"), "--quiet"]  # fmt: skip
    assert main(args) == 0
    shared.rmdir()
    assert Run(tmp_path / "run").config.data.data_dir is None
    assert main(["eval", str(tmp_path / "run")]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resume = ["train", "ae", "--out", str(tmp_path / "run"), "--resume", "--epochs", "2",
              "--data-dir", str(elsewhere), "--quiet"]  # fmt: skip
    assert main(resume) == 0, capsys.readouterr().err
    assert [row["epoch"] for row in Run(tmp_path / "run").metrics()] == [1, 2]


def test_weights_that_are_not_finite_are_named_not_printed_as_nan(tiny_run_copy, capsys):
    """`vaelab eval` printed `NaN`, which is not JSON, with exit status 0."""
    from safetensors.torch import load_file, save_file

    weights = tiny_run_copy / "weights.safetensors"
    tensors = load_file(weights)
    first = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[first][0] = float("nan")
    save_file(tensors, weights)
    assert main(["eval", str(tiny_run_copy)]) == 1
    assert capsys.readouterr().err == (
        f"vaelab: error: {weights} holds weights that are not finite numbers (NaN or infinity, "
        f"in {first}): the file is damaged or its training diverged; train it again into "
        "another folder (with a lower learning rate if it diverged)\n"
    )
