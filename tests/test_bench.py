import json

import pytest

from vaelab.bench import (
    OneClassConfig,
    markdown_table,
    published_rows,
    run_oneclass,
    untrained_runs,
)
from vaelab.cli import main
from vaelab.config import ModelConfig, TrainConfig
from vaelab.errors import SettingError, VaelabError


def test_published_means_match_their_digits_where_they_have_them():
    rows = published_rows("mnist")
    assert {row["method"].split(" (")[0] for row in rows} >= {"Deep SVDD", "OCGAN", "GEOM"}
    for row in rows:
        assert row["citation"]
        if row["auroc"] or not row["unverified"]:
            assert sorted(row["auroc"], key=int) == [str(c) for c in range(10)]
            assert sum(row["auroc"].values()) / 10 == pytest.approx(row["mean"], abs=0.05)


def test_markdown_table_puts_rows_side_by_side():
    rows = [{"method": "m", "auroc": {"3": 91.25, "1": 99.0}, "mean": 95.1}]
    assert markdown_table(rows, [3, 1]).splitlines() == [
        "| method | 1 | 3 | mean |",
        "|---|---|---|---|",
        "| m | 99.0 | 91.2 | 95.1 |",
    ]


def bench_args(out, *extra):
    return [
        "bench", "oneclass", "--dataset", "mnist-sample", "--classes", "3", "--seeds", "1",
        "--epochs", "1", "--train-size", "200", "--latent-dim", "4", "--out", str(out),
        "--quiet", *extra,
    ]  # fmt: skip


def test_benchmark_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(bench_args(out)) == 0
    printed = capsys.readouterr()
    assert "mean AUROC" in printed.out
    assert "1 run in" in printed.err and "(class 3 seed 0) reconstruct every" in printed.err
    results = json.loads((out / "results.json").read_text())
    assert results["untrained_runs"] == [{"class": 3, "seed": 0}]  # one epoch: 2 steps
    assert "1 run untrained" in json.loads((out / "table.json").read_text())[0]["citation"]
    assert set(results["per_class_auroc"]) == {"3"}
    assert 0.5 < results["per_class_auroc"]["3"] <= 1
    assert results["mean_auroc"] == results["per_class_auroc"]["3"]
    assert results["settings"]["train"]["epochs"] == 1
    assert results["settings"]["score"] == "recon-mse-edge"
    assert "| vaelab vae (latent 4, 1 epoch, recon-mse-edge) |" in (out / "table.md").read_text()

    weights = out / "runs" / "class3-seed0" / "weights.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert main(bench_args(out)) == 0
    assert weights.stat().st_mtime_ns == stamp  # not retrained
    again = json.loads((out / "results.json").read_text())
    assert again["runs"] == results["runs"]

    assert main(bench_args(out, "--score", "recon-bce")) == 0  # rescored, not retrained
    assert weights.stat().st_mtime_ns == stamp
    assert (out / "runs" / "class3-seed0" / "result-recon-bce.json").exists()


def test_runs_whose_reconstructions_barely_vary_are_listed_as_untrained():
    done = [
        {"class": 1, "seed": 0, "reconstruction_spread": 0.2},
        {"class": 7, "seed": 1, "reconstruction_spread": 0.01},
        {"class": 7, "seed": 0, "reconstruction_spread": 0.0},
        {"class": 3, "seed": 0},  # written before the check
    ]
    assert untrained_runs(done) == [{"class": 7, "seed": 0}, {"class": 7, "seed": 1}]


def test_benchmark_refuses_to_mix_protocols(tmp_path):
    config = OneClassConfig(
        dataset="mnist-sample", classes=[3], seeds=1, train=TrainConfig(epochs=1), train_size=64
    )
    run_oneclass(config, tmp_path, progress=False)
    config.model.latent_dim = 8
    with pytest.raises(VaelabError, match="model.latent_dim differ"):
        run_oneclass(config, tmp_path, progress=False)


@pytest.mark.slow
def test_benchmark_in_parallel_processes(tmp_path):
    config = OneClassConfig(
        dataset="mnist-sample",
        classes=[1, 7],
        seeds=1,
        model=ModelConfig("vae", latent_dim=4),
        train=TrainConfig(epochs=1),
        train_size=64,
    )
    results = run_oneclass(config, tmp_path, jobs=2, progress=False)
    assert set(results["per_class_auroc"]) == {"1", "7"}
    assert results["settings"]["jobs"] == 2


def test_a_score_the_model_cannot_give_is_refused_before_any_class_trains(tmp_path):
    config = OneClassConfig(
        dataset="mnist-sample", classes=[3], seeds=1, train=TrainConfig(epochs=1), train_size=64
    )
    config.model, config.score = ModelConfig("ae"), "elbo"
    with pytest.raises(VaelabError, match="needs a model with a posterior"):
        run_oneclass(config, tmp_path, progress=False)
    assert not (tmp_path / "runs").exists()


def test_a_train_size_larger_than_a_class_is_refused_by_name(tmp_path, capsys):
    config = OneClassConfig(dataset="mnist-sample", classes=[3, 5], seeds=1, train_size=900)
    with pytest.raises(SettingError, match="train_size 900 is more than the 800 training images"):
        run_oneclass(config, tmp_path, progress=False)
    assert main(bench_args(tmp_path / "cli", "--train-size", "900")) == 1
    assert "lower --train-size" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cli" / "runs").exists()


@pytest.mark.slow
def test_an_autoregressive_decoder_records_no_spread(tmp_path):
    """A pixelcnn decoder reconstructs by sampling, so its spread would be noise: none is
    recorded, and the run is not listed as untrained."""
    config = OneClassConfig(
        dataset="mnist-sample",
        classes=[3],
        seeds=1,
        model=ModelConfig("pixel-vae"),
        train=TrainConfig(epochs=1),
        train_size=64,
        score="elbo",
    )
    results = run_oneclass(config, tmp_path, progress=False)
    task = json.loads(next(tmp_path.glob("runs/*/result-*.json")).read_text())
    assert task["reconstruction_spread"] is None
    assert results["untrained_runs"] == []
