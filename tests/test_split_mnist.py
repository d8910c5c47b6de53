"""Split-MNIST, class-incremental: the task split, the evaluation, replay targets, the
benchmark's files. Runs on the bundled MNIST sample with a few batches per task."""

from __future__ import annotations

import json
import math

import pytest
import torch

from vaelab.continual.split import (
    STRATEGIES,
    TASKS,
    GenerativeClassifier,
    ReplayClassifier,
    SplitConfig,
    class_il_accuracy,
    distillation_loss,
    seen,
    shuffled_batches,
    train_and_measure,
)
from vaelab.continual.split_bench import (
    backward_transfer,
    max_forgetting,
    published_rows,
    run_seed,
    run_split_mnist,
    untrained_runs,
)
from vaelab.data import load
from vaelab.diagnostics import MIN_SPREAD, UntrainedModelWarning
from vaelab.errors import SettingError, VaelabError
from vaelab.scores import iwae

TINY = dict(dataset="mnist-sample", iterations=8, batch_size=16, class_iterations=4,
            importance_samples=3, replay_size=40, train_size=80)  # fmt: skip


@pytest.fixture(scope="module")
def sample():
    train = load("mnist-sample", "train")
    test = load("mnist-sample", "test")
    return train, (test.float(), test.labels)


def test_five_tasks_of_two_digits_cover_all_ten_in_order():
    assert [d for t in TASKS for d in t] == list(range(10))
    assert [seen(t) for t in range(5)] == [2, 4, 6, 8, 10]


def test_class_il_accuracy_predicts_among_the_digits_seen_so_far():
    labels = torch.arange(10).repeat(3)
    images = torch.zeros(len(labels), 1, 28, 28)
    asked = []

    def predict(x, classes):  # right whenever the digit is among those allowed
        asked.append(classes)
        return labels.clamp(max=classes - 1)

    assert class_il_accuracy(predict, images, labels, 0) == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert class_il_accuracy(predict, images, labels, 1) == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert class_il_accuracy(predict, images, labels, 4) == [1.0] * 5
    assert asked == [2, 4, 10]


def test_batches_are_reshuffled_every_pass_and_drop_the_short_one(sample):
    data = sample[0].with_classes([0]).first(10)
    batches = shuffled_batches(data, 4, torch.Generator().manual_seed(0))
    passes = [torch.cat([next(batches)[1] for _ in range(2)]) for _ in range(2)]
    assert all(len(p) == 8 for p in passes)  # 10 images: two batches of 4, 2 dropped
    first, second = (torch.cat([next(batches)[0] for _ in range(2)]) for _ in range(2))
    assert not torch.equal(first, second)


def test_distillation_matches_a_hand_computation():
    logits = torch.tensor([[1.0, 0.0, 2.0]])
    teacher = torch.tensor([[0.0, math.log(3.0)]])  # softmax at T=2: 1/(1+sqrt3), sqrt3/(...)
    p0 = 1 / (1 + math.sqrt(3))
    log_q = torch.log_softmax(logits / 2, dim=1)[0]
    expected = -(p0 * log_q[0] + (1 - p0) * log_q[1])  # the new digit's target is zero
    assert distillation_loss(logits, teacher, 2.0).item() == pytest.approx(4 * expected.item())


def trained_on_first_task(strategy: str, sample) -> ReplayClassifier:
    config = SplitConfig(**TINY)
    torch.manual_seed(0)
    learner = ReplayClassifier(config, STRATEGIES[strategy])
    learner.train_task(0, sample[0], torch.Generator().manual_seed(0))
    return learner


@pytest.mark.parametrize("strategy", ["dgr", "dgr-distill"])
def test_replayed_targets_come_from_the_frozen_previous_classifier(sample, strategy):
    learner = trained_on_first_task(strategy, sample)
    past = learner._teachers(1)
    before = learner._replay(1, past, None, torch.Generator().manual_seed(5))
    with torch.no_grad():  # the live classifier changes mid-task ...
        for p in learner.classifier.parameters():
            p.add_(torch.randn_like(p))
    after = learner._replay(1, past, None, torch.Generator().manual_seed(5))
    assert torch.equal(before.images, after.images)  # ... the replayed targets do not
    assert torch.equal(before.labels, after.labels)
    teacher, _ = past
    assert torch.equal(before.labels, teacher(before.images)[:, :2].argmax(1))
    live = learner.classifier(before.images)[:, :2].argmax(1)
    assert not torch.equal(live, before.labels) or strategy == "dgr"  # noise moved it
    if strategy == "dgr-distill":
        assert torch.equal(before.teacher_logits, after.teacher_logits)
    else:
        assert before.teacher_logits is None


def test_a_conditional_generator_replays_the_past_digits_it_is_asked_for(sample):
    learner = trained_on_first_task("cvae-replay", sample)
    replay = learner._replay(1, learner._teachers(1), None, torch.Generator().manual_seed(0))
    assert set(replay.labels.tolist()) == {0, 1}
    assert replay.teacher_logits is None


def test_none_forgets_the_first_task_and_replay_keeps_some_of_it(tmp_path):
    config = SplitConfig(**{**TINY, "iterations": 60, "train_size": None, "batch_size": 64})
    options = dict(threads=1, modules=[])
    forgot = run_seed(config, "none", 0, str(tmp_path), **options)["accuracy_matrix"]
    assert forgot[0][0] > 0.95 and forgot[-1][0] < 0.05  # digits 0 and 1: learned, then lost
    assert forgot[-1][-1] > 0.9  # only the last task is known
    kept = run_seed(config, "replay", 0, str(tmp_path), **options)["accuracy_matrix"]
    assert kept[-1][0] > 0.3


def test_backward_transfer_and_forgetting_on_a_matrix_worked_by_hand():
    matrix = [
        [0.9, 0.0, 0.0],
        [0.5, 0.8, 0.0],
        [0.7, 0.2, 0.6],
    ]
    # final minus just-learned: (0.7 - 0.9 + 0.2 - 0.8) / 2
    assert backward_transfer(matrix) == pytest.approx(-0.4)
    # best before the last task minus final: (0.9 - 0.7 + 0.8 - 0.2) / 2
    assert max_forgetting(matrix) == pytest.approx(0.4)
    matrix[1][0] = 0.95  # a task's best can come after the task was learned
    assert max_forgetting(matrix) == pytest.approx((0.95 - 0.7 + 0.8 - 0.2) / 2)
    assert backward_transfer(matrix) == pytest.approx(-0.4)
    once = [[None] * 3, [None] * 3, [0.9, 0.9, 0.9]]
    assert backward_transfer(once) is None and max_forgetting(once) is None


def test_offline_trains_once_on_every_task_at_the_end(sample):
    learner = ReplayClassifier(SplitConfig(**TINY), STRATEGIES["offline"])
    rows = [train_and_measure(learner, t, sample[0], sample[1], 0)[0]["accuracy"] for t in range(5)]
    assert all(row == [None] * 5 for row in rows[:4])
    assert all(0 <= a <= 1 for a in rows[4])


def test_the_generative_classifier_picks_the_digit_whose_vae_finds_the_image_likeliest(sample):
    config = SplitConfig(**TINY)
    learner = GenerativeClassifier(config, STRATEGIES["generative-classifier"])
    learner.train_task(0, sample[0], torch.Generator().manual_seed(0))
    images = sample[1][0][:50]
    bounds = torch.stack([iwae(learner.models[str(d)], images, 3) for d in (0, 1)])
    assert torch.equal(learner.predict(images, 2), bounds.argmin(0))
    assert learner._bounds["0"] is learner._bound("0", images)  # scored once per image set


def seed_results(out, strategy: str = "dgr-distill") -> list[dict]:
    paths = sorted((out / strategy).glob("seed*/result.json"))
    return [json.loads(p.read_text()) for p in paths]


def test_the_benchmark_writes_results_resumes_per_task_and_repeats_its_numbers(tmp_path):
    config = SplitConfig(**TINY)
    out = tmp_path / "bench"
    results = run_split_mnist(config, out, ["none", "dgr-distill"], seeds=2, progress=False)
    saved = json.loads((out / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    s = saved["strategies"]["dgr-distill"]
    assert s["seeds"] == [0, 1] and 0 <= s["final_accuracy_mean"] <= 1
    assert s["final_accuracy_sem"] >= 0 and len(s["accuracy_matrix"]) == 5
    assert s["published_row"] == "DGR+distill"
    transfer = [backward_transfer(m) for m in (r["accuracy_matrix"] for r in seed_results(out))]
    assert s["backward_transfer"] == transfer
    assert s["backward_transfer_mean"] == pytest.approx(backward_transfer(s["accuracy_matrix"]))
    assert -1 <= s["backward_transfer_mean"] <= 1 and s["backward_transfer_sem"] >= 0
    assert len(s["forgetting"]) == 2 and 0 <= s["forgetting_mean"] <= 1
    table = (out / "table.md").read_text()
    assert "| DGR+distill | 91.79 | | published |" in table and "vaelab dgr-distill" in table
    bwt = f"| {100 * s['backward_transfer_mean']:.1f} | measured, 2 seeds"
    assert bwt in table.split("vaelab dgr-distill")[1]
    assert (out / "accuracy_matrix.png").exists() and (out / "samples-dgr-distill.png").exists()
    assert not (out / "samples-none.png").exists()  # nothing to dream
    seed = out / "dgr-distill" / "seed1"
    first = json.loads((seed / "result.json").read_text())
    for name in ("result.json", "task3.safetensors", "task4.safetensors"):
        (seed / name).unlink()
    again = run_split_mnist(config, out, ["dgr-distill"], seeds=2, progress=False)
    assert (
        json.loads((seed / "result.json").read_text())["accuracy_matrix"]
        == (first["accuracy_matrix"])
    )
    assert again["strategies"]["dgr-distill"]["final_accuracy_mean"] == s["final_accuracy_mean"]


def test_generative_models_that_have_not_learned_are_listed_warned_of_and_noted(tmp_path):
    config = SplitConfig(**{**TINY, "lr": 1e-7})  # the models stay as they were drawn
    strategies = ["none", "dgr", "cvae-replay", "generative-classifier"]
    with pytest.warns(UntrainedModelWarning) as warned:
        results = run_split_mnist(config, tmp_path, strategies, seeds=1, progress=False)
    (message,) = [str(w.message) for w in warned if w.category is UntrainedModelWarning]
    assert message.startswith(
        f"3 runs in {tmp_path} (dgr seed 0 (generator), cvae-replay seed 0 (generator), "
        "generative-classifier seed 0 (digit 0, digit 1, "
    )
    assert "reconstruct every test image nearly the same way" in message
    assert "untrained_runs of each strategy in results.json" in message
    found = {name: s["untrained_runs"] for name, s in results["strategies"].items()}
    digits = [f"digit {d}" for t in TASKS for d in t]
    assert found == {
        "none": [],
        "dgr": [{"seed": 0, "models": ["generator"]}],
        "cvae-replay": [{"seed": 0, "models": ["generator"]}],
        "generative-classifier": [{"seed": 0, "models": digits}],
    }
    rows = {line.split(":")[0]: line for line in (tmp_path / "table.md").read_text().splitlines()}
    assert rows["| vaelab dgr"].endswith(", 1 run untrained (see results.json) |")
    assert "untrained" not in rows["| vaelab none"]


def test_each_digits_vae_is_checked_on_its_own_digit_once_it_has_learned(sample):
    config = SplitConfig(**{**TINY, "class_iterations": 200, "batch_size": 64})
    learner = GenerativeClassifier(config, STRATEGIES["generative-classifier"])
    learner.train_task(0, sample[0], torch.Generator().manual_seed(0))
    spreads = learner.reconstruction_spreads(*sample[1])
    assert set(spreads) == {"digit 0", "digit 1"}  # the digits trained so far
    assert all(spread > MIN_SPREAD for spread in spreads.values())  # measured: 0.47, 0.57
    classifier = ReplayClassifier(config, STRATEGIES["replay"])
    assert classifier.reconstruction_spreads(*sample[1]) == {}  # nothing reconstructs


def test_only_runs_with_a_spread_below_the_threshold_are_untrained():
    runs = [
        {"seed": 0, "reconstruction_spread": {"digit 0": 0.3, "digit 1": 0.01}},
        {"seed": 1, "reconstruction_spread": {"generator": None}},  # a pixel decoder
        {"seed": 2, "reconstruction_spread": {}},  # a classifier alone
        {"seed": 3},  # written before the check
    ]
    assert untrained_runs(runs) == [{"seed": 0, "models": ["digit 1"]}]


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    run_split_mnist(SplitConfig(**TINY), tmp_path, ["none"], seeds=1, progress=False)
    with pytest.raises(VaelabError, match="iterations"):
        run_split_mnist(SplitConfig(**{**TINY, "iterations": 9}), tmp_path, ["none"], seeds=1)


def test_bad_settings_name_their_parameter():
    with pytest.raises(SettingError, match="unknown strategy 'bogus'") as error:
        run_split_mnist(SplitConfig(**TINY), "unused", ["bogus"])
    assert error.value.settings == ("strategy",)
    with pytest.raises(SettingError, match="replay_size"):
        SplitConfig(replay_size=3).check()


def test_the_command_names_the_flag_of_a_bad_setting(tmp_path, capsys):
    from vaelab.cli import main

    assert main(["bench", "split-mnist", "--strategy", "dgr,bogus", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "--strategy" in err and "bogus" in err and "dgr-distill" in err


def test_the_published_rows_are_the_papers_class_incremental_table():
    rows = {r["key"]: r["accuracy"] for r in published_rows()}
    assert rows == {"None": 19.90, "EWC": 20.01, "Online EWC": 19.96, "SI": 19.99,
                    "LwF": 23.85, "DGR": 90.79, "DGR+distill": 91.79, "Offline": 97.94}  # fmt: skip
    assert all("van de Ven" in r["citation"] for r in published_rows())
    keys = {s.published for s in STRATEGIES.values()} - {None}
    assert keys <= set(rows)
