"""The README's examples run as written: its Python blocks, and its quick `vaelab` commands."""

import re
import shlex
from pathlib import Path

import pytest

from vaelab.cli import main

ROOT = Path(__file__).resolve().parents[1]
SET_UP = "pip install"
"""Blocks holding this install packages and run the demo or the suite: not run here."""


def blocks(page: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", page.read_text(), re.S)


def commands(page: Path) -> list[list[str]]:
    """The `vaelab ...` lines of the page's bash blocks, in order, as argument lists."""
    runnable = [block for block in blocks(page, "bash") if SET_UP not in block]
    lines = [line for block in runnable for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("vaelab ")]


@pytest.fixture
def offline(isolated_data_env, tmp_path, monkeypatch):
    """A fresh working folder with no data but the bundled sample and no network."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("page", ["README.md", "docs/api.md"])
def test_the_python_examples_run_as_written(page, offline, capsys):
    code = "\n".join(blocks(ROOT / page, "python"))
    assert code
    exec(compile(code, page, "exec"), {"__name__": "__example__"})
    if page == "README.md":
        printed = capsys.readouterr().out
        auroc = float(re.search(r"AUROC ([0-9.]+)", printed).group(1))
        assert auroc > 0.8  # the example trains long enough for a useful score


@pytest.mark.slow
def test_the_readme_commands_run_as_written(offline):
    found = commands(ROOT / "README.md")
    assert [args[0] for args in found] == ["train", "anomaly", "train"]
    for args in found:
        assert main([*args, "--quiet"] if args[0] == "train" else args) == 0, args
    assert (offline / "runs" / "vae7" / "anomaly" / "metrics.json").exists()
    assert len((offline / "runs" / "vae7" / "metrics.jsonl").read_text().splitlines()) == 100
