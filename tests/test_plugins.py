"""The modules that workers import first, so that the user's registrations exist there too."""

import os
import subprocess
import sys

import pytest

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
