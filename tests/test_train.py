import json
import os
import re
import signal

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from vaelab import train as vaelab_train
from vaelab.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vaelab.data.dataset import Dataset
from vaelab.errors import Interrupted, RunError, SettingError, TrainingError, VaelabError
from vaelab.models import build
from vaelab.run import CHECKPOINT, FORMAT, WEIGHTS, Run, load_tensors, save_tensors
from vaelab.train import evaluate, fit, learning_rate, train


def blobs(n: int = 300, seed: int = 0) -> Dataset:
    """Two classes of simple images: a bright square top-left or bottom-right, with noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = torch.randint(0, 40, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    images[labels == 0, :, 4:14, 4:14] = 250
    images[labels == 1, :, 14:24, 14:24] = 250
    return Dataset(images, labels.long(), "blobs", ["tl", "br"])


def fresh_model(name: str = "vae", seed: int = 0):
    torch.manual_seed(seed)
    return build(ModelConfig(name=name))


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def config(**overrides) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 64, "seed": 3, "device": "cpu", **overrides})


@pytest.mark.parametrize("name,optimizer", [("vae", "adam"), ("ae", "adadelta")])
def test_training_lowers_the_loss(name, optimizer):
    data = blobs()
    model = fresh_model(name)
    before = evaluate(model, data.float())["loss"]
    history = train(
        model, data, config(epochs=3, optimizer=optimizer), val=blobs(seed=1), progress=False
    )
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[-1]["val_loss"] < before * 0.9
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["images_per_s"] > 0


def test_metrics_record_every_loss_part(tmp_path):
    run = Run(tmp_path)
    train(fresh_model(), blobs(), config(), val=blobs(seed=1), run=run, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for key in (
        "train_loss",
        "train_recon",
        "train_kl",
        "val_loss",
        "val_recon",
        "val_kl",
        "seconds",
        "images_per_s",
    ):
        assert key in rows[0]
    assert rows[0]["train_loss"] == pytest.approx(rows[0]["train_recon"] + rows[0]["train_kl"])


def test_same_seed_gives_the_same_numbers():
    a, b = fresh_model(), fresh_model()
    history_a = train(a, blobs(), config(), progress=False)
    history_b = train(b, blobs(), config(), progress=False)
    assert_same_weights(weights(a), weights(b))
    assert [r["train_loss"] for r in history_a] == [r["train_loss"] for r in history_b]


@pytest.mark.parametrize("seed", [-1, 2**32, 99999999999999999999])
def test_a_seed_torch_would_wrap_or_overflow_is_refused_before_anything_is_written(
    tmp_path, capsys, seed
):
    """torch's generator keeps 32 bits of a seed: 2**32 would train as 0 does while the
    config recorded 2**32, and 1e20 stopped with an overflow traceback."""
    from vaelab.cli import main

    out = tmp_path / "run"
    assert main(["train", "vae", "--seed", str(seed), "--quiet", "--out", str(out)]) == 1
    assert capsys.readouterr().err.startswith(f"vaelab: error: --seed {seed} is out of range")
    assert not out.exists()


@pytest.mark.parametrize(
    ("section", "name", "value", "message"),
    [
        ("train", "epochs", "2", "epochs must be int, got '2'"),
        ("train", "epochs", 1.5, "epochs must be int, got 1.5"),
        ("train", "lr", "fast", "lr must be float | None, got 'fast'"),
        ("data", "classes", 7, "classes must be list[int] | None, got 7"),
        ("model", "latent_dim", "2", "latent_dim must be int | None, got '2'"),
    ],
)
def test_a_setting_of_the_wrong_type_is_refused_by_name_before_anything_is_written(
    tmp_path, section, name, value, message
):
    config = RunConfig(DataConfig("mnist-sample", train_size=64), ModelConfig("vae"))
    setattr(getattr(config, section), name, value)
    with pytest.raises(SettingError, match=re.escape(message)) as refused:
        fit(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    assert refused.value.as_flags().startswith(f"--{name.replace('_', '-')} must be")


def test_an_unknown_precision_is_refused_before_the_run_folder_is_made(tmp_path):
    config = RunConfig(DataConfig("mnist-sample", train_size=64), train=TrainConfig(1))
    config.train.precision = "fp16"
    with pytest.raises(SettingError, match="unknown precision 'fp16'; choose fp32 or bf16"):
        fit(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_model_part_of_the_wrong_type_is_named_by_its_path(tmp_path):
    config = RunConfig(DataConfig("mnist-sample", train_size=64), ModelConfig("vae").resolved())
    config.model.likelihood.name = 3
    with pytest.raises(SettingError, match=r"^model.likelihood.name must be str, got 3$"):
        fit(config, tmp_path / "run", progress=False)


@pytest.mark.parametrize("batch_size", [0, -1])
def test_an_evaluation_batch_below_one_image_is_refused_by_name(batch_size):
    with pytest.raises(
        SettingError, match=f"batch_size must be a whole number of at least 1, got {batch_size}"
    ):
        evaluate(fresh_model(), blobs().float(), batch_size=batch_size)


def test_loss_sums_in_float32_where_float64_is_missing_give_the_same_metrics(monkeypatch):
    """MPS has no float64, so its loss sums are float32 (`sum_dtype`); on the CPU both
    can be run side by side."""
    runs = {}
    for dtype in (torch.float64, torch.float32):
        monkeypatch.setattr(vaelab_train, "sum_dtype", lambda device, dtype=dtype: dtype)
        runs[dtype] = train(fresh_model(), blobs(), config(), val=blobs(seed=1), progress=False)
    for wide, narrow in zip(runs[torch.float64], runs[torch.float32], strict=True):
        for key in ("train_loss", "train_kl", "val_loss", "val_kl"):
            assert narrow[key] == pytest.approx(wide[key], rel=1e-6), key
        assert narrow["train_loss"] != wide["train_loss"]  # float32 sums round otherwise


def test_one_epoch_then_resume_one_equals_two_epochs(tmp_path):
    straight = fresh_model()
    train(straight, blobs(), config(epochs=2), run=Run(tmp_path / "a"), progress=False)

    run = Run(tmp_path / "b")
    train(fresh_model(), blobs(), config(epochs=1), run=run, progress=False)
    resumed = fresh_model(seed=99)  # the checkpoint must restore everything
    train(resumed, blobs(), config(epochs=2), run=run, resume=True, progress=False)

    assert_same_weights(weights(straight), weights(resumed))
    assert Run(tmp_path / "a").metrics()[1]["train_loss"] == run.metrics()[1]["train_loss"]
    saved = load_file(str(run.path / "weights.safetensors"))
    assert_same_weights(saved, weights(resumed))


def test_the_learning_rate_steps_down_after_each_milestone():
    schedule = TrainConfig(lr=1.0, lr_milestones=[1, 3], lr_decay=0.5)
    assert [learning_rate(schedule, epoch) for epoch in (1, 2, 3, 4)] == [1.0, 0.5, 0.5, 0.25]
    assert learning_rate(TrainConfig(optimizer="adadelta"), 7) == 1.0  # the optimiser's default
    history = train(fresh_model(), blobs(), config(epochs=3, lr_milestones=[1]), progress=False)
    assert [row["lr"] for row in history] == [1e-3, 1e-4, 1e-4]


@pytest.mark.parametrize(
    "schedule",
    [
        {"lr_milestones": [3, 2]},
        {"lr_milestones": [0]},
        {"lr_decay": 0.0},
        {"lr": -1.0},
        {"epochs": -1},
        {"batch_size": 0},
        {"threads": 0},
    ],
)
def test_a_schedule_that_cannot_be_followed_is_refused_by_name(schedule):
    name = next(iter(schedule))
    with pytest.raises(SettingError, match=name):
        train(fresh_model(), blobs(), config(**schedule), progress=False)


@pytest.mark.parametrize(
    "part,value,message",
    [
        ("train", TrainConfig(epochs=1, lr=-1.0, device="cpu"), "lr"),
        ("model", ModelConfig("no-such-model"), "unknown model 'no-such-model'"),
        ("model", ModelConfig("vae", latent_dim=0), "latent_dim"),
    ],
)
def test_a_run_that_cannot_be_trained_writes_no_folder(tmp_path, part, value, message):
    config = RunConfig()
    config.data.dataset, config.data.train_size = "mnist-sample", 64
    config.train = TrainConfig(epochs=1, device="cpu")
    setattr(config, part, value)
    with pytest.raises(VaelabError, match=message):
        fit(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_dataset_that_cannot_be_read_writes_no_folder(tmp_path):
    config = RunConfig()
    config.data.dataset = str(tmp_path / "no-such-folder")
    with pytest.raises(VaelabError, match="no-such-folder"):
        fit(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_run_resumed_with_a_later_decay_is_that_schedule_from_the_start(tmp_path):
    decayed = config(epochs=3, lr_milestones=[2], lr_decay=0.1)
    straight = fresh_model()
    train(straight, blobs(), decayed, progress=False)

    run = Run(tmp_path)
    train(fresh_model(), blobs(), config(epochs=2), run=run, progress=False)
    resumed = fresh_model(seed=99)
    train(resumed, blobs(), decayed, run=run, resume=True, progress=False)
    assert_same_weights(weights(straight), weights(resumed))


def interrupt_at(model, batch: int):
    """Make `model` send this process a SIGINT when it is called for the `batch`-th time."""
    forward, calls = model.forward, []

    def forward_then_interrupt(x, y=None):
        calls.append(1)
        if len(calls) == batch:
            os.kill(os.getpid(), signal.SIGINT)
        return forward(x, y)

    model.forward = forward_then_interrupt
    return model


def test_ctrl_c_saves_a_mid_epoch_checkpoint_that_resumes_exactly(tmp_path):
    straight = fresh_model()
    train(straight, blobs(), config(epochs=2), progress=False)

    run = Run(tmp_path)
    wrapped = interrupt_at(fresh_model(), batch=7)  # epoch 2, batch 2 of 5
    with pytest.raises(Interrupted, match="epoch 2 after 2/5 batches"):
        train(wrapped, blobs(), config(epochs=2), run=run, progress=False)
    assert (tmp_path / CHECKPOINT).exists()
    assert len(run.metrics()) == 1

    resumed = fresh_model(seed=5)
    train(resumed, blobs(), config(epochs=2), run=run, resume=True, progress=False)
    assert_same_weights(weights(straight), weights(resumed))
    assert len(run.metrics()) == 2


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path):
    run = Run(tmp_path)
    model = fresh_model()
    train(model, blobs(), config(epochs=1), run=run, progress=False)
    good = load_file(str(tmp_path / "weights.safetensors"))
    with torch.no_grad():
        model.z_log_var.weight.fill_(float("nan"))
    with pytest.raises(TrainingError, match="loss became nan in epoch 1, batch 1.*lower learning"):
        train(model, blobs(), config(epochs=1), run=run, progress=False)
    assert_same_weights(good, load_file(str(tmp_path / "weights.safetensors")))
    assert len(run.metrics()) == 1


def test_damaged_checkpoint_is_reported_not_unpickled(tmp_path):
    run = Run(tmp_path)
    train(fresh_model(), blobs(), config(epochs=1), run=run, progress=False)
    (tmp_path / CHECKPOINT).write_bytes(b"\x80\x04garbage")
    with pytest.raises(RunError, match="damaged"):
        train(fresh_model(), blobs(), config(epochs=2), run=run, resume=True, progress=False)


def test_files_from_a_newer_format_are_refused_and_older_ones_load(tmp_path):
    path = tmp_path / WEIGHTS
    tensors = {k: v.contiguous() for k, v in fresh_model().state_dict().items()}
    save_tensors(tensors, path, {"epoch": 3})
    with safe_open(str(path), framework="pt") as f:
        assert json.loads(f.metadata()["vaelab"]) == {"epoch": 3, "format": FORMAT}
    loaded, meta = load_tensors(path)
    assert meta == {"epoch": 3}
    assert_same_weights(tensors, loaded)
    save_file(tensors, str(path), metadata={"vaelab": json.dumps({"epoch": 3})})
    assert load_tensors(path)[1] == {"epoch": 3}  # written before the format was recorded
    newer = {"epoch": 3, "format": FORMAT + 1}
    save_file(tensors, str(path), metadata={"vaelab": json.dumps(newer)})
    with pytest.raises(RunError, match=f"newer vaelab \\(file format {FORMAT + 1};.*upgrade"):
        load_tensors(path)


def test_callbacks_see_each_epoch():
    seen = []
    train(
        fresh_model(),
        blobs(),
        config(),
        progress=False,
        callbacks=[lambda epoch, model, row: seen.append((epoch, row["train_loss"]))],
    )
    assert [epoch for epoch, _ in seen] == [1, 2]


def test_images_the_model_cannot_reconstruct_are_refused_before_training():
    big = Dataset(torch.zeros(8, 1, 32, 32, dtype=torch.uint8), torch.zeros(8).long(), "big", ["a"])
    with pytest.raises(VaelabError, match=r"shape \(1, 32, 32\).*use image_size 28"):
        train(fresh_model(), big, config(), progress=False)


@pytest.mark.parametrize(
    "model, objective, message",
    [
        ("vae", {"samples": 5}, "the elbo objective does not read samples (got 5)"),
        ("iwae", {"beta": 3.0}, "the iwae objective does not read beta (got 3.0)"),
        ("ae", {"beta": 2.0}, "the reconstruction objective does not read beta (got 2.0)"),
        ("vae", {"capacity_steps": 100}, "capacity_steps grows the KL capacity, but no capacity"),
        ("vae", {"capacity": -3.0}, "capacity of the elbo objective must be a finite number, 0"),
        ("vae", {"beta": float("nan")}, "beta of the elbo objective must be a finite number"),
    ],
)
def test_objective_settings_the_model_would_ignore_or_cannot_follow_are_refused(
    model, objective, message, tmp_path
):
    config = RunConfig(model=ModelConfig(model).resolved())
    for name, value in objective.items():
        setattr(config.model.objective, name, value)
    with pytest.raises(SettingError, match=re.escape(message)):
        fit(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_run_saved_with_a_setting_its_objective_ignores_still_loads_and_resumes(tmp_path):
    """Older vaelab saved such settings without a word; their runs must stay usable."""
    config = RunConfig(train=TrainConfig(epochs=1, batch_size=64))
    config.data.train_size = 128
    run = fit(config, tmp_path / "run", progress=False)
    saved = json.loads((run.path / "config.json").read_text())
    saved["model"]["objective"]["samples"] = 5  # what `train vae --iw-samples 5` wrote
    (run.path / "config.json").write_text(json.dumps(saved))
    run.load_model()
    resumed = RunConfig.load(run.path / "config.json")
    resumed.train.epochs = 2
    assert len(fit(resumed, run.path, resume=True, progress=False).metrics()) == 2


def test_an_infinite_learning_rate_is_refused():
    with pytest.raises(SettingError, match="lr must be a finite number above 0, got inf"):
        vaelab_train.check_training(TrainConfig(lr=float("inf")))


def test_a_decay_without_milestones_is_refused_rather_than_ignored():
    with pytest.raises(SettingError, match="lr_decay 0.5 multiplies the learning rate after"):
        vaelab_train.check_training(TrainConfig(lr_decay=0.5))
    vaelab_train.check_training(TrainConfig(lr_decay=0.5, lr_milestones=[2]))
