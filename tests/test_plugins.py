"""The user's registrations: refused when they would replace another or have the wrong shape,
and the modules that workers import first, so that they exist there too."""

import os
import subprocess
import sys

import pytest
import torch

from vaelab.cli import main
from vaelab.errors import VaelabError
from vaelab.plugins import import_registered, registered_modules

PRESET = """from vaelab.presets import register_preset

register_preset("user-wide-vae", "a VAE of latent 8 from the user's folder", {"latent_dim": 8})
"""


def test_the_users_module_is_recorded_and_vaelabs_own_are_not(user_module):
    assert "user_models" in registered_modules()
    assert not [m for m in registered_modules() if m.startswith("vaelab")]


def test_a_script_run_as_main_is_not_recorded():
    """A worker could not import `__main__` again: it would run the user's script."""
    script = (
        "from vaelab.scores import SCORES, register_score\n"
        "from vaelab.plugins import registered_modules\n"
        "register_score('mine', SCORES['recon-mse'])\n"
        "print(registered_modules(), 'mine' in SCORES)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.stdout.split() == ["[]", "True"], out.stderr


def test_a_registration_made_through_a_helper_records_the_module_being_imported(tmp_path):
    """Importing the helper's module in a worker would not register anything."""
    (tmp_path / "helpers.py").write_text(
        "from vaelab.presets import register_preset\n\n"
        "def wide(name):\n"
        "    register_preset(name, 'a wide VAE', {'latent_dim': 8})\n"
    )
    (tmp_path / "mypresets.py").write_text("from helpers import wide\n\nwide('user-wide')\n")
    script = (
        "import mypresets, helpers\n"
        "from vaelab.plugins import registered_modules\n"
        "helpers.wide('made-later')\n"  # outside any import: nothing would make it again
        "print(registered_modules())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.stdout.split() == ["['mypresets']"], out.stderr


def test_the_command_line_imports_the_modules_vaelab_plugins_names(tmp_path):
    """From the working directory, as `python -m` finds modules; `vaelab models` lists it."""
    (tmp_path / "mymodels.py").write_text(PRESET)
    env = {**os.environ, "VAELAB_PLUGINS": "mymodels"}
    out = subprocess.run(
        [sys.executable, "-m", "vaelab", "models"], cwd=tmp_path, env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "a VAE of latent 8 from the user's folder" in out.stdout


def test_a_plugin_that_cannot_be_imported_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the working directory joins it
    monkeypatch.setenv("VAELAB_PLUGINS", " nosuchmodule")
    assert main(["models"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "VAELAB_PLUGINS names 'nosuchmodule', which cannot be imported" in error


RECIPE = """from vaelab.config import ModelConfig, TrainConfig
from vaelab.recipes import Recipe, register_recipe

register_recipe(
    "user-quick", Recipe("a VAE of latent 4, one epoch", ModelConfig("vae", latent_dim=4),
    TrainConfig(epochs=1), "recon-mse", chosen="by hand, for a quick look"),
)
"""


def test_a_users_recipe_is_a_choice_of_the_benchmark(tmp_path):
    (tmp_path / "myrecipes.py").write_text(RECIPE)
    env = {**os.environ, "VAELAB_PLUGINS": "myrecipes"}
    out = subprocess.run(
        [sys.executable, "-m", "vaelab", "bench", "oneclass", "--help"], cwd=tmp_path, env=env,
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "user-quick" in out.stdout


def test_a_worker_that_cannot_import_a_registering_module_says_where_to_put_it():
    with pytest.raises(VaelabError, match="cannot import gone_models.*PYTHONPATH"):
        import_registered(["gone_models"])


def test_a_registration_never_replaces_another_in_silence(restored_registries):
    from vaelab.continual.strategies import Strategy, register_strategy
    from vaelab.presets import register_preset
    from vaelab.scores import SCORES, Score, register_score

    zeros = Score(lambda model, images: torch.zeros(len(images)), "zeros")
    with pytest.raises(VaelabError, match="a score named 'recon-bce' is already registered"):
        register_score("recon-bce", zeros)
    with pytest.raises(VaelabError, match="'naive' is already registered .the new digit only"):
        register_strategy("naive", Strategy("everything", lambda stage: stage.train))
    with pytest.raises(VaelabError, match="a preset named 'vae' is already registered"):
        register_preset("vae", "hijacked", {"kind": "ae"})
    register_score("zeros", zeros)
    register_score("zeros", zeros)  # the same module again, as one imported anew does
    assert SCORES["zeros"] is zeros and SCORES["recon-bce"].summary != "zeros"


def test_a_registration_of_the_wrong_shape_is_refused_when_made(restored_registries):
    from vaelab.models import register
    from vaelab.presets import register_preset
    from vaelab.scores import register_score

    with pytest.raises(
        VaelabError, match=r"'mine' must be registered as a Score\(...\), got function"
    ):
        register_score("mine", lambda model, images: images.sum((1, 2, 3)))
    with pytest.raises(VaelabError, match="needs a factory .config, shape. -> Model, got int"):
        register("forty-two", 42)
    with pytest.raises(VaelabError, match="registered under a non-empty name, got ''"):
        register("", lambda config, shape: None)
    with pytest.raises(VaelabError, match=r"ModelConfig's fields .*; got \['latnet_dim'\]"):
        register_preset("typo-vae", "a typo", {"latnet_dim": 3})


def test_a_score_that_declares_it_needs_a_posterior_refuses_an_autoencoder(restored_registries):
    from vaelab.config import ModelConfig
    from vaelab.models import build
    from vaelab.scores import Score, register_score, score

    register_score(
        "code-norm",
        Score(lambda model, x: model.encode(x).flatten(1).norm(dim=1), "", needs_posterior=True),
    )
    with pytest.raises(VaelabError, match="score 'code-norm' needs a model with a posterior"):
        score(build(ModelConfig("ae")), torch.rand(2, 1, 28, 28), "code-norm")
