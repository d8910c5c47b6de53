"""Every preset trains on the sample, saves, reloads, resumes bit for bit, is scored and plotted."""

from pathlib import Path

import pytest
import torch

import vaelab
from vaelab.bench import OneClassConfig, run_oneclass
from vaelab.cli import main
from vaelab.config import ModelConfig, RunConfig, TrainConfig
from vaelab.errors import VaelabError
from vaelab.models import build, describe_models
from vaelab.presets import PRESETS, register_preset


def tiny(name: str, epochs: int) -> RunConfig:
    config = RunConfig()
    config.data.dataset, config.data.train_size = "mnist-sample", 64
    config.model = ModelConfig(name)
    config.train = TrainConfig(epochs=epochs, batch_size=32, device="cpu")
    return config


@pytest.mark.parametrize("name", PRESETS)
def test_each_preset_trains_resumes_bit_for_bit_and_is_scored_and_plotted(name, tmp_path):
    straight = vaelab.fit(tiny(name, 2), tmp_path / "straight", progress=False)
    vaelab.fit(tiny(name, 1), tmp_path / "resumed", progress=False)
    resumed = vaelab.fit(tiny(name, 2), tmp_path / "resumed", resume=True, progress=False)
    a, b = straight.load_model().state_dict(), resumed.load_model().state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert straight.config.model == ModelConfig(name).resolved()
    images = vaelab.load_dataset("mnist-sample", "test").first(16).float()
    model = straight.load_model()
    if model.capabilities.conditional:
        with pytest.raises(VaelabError, match="is conditional"):
            vaelab.score(model, images, "recon-mse")
    else:
        assert vaelab.score(model, images, "recon-mse").shape == (16,)
    assert vaelab.plot(straight.path, "reconstructions", count=4).exists()
    if model.capabilities.sampling:
        label = 3 if model.capabilities.conditional else None
        assert vaelab.plot(straight.path, "samples", size=3, label=label).exists()


def test_the_cli_trains_a_preset_and_draws_the_digit_asked_for(tmp_path, capsys):
    out = tmp_path / "cvae"
    args = ["train", "cvae", "--train-size", "64", "--epochs", "1", "--batch-size", "32"]
    assert main([*args, "--quiet", "--out", str(out)]) == 0
    assert main(["plot", str(out), "samples", "--label", "3", "--size", "2"]) == 0
    assert (out / "figures" / "samples.png").exists()
    assert main(["plot", str(out), "samples", "--size", "2"]) == 1
    assert "choose the class to draw (label, e.g. 3; --label 3" in capsys.readouterr().err


def test_models_lists_every_preset_with_its_size(capsys):
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in PRESETS)
    assert "5,285" in listing and "425,284" in listing


def test_the_cli_sets_the_objective(tmp_path):
    out = tmp_path / "beta"
    args = ["train", "beta-vae", "--train-size", "32", "--epochs", "1", "--beta", "2.5"]
    assert main([*args, "--warmup-steps", "10", "--quiet", "--out", str(out)]) == 0
    objective = vaelab.Run(out).config.model.objective
    assert (objective.beta, objective.warmup_steps) == (2.5, 10)


@pytest.mark.slow
def test_a_user_registered_model_and_score_run_in_the_benchmarks_spawned_workers(
    tmp_path, user_module
):
    """The workers know neither until they import the user's module, as they do first."""
    config = OneClassConfig(
        dataset="mnist-sample",
        classes=[1, 7],
        seeds=1,
        model=ModelConfig("user-mlp-vae", latent_dim=4),
        train=TrainConfig(epochs=1, device="cpu"),
        score="user-worst-pixel",
        train_size=64,
    )
    results = run_oneclass(config, tmp_path, jobs=2, progress=False)
    assert set(results["per_class_auroc"]) == {"1", "7"}
    assert results["settings"]["model"]["name"] == "user-mlp-vae"
    assert results["settings"]["score"] == "user-worst-pixel"


def test_the_readme_model_table_matches_the_presets():
    text = (Path(__file__).parents[1] / "README.md").read_text()
    table = text.split("<!-- models-table -->")[1].split("<!-- end -->")[0]
    rows = {
        cells[0].strip("` "): (int(cells[1].replace(",", "")), cells[2])
        for line in table.strip().splitlines()[2:]
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    expected = {
        row["name"]: (row["parameters"], row["summary"])
        for row in describe_models()
        if row["name"] in PRESETS
    }
    assert rows == expected


def test_a_preset_registered_from_a_few_parts_builds(tmp_path):
    register_preset(
        "wide-vae-test",
        "a wider conv VAE",
        {
            "latent_dim": 16,
            "encoder": {"family": "conv", "widths": [32, 16, 16], "depth": 1, "activation": "relu"},
        },
    )
    try:
        model = build(ModelConfig("wide-vae-test"))
        assert model.latent_dim == 16 and model.capabilities.sampling
    finally:
        del PRESETS["wide-vae-test"]
