"""The thread count: pinned by OMP_NUM_THREADS, else the free cores, chosen once per run."""

from __future__ import annotations

import json
import subprocess

import torch

from vaelab import threads
from vaelab.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vaelab.train import fit


def test_omp_num_threads_pins_the_count(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.choose() == 3
    assert threads.choose(limit=1) == 3  # an explicit pin wins over a job's share


def test_without_a_pin_the_count_is_the_free_cores_at_most_the_limit(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert 1 <= threads.choose() <= threads.cores()
    assert threads.choose(limit=1) == 1


def test_a_busy_process_is_seen_as_busy():
    busy = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL)
    try:
        assert threads.busy_elsewhere(0.3) > 0.5
    finally:
        busy.kill()
        busy.wait()


def tiny_run(epochs: int, threads_asked: int | None = None) -> RunConfig:
    return RunConfig(
        DataConfig("mnist-sample", train_size=64, classes=[7]),
        ModelConfig("vae"),
        TrainConfig(epochs=epochs, batch_size=32, threads=threads_asked),
    )


def test_a_run_records_the_count_it_chose_and_a_resume_keeps_it(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS")
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(threads, "free_cores", lambda window=0.1: 1)
        fit(tiny_run(1), tmp_path, progress=False)
        assert json.loads((tmp_path / "config.json").read_text())["train"]["threads"] == 1
        assert torch.get_num_threads() == 1
        monkeypatch.setattr(threads, "free_cores", lambda window=0.1: 2)  # the machine changed
        fit(tiny_run(2), tmp_path, resume=True, progress=False)
        assert json.loads((tmp_path / "config.json").read_text())["train"]["threads"] == 1
        fit(tiny_run(1, threads_asked=2), tmp_path / "asked", progress=False)
        assert json.loads((tmp_path / "asked" / "config.json").read_text())["train"]["threads"] == 2
    finally:
        torch.set_num_threads(before)
