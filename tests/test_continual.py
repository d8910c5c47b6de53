import csv
import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from vaelab.classifier import Schedule, cached_classifier
from vaelab.config import ModelConfig, TrainConfig
from vaelab.continual import (
    DREAM,
    ContinualConfig,
    average_forgetting,
    forgetting,
    frozen_copy,
    load_stage_models,
    run_continual,
    stage_training_set,
)
from vaelab.continual.metrics import untrained_stages
from vaelab.continual.strategies import STRATEGIES, concat
from vaelab.data import load
from vaelab.diagnostics import MIN_SPREAD, UntrainedModelWarning
from vaelab.errors import SettingError, VaelabError
from vaelab.figures.continual import describe_protocol, strategy_facts
from vaelab.models import build
from vaelab.train import train

ORDER = [7, 0, 1]


@pytest.fixture(scope="module")
def digits():
    """30 real training images of each digit in ORDER."""
    return digits_of(ORDER)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    sample = load("mnist-sample", "train").stratified(500, seed=0), load("mnist-sample", "test")
    cache = tmp_path_factory.mktemp("cache")
    return cached_classifier(cache, data=sample, schedule=Schedule(epochs=1), progress=False)


def vae(seed=0):
    torch.manual_seed(seed)
    return build(ModelConfig(name="vae"))


def mix(data):
    """{label: count} of a training set."""
    labels, counts = data.labels.unique(return_counts=True)
    return dict(zip(labels.tolist(), counts.tolist(), strict=True))


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_stage_0_is_the_first_digit_alone(digits, strategy):
    data = stage_training_set(strategy, digits, ORDER, 0, replay_size=10, teacher=vae())
    assert mix(data) == {7: 30}


def test_naive_sees_only_the_new_digit(digits):
    data = stage_training_set("naive", digits, ORDER, 2)
    assert mix(data) == {1: 30}
    assert torch.equal(data.images, digits.with_classes([1]).images)


def test_cumulative_sees_every_digit_so_far(digits):
    assert mix(stage_training_set("cumulative", digits, ORDER, 1)) == {7: 30, 0: 30}
    assert mix(stage_training_set("cumulative", digits, ORDER, 2)) == {7: 30, 0: 30, 1: 30}


def test_replay_adds_a_fixed_balanced_buffer_of_real_images(digits):
    stage1 = stage_training_set("replay", digits, ORDER, 1, replay_size=11, seed=3)
    stage2 = stage_training_set("replay", digits, ORDER, 2, replay_size=11, seed=3)
    assert mix(stage1) == {7: 11, 0: 30}
    assert mix(stage2) == {7: 6, 0: 5, 1: 30}
    real_sevens = {bytes(x.numpy()) for x in digits.with_classes([7]).images}
    kept_then = {bytes(x.numpy()) for x in stage1.with_classes([7]).images}
    kept_now = {bytes(x.numpy()) for x in stage2.with_classes([7]).images}
    assert kept_now < kept_then <= real_sevens  # the buffer only lets go of images
    other_seed = stage_training_set("replay", digits, ORDER, 2, replay_size=11, seed=4)
    assert not torch.equal(other_seed.images, stage2.images)
    with pytest.raises(SettingError, match="buffer of 1 image cannot hold all 2 past digits"):
        stage_training_set("replay", digits, ORDER, 2, replay_size=1)


def test_generative_replay_adds_dreams_of_the_teacher_and_no_past_data(digits):
    teacher = frozen_copy(vae())
    data = stage_training_set("generative-replay", digits, ORDER, 2, teacher=teacher, seed=5)
    assert mix(data) == {DREAM: 60, 1: 30}  # n_new * k_past dreams: 30 per past digit
    dreamed = data.images[data.labels == DREAM]
    expected = teacher.sample(60, torch.Generator().manual_seed(5 * 1000 + 2))
    assert torch.equal(dreamed, expected.mul(255).round().to(torch.uint8))
    assert torch.equal(data.images[data.labels == 1], digits.with_classes([1]).images)
    with pytest.raises(VaelabError, match="teacher"):
        stage_training_set("generative-replay", digits, ORDER, 1)


def test_generative_replay_uses_the_frozen_model_not_the_live_one(digits):
    model = vae()
    teacher = frozen_copy(model)
    assert all(not p.requires_grad for p in teacher.parameters())
    before = stage_training_set("generative-replay", digits, ORDER, 1, teacher=teacher)
    train(model, digits, TrainConfig(epochs=1, batch_size=16, device="cpu"), progress=False)
    after = stage_training_set("generative-replay", digits, ORDER, 1, teacher=teacher)
    assert torch.equal(before.images, after.images)
    from_live = stage_training_set("generative-replay", digits, ORDER, 1, teacher=model)
    assert not torch.equal(before.images, from_live.images)  # training did change the model


def test_unknown_strategy_and_stage_are_reported(digits):
    with pytest.raises(VaelabError, match="unknown strategy"):
        stage_training_set("rehearsal", digits, ORDER, 1)
    with pytest.raises(VaelabError, match="outside"):
        stage_training_set("naive", digits, ORDER, 3)


def test_the_command_offers_every_registered_strategy():
    from vaelab.cli.continual import STRATEGY_NAMES

    assert list(STRATEGIES) == STRATEGY_NAMES


def test_a_registered_strategy_runs_through_every_stage(tmp_path, classifier, user_module):
    data = stage_training_set("user-previous-digit", digits_of([7, 0, 1]), [7, 0, 1], 2)
    assert mix(data) == {0: 30, 1: 30}
    config = tiny_config(order=[7, 0, 1], strategy="user-previous-digit")
    metrics = run_continual(config, tmp_path, classifier=classifier, progress=False)
    stages = metrics["strategies"]["user-previous-digit"]["stages"]
    assert [s["train_images"] for s in stages] == [64, 128, 128]


@pytest.mark.slow
def test_registered_strategies_train_in_spawned_workers(tmp_path, classifier, user_module):
    """`all` takes the user's strategy too, and the workers know it once they import the
    user's module, as they do first."""
    config = tiny_config(strategy="all")
    metrics = run_continual(config, tmp_path, classifier=classifier, jobs=2, progress=False)
    assert "user-previous-digit" in metrics["strategies"] and len(metrics["strategies"]) == 5


def test_the_strategy_example_of_the_docs_registers_and_runs(restored_registries):
    page = (Path(__file__).parents[1] / "docs" / "extending.md").read_text()
    example = page.split("```python\n")[1].split("```")[0]
    exec(compile(example, "docs/extending.md", "exec"), {"__name__": "__example__"})
    data = stage_training_set("previous-digit", digits_of([7, 0, 1]), [7, 0, 1], 2)
    assert mix(data) == {0: 30, 1: 30}


def digits_of(order):
    full = load("mnist-sample", "train")
    return concat([full.with_classes([d]).first(30) for d in order])


def test_forgetting_is_the_loss_at_the_end_minus_just_after_learning():
    stages = [
        {"loss": {"7": 100.0, "0": 300.0}},
        {"loss": {"7": 160.0, "0": 120.0}},
        {"loss": {"7": 190.0, "0": 150.0, "1": 0.0}},
    ]
    per_digit = forgetting(stages, [7, 0, 1])
    assert per_digit["7"] == 90.0 and per_digit["0"] == 30.0 and per_digit["1"] == 0.0
    assert average_forgetting(per_digit, [7, 0, 1]) == 60.0


def tiny_config(train=None, **overrides):
    """Two digits, 64 images each, one epoch a stage; `train` replaces fields of the
    training settings."""
    schedule = TrainConfig(epochs=1, batch_size=32, device="cpu")
    settings = {
        "dataset": "mnist-sample",
        "order": [7, 0],
        "first_stage_epochs": 1,
        "train_size": 64,
        "replay_size": 16,
        "dream_samples": 100,
        "train": dataclasses.replace(schedule, **(train or {})),
    }
    return ContinualConfig(**{**settings, **overrides})


def test_a_tiny_run_writes_the_matrix_and_forgetting(tmp_path, classifier):
    config = tiny_config(order=[7, 0, 1], strategy="generative-replay", first_stage_epochs=2)
    learned = list(enumerate([7, 0, 1]))
    named = ", ".join(f"generative-replay stage {s} on digit {d}" for s, d in learned)
    with pytest.warns(UntrainedModelWarning, match=re.escape(f"3 stages in {tmp_path} ({named})")):
        metrics = run_continual(config, tmp_path, classifier=classifier, progress=False)
    summary = metrics["strategies"]["generative-replay"]
    assert all(s["reconstruction_spread"] < MIN_SPREAD for s in summary["stages"])  # 2-4 steps
    assert summary["untrained_stages"] == [{"stage": s, "digit": d} for s, d in learned]
    assert list(metrics["strategies"]) == ["generative-replay"]
    assert summary["summary"] == "the new digit and the previous model's dreams"
    assert metrics["classifier"] == classifier[1]
    assert "latent size 2)" in describe_protocol(metrics)  # the model's preset, filled in
    stages = summary["stages"]
    assert [s["digit"] for s in stages] == [7, 0, 1]
    assert [s["epochs"] for s in stages] == [2, 1, 1]  # the first digit gets its own schedule
    assert [s["train_images"] for s in stages] == [64, 128, 192]
    assert (tmp_path / "generative-replay" / "forgetting_heatmap.png").exists()  # figures too
    assert [s["dreamed_images"] for s in stages] == [0, 64, 128]

    with open(tmp_path / "matrix.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9  # stages x digits
    loss = {(int(r["stage"]), int(r["digit"])): float(r["loss"]) for r in rows}
    for stage, digit in enumerate([7, 0]):
        expected = loss[(2, digit)] - loss[(stage, digit)]
        assert summary["forgetting"][str(digit)] == pytest.approx(expected, abs=1e-3)
    assert summary["forgetting"]["1"] == 0
    mean = (summary["forgetting"]["7"] + summary["forgetting"]["0"]) / 2
    assert summary["avg_forgetting"] == pytest.approx(mean)
    for stage in stages:
        assert set(stage["loss"]) == {"7", "0", "1"}
        assert all(0 < stage["recon"][d] < stage["loss"][d] for d in stage["loss"])
        assert 0 <= sum(stage["dream_share"].values()) <= 1
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["strategies"]["generative-replay"]["avg_forgetting"] == summary["avg_forgetting"]


def test_only_stages_with_a_spread_below_the_threshold_are_untrained():
    stages = [
        {"stage": 0, "digit": 7, "reconstruction_spread": 0.36},  # full MNIST's 7-model
        {"stage": 1, "digit": 0, "reconstruction_spread": 0.004},
        {"stage": 2, "digit": 1, "reconstruction_spread": None},  # a pixel decoder
        {"stage": 3, "digit": 2},  # saved before the check
    ]
    assert untrained_stages(stages) == [{"stage": 1, "digit": 0}]


def test_rerunning_skips_finished_stages_and_repeats_the_numbers(tmp_path, classifier):
    """Stage 1 resumed from stage 0's file dreams and trains exactly as in one unbroken run."""
    config = tiny_config(strategy="generative-replay")
    first = run_continual(config, tmp_path, classifier=classifier, progress=False)
    folder = tmp_path / "generative-replay"
    stage0, stage1 = folder / "stage_00.safetensors", folder / "stage_01.safetensors"
    stamp = stage0.stat().st_mtime_ns
    weights = load_stage_models(folder, [7, 0], ModelConfig("vae"))[1].state_dict()
    stage1.unlink()
    again = run_continual(config, tmp_path, classifier=classifier, progress=False)
    assert stage0.stat().st_mtime_ns == stamp
    for before, after in zip(
        first["strategies"]["generative-replay"]["stages"],
        again["strategies"]["generative-replay"]["stages"],
        strict=True,
    ):
        assert {k: v for k, v in before.items() if k != "train_seconds"} == {
            k: v for k, v in after.items() if k != "train_seconds"
        }
    rebuilt = load_stage_models(folder, [7, 0], ModelConfig("vae"))[1].state_dict()
    for key in weights:
        assert torch.equal(weights[key], rebuilt[key]), key


def test_other_settings_in_the_same_folder_are_refused(tmp_path, classifier):
    run_continual(tiny_config(), tmp_path, classifier=classifier, progress=False)
    with pytest.raises(VaelabError, match=r"\(train\.epochs differ\)"):
        run_continual(tiny_config(train={"epochs": 2}), tmp_path, classifier=classifier)
    with pytest.raises(VaelabError, match=r"\(train\.lr differ\)"):
        run_continual(tiny_config(train={"lr": 1e-4}), tmp_path, classifier=classifier)


def test_strategies_separated_by_commas_run_and_are_compared(tmp_path, classifier):
    config = tiny_config(strategy="naive, cumulative")
    metrics = run_continual(config, tmp_path, classifier=classifier, progress=False)
    assert list(metrics["strategies"]) == ["naive", "cumulative"]
    assert (tmp_path / "comparison.png").exists() and (tmp_path / "report.html").exists()


def test_a_folder_of_the_first_settings_form_resumes(tmp_path, classifier):
    """`continual.json` once held the batch size, seed and later stages' epochs beside the
    other settings: such a folder resumes without training again, its file rewritten."""
    config = tiny_config()
    first = run_continual(config, tmp_path, classifier=classifier, progress=False)
    settings = json.loads((tmp_path / "continual.json").read_text())
    train = settings.pop("train")
    model = dataclasses.asdict(ModelConfig("vae"))  # as given: its preset's parts unfilled
    old = {**settings, "model": model, "epochs_per_stage": 1, "batch_size": 32, "seed": 0}
    (tmp_path / "continual.json").write_text(json.dumps(old))
    stage = tmp_path / "naive" / "stage_01.safetensors"
    stamp = stage.stat().st_mtime_ns
    again = run_continual(config, tmp_path, classifier=classifier, progress=False)
    assert stage.stat().st_mtime_ns == stamp and again == first
    assert json.loads((tmp_path / "continual.json").read_text()) == {**settings, "train": train}


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"dataset": "fashion-mnist"}, "MNIST digit classifier"),
        ({"order": [7, 7]}, "different digits"),
        ({"order": [7]}, "two or more"),
        ({"order": [7, 12]}, "0-9"),
        ({"order": [12]}, "0-9"),
        ({"strategy": "forget"}, "unknown strategy"),
        ({"strategy": "naive,forget"}, "unknown strategy 'forget'"),
        ({"strategy": "naive, naive"}, "strategy names 'naive' twice"),
    ],
)
def test_bad_settings_are_reported(tmp_path, overrides, message):
    with pytest.raises(VaelabError, match=message):
        run_continual(tiny_config(**overrides), tmp_path, classifier=None)


@pytest.mark.parametrize(
    "overrides,setting",
    [
        ({"train": {"batch_size": 0}}, "batch_size"),
        ({"train": {"epochs": 0}}, "epochs"),
        ({"train": {"lr": -1.0}}, "lr"),
        ({"dream_samples": -1}, "dream_samples"),
        ({"train_size": 0}, "train_size"),
        ({"strategy": "replay", "order": [7, 0, 1], "replay_size": 1}, "replay_size"),
    ],
)
def test_settings_that_count_something_are_refused_by_their_parameter_name(
    tmp_path, overrides, setting
):
    with pytest.raises(SettingError, match=f"^.*{setting}") as error:
        run_continual(tiny_config(**overrides), tmp_path / "out", classifier=None)
    assert "--" not in str(error.value)  # Python callers read parameters, not flags
    assert not (tmp_path / "out").exists()


def test_a_model_that_cannot_dream_is_refused_before_training(tmp_path, capsys):
    from vaelab.cli import main

    with pytest.raises(SettingError, match="model 'ae' has no prior to sample from"):
        run_continual(tiny_config(model=ModelConfig("ae")), tmp_path / "out", classifier=None)
    args = ["continual", "--dataset", "mnist-sample", "--model", "ae", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 1
    assert "--model 'ae' has no prior" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_replay_buffer_larger_than_the_data_is_refused_before_training(tmp_path):
    """Stage 1 would replay 1,000 sevens from the 64 kept: found before stage 0 trains."""
    config = tiny_config(strategy="replay", replay_size=1000)
    with pytest.raises(SettingError, match="keeps 1000 images of digit 7, but there are only 64"):
        run_continual(config, tmp_path / "out", classifier=None, progress=False)
    assert not (tmp_path / "out").exists()  # nothing trained, no settings claimed


def test_the_command_checks_the_replay_buffer_before_any_strategy_trains(tmp_path, capsys):
    from vaelab.cli import main

    args = ["continual", "--dataset", "mnist-sample", "--strategy", "all"]
    assert main([*args, "--quiet", "--out", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--replay-size" in error and "replay_size" not in error
    assert "only 800 training images" in error and "to 800 or less" in error
    assert not (tmp_path / "out").exists()


def test_the_command_passes_its_training_settings(tmp_path):
    from vaelab.cli import build_parser
    from vaelab.cli.continual import continual_config

    args = ["continual", "--batch-size", "32", "--epochs-per-stage", "3", "--seed", "4"]
    args += ["--precision", "bf16", "--device", "cpu", "--out", str(tmp_path)]
    train = continual_config(build_parser().parse_args(args)).train
    assert train == TrainConfig(epochs=3, batch_size=32, seed=4, device="cpu", precision="bf16")
    default = continual_config(build_parser().parse_args(["continual", "--out", str(tmp_path)]))
    assert default == ContinualConfig()


def test_the_progress_bar_shows_the_test_loss_of_the_digits_seen(capsys):
    from vaelab.continual.loop import load_digits, train_stage

    config = tiny_config(train_size=32)
    train, test = load_digits(config)
    record = train_stage(vae(), "naive", config, train, test, 0, progress=True)
    bar = capsys.readouterr().err
    shown = re.findall(r"val=([0-9.e+]+)", bar)
    assert shown and float(shown[-1]) == pytest.approx(record["loss"]["7"], rel=1e-3)


def test_figures_and_report_of_a_tiny_run(tmp_path, classifier):
    from vaelab.figures.continual import continual_figures

    for strategy in ("naive", "replay"):
        metrics = run_continual(
            tiny_config(strategy=strategy), tmp_path, classifier=classifier, progress=False
        )
    assert list(metrics["strategies"]) == ["naive", "replay"]
    vae = ModelConfig("vae")
    models = {s: load_stage_models(tmp_path / s, [7, 0], vae) for s in metrics["strategies"]}
    written = continual_figures(tmp_path, metrics, models)
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    for strategy in ("naive", "replay"):
        for file in ("forgetting_heatmap.png", "digit_curves.png", "dream_composition.png"):
            assert f"{strategy}/{file}" in names
    with Image.open(tmp_path / "naive" / "memory_manifold.gif") as gif:
        assert gif.n_frames == 2  # one decoded latent grid per stage
    with open(tmp_path / "comparison.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["strategy"] for r in rows] == ["naive", "replay"]
    assert float(rows[0]["avg_forgetting"]) == pytest.approx(
        metrics["strategies"]["naive"]["avg_forgetting"], abs=0.01
    )
    assert [r["untrained_stages"] for r in rows] == ["2", "2"]  # one epoch a stage
    page = (tmp_path / "report.html").read_text()
    assert "comparison.png" in page and "replay/memory_manifold.gif" in page
    assert page.count("2 stages untrained (see metrics.json)") == 2
    for summary in metrics["strategies"].values():  # as metrics written before the check
        del summary["untrained_stages"]
    assert "untrained" not in "".join(strategy_facts(metrics).values())


def test_the_command_reports_bad_settings_on_one_line(tmp_path, capsys):
    from vaelab.cli import main

    assert main(["continual", "--dataset", "fashion-mnist", "--out", str(tmp_path)]) == 1
    assert "MNIST digit classifier" in capsys.readouterr().err
    assert main(["continual", "--strategy", "bogus", "--out", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert "unknown --strategy 'bogus'; choose naive, cumulative" in error
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_command_runs_every_strategy_end_to_end(tmp_path, isolated_data_env, capsys):
    from vaelab.cli import main

    out = tmp_path / "out"
    args = ["continual", "--dataset", "mnist-sample", "--order", "7,0", "--strategy", "all"]
    args += ["--train-size", "64", "--first-stage-epochs", "1", "--epochs-per-stage", "1"]
    args += ["--replay-size", "16", "--batch-size", "16"]
    assert main([*args, "--quiet", "--out", str(out)]) == 0
    assert json.loads((out / "continual.json").read_text())["train"]["batch_size"] == 16
    assert "generative-replay: average forgetting" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["strategies"]) == ["naive", "cumulative", "replay", "generative-replay"]
    assert metrics["classifier"]["protocol"]["train"]["dataset"] == "mnist-sample"
    assert (isolated_data_env / "classifiers" / "mnist-sample-cnn.safetensors").exists()
    assert (out / "report.html").exists() and (out / "comparison.png").exists()


@pytest.mark.slow
def test_the_demo_section_compares_naive_and_generative_replay(tmp_path, isolated_data_env):
    from vaelab.demo import CONTINUAL, Demo, Schedule, remembers

    schedule = Schedule("mnist-sample", continual=dataclasses.replace(CONTINUAL, train_size=64))
    section = remembers(Demo(tmp_path, schedule, progress=False, device="cpu"))
    assert section.title == "5. Does the VAE remember?"
    assert "times naive's" in section.text
    assert set(section.facts) == {"naive", "generative-replay"}
    for figure in section.figures:
        assert (tmp_path / figure.file).exists(), figure.file


def test_a_conditional_model_replays_each_past_digit_by_name(tmp_path, classifier):
    config = tiny_config(strategy="generative-replay", model=ModelConfig("cvae"))
    metrics = run_continual(config, tmp_path, classifier=classifier, progress=False)
    stage = metrics["strategies"]["generative-replay"]["stages"][1]
    assert stage["dreamed_images"] == stage["real_images"] == 64
    assert (tmp_path / "generative-replay" / "memory_manifold.gif").exists()
