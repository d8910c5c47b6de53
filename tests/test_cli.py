import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vaelab.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_help_imports_neither_torch_nor_ray():
    code = (
        "import sys, vaelab.cli; vaelab.cli.build_parser(); "
        "print('torch' in sys.modules, 'ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("command", [[], ["train"], ["eval"], ["data"], ["data", "fetch"]])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: vaelab" in capsys.readouterr().out


def test_version(capsys):
    import vaelab

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"vaelab {vaelab.__version__}"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{vaelab.__version__}"' in pyproject  # one version, two places


def test_help_texts_show_percent_signs_as_written(capsys):
    with pytest.raises(SystemExit):
        main(["anomaly", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "FPR at 95% TPR" in text and "%%" not in text


def test_the_demo_folder_is_ignored_by_git():
    assert "/vaelab-demo/" in (ROOT / ".gitignore").read_text().splitlines()


def train_args(out, *extra):
    return [
        "train",
        "vae",
        "--dataset",
        "mnist-sample",
        "--train-size",
        "256",
        "--batch-size",
        "64",
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def test_train_eval_and_resume_on_the_sample(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(out, "--epochs", "1", "--classes", "7")) == 0
    assert re.search(r"trained vae for 1 epoch on \d+ CPU threads? into", capsys.readouterr().out)
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["classes"] == [7]
    assert config["data"]["train_size"] == 256

    assert main(["train", "vae", "--out", str(out), "--resume", "--epochs", "2", "--quiet"]) == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    capsys.readouterr()

    assert main(["eval", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["loss"] == pytest.approx(result["recon"] + result["kl"])
    assert 0 < result["loss"] < 544  # below an untrained model's ~543
    assert result["latent_dim"] == 2 and result["active_units"] in (0, 1, 2)


def error_of(args, capsys) -> str:
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_errors_are_one_clear_line(tmp_path, capsys):
    assert "unknown dataset 'nope'" in error_of(
        train_args(tmp_path / "a", "--dataset", "nope"), capsys
    )
    assert "does not exist" in error_of(["eval", str(tmp_path / "missing")], capsys)
    assert "no class 11" in error_of(train_args(tmp_path / "b", "--classes", "11"), capsys)


def test_training_into_an_existing_run_needs_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(out, "--epochs", "1")) == 0
    assert "--resume" in error_of(train_args(out, "--epochs", "1"), capsys)
    refused = error_of([*train_args(out, "--epochs", "2", "--latent-dim", "5"), "--resume"], capsys)
    assert "(model.latent_dim differ); only --epochs, --device, --threads, --precision" in refused
    other_model = ["train", "ae", *train_args(out, "--epochs", "2")[2:], "--resume"]
    assert f"holds a vae run, not ae; resume it with vaelab train vae --out {out}" in error_of(
        other_model, capsys
    )


def test_an_objective_setting_the_model_ignores_names_the_flag_typed(tmp_path, capsys):
    assert error_of(train_args(tmp_path / "r", "--iw-samples", "5"), capsys) == (
        "vaelab: error: the elbo objective does not read --iw-samples (got 5); leave it out or "
        "choose a model that trains on another objective"
    )


def test_a_run_is_neither_shortened_nor_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(out, "--epochs", "2")) == 0
    saved = {name: (out / name).read_bytes() for name in ("config.json", "metrics.jsonl")}
    assert error_of([*train_args(out, "--epochs", "1"), "--resume"], capsys) == (
        f"vaelab: error: {out} has already trained 2 epochs; give --epochs above 2 to train it "
        "further"
    )
    (out / "checkpoint.safetensors").unlink()  # lost, or deleted as a damaged one
    assert error_of(train_args(out, "--epochs", "1"), capsys) == (
        f"vaelab: error: {out} already holds a trained run (weights.safetensors, metrics.jsonl) "
        "with no checkpoint to continue from; choose another --out or delete it first"
    )
    assert saved == {name: (out / name).read_bytes() for name in saved}


def test_a_file_in_the_way_of_a_folder_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "taken").write_text("")
    assert error_of(train_args(tmp_path / "taken", "--epochs", "1"), capsys) == (
        f"vaelab: error: cannot create the folder {tmp_path / 'taken'}: a file of that name "
        "is in the way; choose another path"
    )
    message = error_of(train_args(tmp_path / "taken/run", "--epochs", "1"), capsys)
    assert message.startswith(f"vaelab: error: cannot create or open {tmp_path / 'taken/run'}")
    assert "is a file, not a run folder" in error_of(["eval", str(tmp_path / "taken")], capsys)


def test_a_resumed_run_may_change_the_learning_rate_of_epochs_not_begun(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(out, "--epochs", "1")) == 0
    assert "--lr-milestones must be increasing" in error_of(
        [*train_args(out, "--epochs", "2", "--lr-milestones", "2,1"), "--resume"], capsys
    )
    assert "another learning rate for epoch 1" in error_of(
        [*train_args(out, "--epochs", "2", "--lr", "0.01"), "--resume"], capsys
    )
    later = [*train_args(out, "--epochs", "2", "--lr-milestones", "1", "--lr-decay", "0.5")]
    assert main([*later, "--resume"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["lr"] for row in rows] == [1e-3, 5e-4]
    assert json.loads((out / "config.json").read_text())["train"]["lr_milestones"] == [1]


def test_bad_option_values_exit_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "vae", "--out", "x", "--classes", "seven"])
    assert exit_info.value.code == 2
    assert "not a class list" in capsys.readouterr().err


def test_trains_on_full_mnist(mnist_dir, tmp_path):
    """Integration: one epoch of the article's VAE on all 60,000 official training images."""
    out = tmp_path / "full"
    args = [
        "train",
        "vae",
        "--dataset",
        "mnist",
        "--data-dir",
        str(mnist_dir),
        "--epochs",
        "1",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    (row,) = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert row["val_loss"] < 200  # an untrained model scores ~543; one epoch reaches ~180


def test_ctrl_c_in_the_cli_keeps_a_resumable_run(tmp_path):
    """A real SIGINT to a real `vaelab train`: clean exit 130, a checkpoint, and --resume works."""
    out = tmp_path / "run"
    args = [sys.executable, "-m", "vaelab", *train_args(out, "--epochs", "50")]
    process = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not metrics.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "resumable checkpoint" in err and "Traceback" not in err
    done = len(metrics.read_text().splitlines())
    assert 1 <= done < 50
    resume = ["train", "vae", "--out", str(out), "--resume", "--epochs", str(done + 1), "--quiet"]
    assert main(resume) == 0
    assert len(metrics.read_text().splitlines()) == done + 1


def test_a_reader_that_leaves_early_gets_no_traceback():
    """`vaelab models | head -1`: the pipe is closed before vaelab has written its lines."""
    args = [sys.executable, "-m", "vaelab", "models"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    assert process.stderr.read() == b""
    assert process.wait() == 1


def test_experiments_refuse_to_write_into_a_run_folder(tmp_path, capsys):
    """A benchmark's or the continual experiment's results, reports and figures would mix
    with the run's own files (and `vaelab report` writes report.html there too)."""
    run = tmp_path / "run"
    train = ["train", "ae", "--train-size", "128", "--epochs", "1", "--quiet", "--out", str(run)]
    assert main(train) == 0
    before = sorted(p.name for p in run.iterdir())
    for command in (
        ["bench", "oneclass", "--dataset", "mnist-sample", "--classes", "7", "--seeds", "1"],
        ["continual", "--dataset", "mnist-sample", "--order", "7,1"],
    ):
        capsys.readouterr()
        assert main([*command, "--out", str(run)]) == 1
        assert capsys.readouterr().err == (
            f"vaelab: error: --out {run} already holds a run or a detector; choose another "
            "--out or delete it first\n"
        )
    assert sorted(p.name for p in run.iterdir()) == before


def test_a_file_where_a_folder_is_to_be_made_is_named_as_such(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep me")
    out = tmp_path / "notes.txt"
    assert main(["train", "ae", "--train-size", "128", "--epochs", "1", "--out", str(out)]) == 1
    assert capsys.readouterr().err == (
        f"vaelab: error: cannot create the folder {tmp_path / 'notes.txt'}: a file of that "
        "name is in the way; choose another path\n"
    )
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_samples_with_a_score_that_draws_none_are_refused_before_any_training(tmp_path, capsys):
    images = tmp_path / "images"
    for command in (
        ["detector", "fit", str(images), "--out", str(tmp_path / "det"), "--score", "latent"],
        ["bench", "oneclass", "--dataset", "mnist-sample", "--out", str(tmp_path / "bench")],
    ):
        refused = error_of([*command, "--samples", "4"], capsys)
        assert refused.endswith("draws none: leave --samples out"), refused
    assert not any(tmp_path.iterdir())


def test_an_empty_value_is_refused_rather_than_read_as_the_current_folder(
    tmp_path, monkeypatch, capsys
):
    """`--out "$DIR"` with DIR unset must not write a run among the files where it ran."""
    monkeypatch.chdir(tmp_path)
    for args in (["train", "vae", "--out", ""], ["anomaly", " "], ["demo", "--out", ""]):
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 2
        assert "is empty (an unset shell variable?); give it a value" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_an_unknown_option_is_refused_by_its_command_with_the_one_it_may_mean(capsys):
    for args, said in [
        (["anomaly", "run", "--outt", "x"], "vaelab anomaly: error: unrecognized arguments: "
         "--outt x; did you mean --out?"),
        (["train", "vae", "--out", "x", "--bogus"], "vaelab train: error: unrecognized "
         "arguments: --bogus\n"),
        (["data", "verify", "--data-dri", "x"], "did you mean --data-dir?"),
        (["models", ""], "vaelab models: error: unrecognized arguments: ''\n"),
    ]:  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert said in err and f"usage: vaelab {args[0]}" in err


def test_a_subset_with_no_train_size_is_refused_before_any_training(tmp_path, capsys):
    out = str(tmp_path / "run")
    args = ["train", "vae", "--dataset", "mnist-sample", "--subset", "stratified", "--out", out]
    assert error_of(args, capsys) == (
        "vaelab: error: --subset stratified says which --train-size images to keep, and no "
        "--train-size is given: give one, or leave --subset out"
    )
    assert not (tmp_path / "run").exists()
