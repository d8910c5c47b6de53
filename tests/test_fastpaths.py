"""The training step's fast paths: bfloat16 autocast and torch.compile, and the pass sizes
by device. Measured here on the CPU; each is measured on any device by
`benchmarks/fast_paths.py`."""

from __future__ import annotations

import json

import pytest
import torch

from vaelab import batching
from vaelab.cli import main
from vaelab.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vaelab.errors import SettingError
from vaelab.fastpaths import check, training_forward
from vaelab.models import build
from vaelab.presets import PRESETS
from vaelab.run import Run
from vaelab.train import evaluate, fit

CPU = torch.device("cpu")
BF16_DRIFT = 2e-3
"""Relative difference allowed between the epoch losses of a bfloat16 and a float32 run
from the same weights and noise. Measured: 7e-5 and 1.8e-4 in the 2 epochs here."""


def sample_run(tmp_path, name: str, model: str = "vae", epochs: int = 2, **train) -> Run:
    config = RunConfig(
        DataConfig("mnist-sample", train_size=512),
        ModelConfig(model),
        TrainConfig(epochs, batch_size=128, device="cpu", **train),
    )
    return fit(config, tmp_path / name, progress=False)


def losses(run: Run, key: str = "train_loss") -> list[float]:
    return [row[key] for row in run.metrics()]


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_models_losses_stay_float32_under_bf16_autocast(name):
    torch.manual_seed(0)
    model = build(ModelConfig(name).resolved(), shape=(1, 28, 28))
    x, y = torch.rand(8, 1, 28, 28), torch.zeros(8, dtype=torch.long)
    out = training_forward(model, CPU, "bf16")(x, y)
    assert out.loss.dtype == torch.float32
    assert {part: v.dtype for part, v in out.losses.items()} == dict.fromkeys(
        out.losses, torch.float32
    )


def test_bf16_training_follows_the_float32_curve_and_keeps_float32_weights(tmp_path):
    fp32 = sample_run(tmp_path, "fp32")
    bf16 = sample_run(tmp_path, "bf16", precision="bf16")
    drift = [abs(a - b) / b for a, b in zip(losses(bf16), losses(fp32), strict=True)]
    assert 0 < max(drift) < BF16_DRIFT  # autocast ran (not 0) and kept the numbers
    weights = bf16.load_model().state_dict().values()
    assert all(w.dtype in (torch.float32, torch.float64, torch.int64) for w in weights)
    assert bf16.config.train.precision == "bf16" and fp32.config.train.precision == "fp32"


def test_the_validation_loss_is_a_float32_evaluation_whatever_the_training_precision(tmp_path):
    run = sample_run(tmp_path, "bf16", epochs=1, precision="bf16")
    val = run.config.data
    val.validation = "test"
    from vaelab.data import prepare

    _, test = prepare(val)
    again = evaluate(run.load_model(), test.float(), seed=run.config.train.seed)["loss"]
    assert losses(run, "val_loss") == [pytest.approx(again, rel=1e-6)]


def test_a_run_may_change_its_precision_and_compiling_when_resumed(tmp_path):
    run = sample_run(tmp_path, "run", epochs=1)
    config = run.config
    config.train.epochs, config.train.precision = 2, "bf16"
    fit(config, run.path, resume=True, progress=False)
    assert len(Run(run.path).metrics()) == 2
    assert Run(run.path).config.train.precision == "bf16"


def test_a_precision_that_cannot_be_used_is_refused_by_name():
    with pytest.raises(SettingError, match="precision.*fp16.*fp32 or bf16") as err:
        check("fp16", CPU)
    assert err.value.settings == ("precision",)
    with pytest.raises(SettingError, match="cpu and cuda only, not mps"):
        check("bf16", torch.device("mps"))


def test_the_cli_trains_in_bf16_and_names_a_bad_precision(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "ae", "--train-size", "256", "--epochs", "1", "--device", "cpu"]
    assert main([*args, "--precision", "bf16", "--out", str(out), "--quiet"]) == 0
    assert Run(out).config.train.precision == "bf16"
    with pytest.raises(SystemExit):
        main([*args, "--precision", "fp16", "--out", str(tmp_path / "other")])
    assert "invalid choice: 'fp16'" in capsys.readouterr().err


def test_the_benchmarks_train_in_bf16_when_asked_and_say_so_in_their_tables(tmp_path, capsys):
    oneclass = tmp_path / "oneclass"
    args = ["bench", "oneclass", "--dataset", "mnist-sample", "--classes", "3", "--seeds", "1",
            "--epochs", "1", "--train-size", "128", "--out", str(oneclass), "--quiet"]  # fmt: skip
    assert main([*args, "--precision", "bf16"]) == 0
    results = json.loads((oneclass / "results.json").read_text())
    assert results["settings"]["train"]["precision"] == "bf16"
    assert "1 epoch in bf16" in (oneclass / "table.md").read_text()
    assert main(args) == 1  # float32 is another protocol: refused, not mixed in
    assert "train.precision" in capsys.readouterr().err

    nll = tmp_path / "nll"
    args = ["bench", "nll", "--dataset", "mnist-sample", "--epochs", "1", "--train-size", "128",
            "--test-images", "20", "--iw-samples", "5", "--seeds", "1", "--out", str(nll),
            "--quiet", "--precision", "bf16", "--compile"]  # fmt: skip
    assert main(args) == 0
    run = Run(nll / "runs" / "seed0")
    assert run.config.train.precision == "bf16" and run.config.train.compile
    assert "lr 0.001, bf16 |" in (nll / "table.md").read_text()


def test_only_precision_other_than_float32_enters_a_benchmarks_protocol():
    assert "precision" not in TrainConfig().protocol()
    assert TrainConfig(precision="bf16").protocol()["precision"] == "bf16"
    assert "compile" not in TrainConfig(compile=True).protocol()


def test_a_gpu_takes_ten_times_larger_inference_passes_and_a_cpu_fewer_large_rows():
    assert batching.rows(CPU) == 1000
    assert batching.rows(torch.device("cuda")) == 10_000
    assert batching.rows(CPU, row_floats=784) == 1000
    assert batching.rows(CPU, row_floats=40_000) == 100
    assert batching.rows(torch.device("cuda"), row_floats=40_000) == 10_000


@pytest.mark.slow
def test_a_compiled_training_step_trains_as_the_eager_one(tmp_path):
    """The AE draws no noise, so compiled and eager differ by float rounding only (measured:
    1e-9 relative over 2 epochs). Compiling takes about 40 s here."""
    eager = sample_run(tmp_path, "eager", "ae")
    compiled = sample_run(tmp_path, "compiled", "ae", compile=True)
    for a, b in zip(losses(compiled), losses(eager), strict=True):
        assert a == pytest.approx(b, rel=1e-6)
    assert compiled.config.train.compile
