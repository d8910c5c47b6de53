import dataclasses
import json

import pytest

from vaelab import AnomalyDetector
from vaelab.bench import OneClassConfig, published_rows, vaelab_row
from vaelab.cli import main
from vaelab.config import TrainConfig
from vaelab.errors import SettingError
from vaelab.recipes import DEFAULT_RECIPE, RECIPES, Recipe, default_recipe, get_recipe


def test_every_recipe_round_trips_through_its_dict():
    for name in RECIPES:
        recipe = get_recipe(name)
        again = Recipe.from_dict(json.loads(json.dumps(recipe.to_dict())))
        assert again == recipe and again.chosen and again.summary


def test_a_benchmark_knows_its_recipe_by_its_settings():
    assert OneClassConfig().recipe() == DEFAULT_RECIPE
    for name in RECIPES:
        assert OneClassConfig.from_recipe(name, seeds=1).recipe() == name
    changed = OneClassConfig.from_recipe("vae16-mse")
    changed.train.epochs = 3
    assert changed.recipe() is None
    seeded = OneClassConfig.from_recipe("vae16-mse", train=TrainConfig(epochs=30, seed=5))
    assert seeded.recipe() == "vae16-mse"  # the seed is each run's, not the recipe's


def test_a_dataset_with_its_own_recipe_gets_it_by_default():
    assert default_recipe("fashion-mnist") == "vae16-mse-edge-latent"
    assert default_recipe("mnist") == default_recipe("my-folder") == DEFAULT_RECIPE
    assert OneClassConfig(dataset="fashion-mnist").recipe() == "vae16-mse-edge-latent"
    assert OneClassConfig(dataset="fashion-mnist", score="recon-mse").recipe() == "vae16-mse"


def test_get_recipe_names_the_choices_and_hands_out_copies():
    with pytest.raises(SettingError, match="unknown recipe 'nope'; choose one of vae16-mse"):
        get_recipe("nope")
    get_recipe(DEFAULT_RECIPE).model.latent_dim = 99
    assert get_recipe(DEFAULT_RECIPE).model.latent_dim != 99


def test_the_detector_takes_its_recipe_and_refuses_an_unknown_one():
    detector = AnomalyDetector()
    assert detector.score_name() == get_recipe(DEFAULT_RECIPE).score
    assert AnomalyDetector(recipe="vae16-mse").score_name() == "recon-mse"
    assert AnomalyDetector(score="elbo").score_name() == "elbo"
    with pytest.raises(SettingError, match="unknown recipe"):
        AnomalyDetector(recipe="nope").fit([[0.0] * 784] * 20)


def test_the_published_table_holds_arnet_and_agad():
    rows = {row["method"].split(" (")[0]: row for row in published_rows("mnist")}
    assert rows["ARNet"]["mean"] == 98.3 and not rows["ARNet"]["unverified"]
    assert rows["AGAD"]["mean"] == 99.1 and rows["AGAD"]["unverified"]


def test_recipes_rescore_the_same_models_without_retraining(tmp_path, capsys):
    args = ["bench", "oneclass", "--dataset", "mnist-sample", "--classes", "3", "--seeds", "1",
            "--epochs", "1", "--train-size", "200", "--out", str(tmp_path), "--quiet"]  # fmt: skip
    assert main([*args, "--recipe", "vae16-mse"]) == 0
    weights = tmp_path / "runs" / "class3-seed0" / "weights.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert main([*args, "--recipe", "vae16-mse-edge"]) == 0
    assert main([*args, "--recipe", "vae16-mse-edge-latent"]) == 0
    assert weights.stat().st_mtime_ns == stamp
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["settings"]["score"] == "recon-mse-edge-latent"
    assert results["settings"]["recipe"] is None  # one epoch is not the recipe's thirty
    runs = tmp_path / "runs" / "class3-seed0"
    assert (runs / "result-recon-mse.json").exists()
    assert (runs / "result-recon-mse-edge.json").exists()
    assert (runs / "result-recon-mse-edge-latent.json").exists()


def test_a_recipe_row_is_labelled_by_its_name():
    config = OneClassConfig.from_recipe("vae16-mse", classes=[7], seeds=1)
    settings = {**dataclasses.asdict(config), "recipe": config.recipe()}
    settings["model"] = config.model.resolved().to_dict()
    results = {"settings": settings, "per_class_auroc": {"7": 0.97}, "mean_auroc": 0.97}
    row = vaelab_row(results)
    assert row["method"] == "vaelab vae16-mse: vae (latent 16, 30 epochs, recon-mse)"
    assert row["auroc"] == {"7": 97.0}
