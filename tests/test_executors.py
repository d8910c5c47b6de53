"""Executors: where a benchmark's calls run, and the same results here and on a Ray cluster."""

import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vaelab.bench import OneClassConfig, run_oneclass
from vaelab.classifier import Schedule, cached_classifier
from vaelab.cli import main
from vaelab.config import TrainConfig
from vaelab.continual import ContinualConfig, run_continual
from vaelab.data import load
from vaelab.errors import SettingError
from vaelab.executors import EXECUTORS, LocalExecutor, RayExecutor, get_executor

# Read by Ray when it is imported: its test cluster then listens on 127.0.0.1 only, not on
# this machine's network address.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

TESTS = Path(__file__).resolve().parent
needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason="Ray is not installed: pip install 'vaelab[ray]'",
)
TIMING = ("wall_seconds", "train_seconds", "score_seconds")


def sweep() -> OneClassConfig:
    return OneClassConfig(
        dataset="mnist-sample", classes=[0, 1], seeds=1, train=TrainConfig(epochs=1), train_size=64
    )


def untimed(results: dict) -> dict:
    """`results.json` without what depends on where and how fast the calls ran."""
    kept = copy.deepcopy(results)
    for name in ("jobs", "executor"):
        kept["settings"].pop(name)
    for record in [kept, *kept["runs"]]:
        for name in TIMING:
            record.pop(name, None)
    return kept


def where(value: int, *, threads: int, modules: list[str]) -> tuple[int, int, int, list[str]]:
    return value, os.getpid(), threads, modules


def test_the_registry_names_every_executor_with_a_summary(capsys):
    assert list(EXECUTORS) == ["local", "ray"]
    assert all(entry.name == name and entry.summary for name, entry in EXECUTORS.items())
    assert isinstance(get_executor(), LocalExecutor)
    with pytest.raises(SettingError, match="unknown executor 'dask'; choose one of local, ray"):
        get_executor("dask")
    with pytest.raises(SettingError) as refused:
        get_executor("local", ray_address="127.0.0.1:6379")
    assert refused.value.as_flags().startswith("--ray-address names a Ray cluster, but --executor")
    with pytest.raises(SystemExit):
        main(["bench", "oneclass", "--executor", "dask"])
    assert "argument --executor: invalid choice: 'dask'" in capsys.readouterr().err


def test_one_local_job_runs_the_calls_in_order_in_this_process():
    results = list(LocalExecutor().run(where, [(3,), (1,), (2,)]))
    assert [(v, pid, modules) for v, pid, _, modules in results] == [
        (v, os.getpid(), []) for v in (3, 1, 2)
    ]
    threads = {threads for _, _, threads, _ in results}  # the cores free when it started
    assert len(threads) == 1 and 1 <= threads.pop() <= os.cpu_count()


def test_without_ray_the_ray_executor_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if not installed
    with pytest.raises(SettingError) as refused:
        get_executor("ray")
    assert str(refused.value) == "executor ray needs Ray: pip install 'vaelab[ray]'"
    out = tmp_path / "out"
    args = ["bench", "oneclass", "--dataset", "mnist-sample", "--classes", "3", "--seeds", "1",
            "--epochs", "1", "--executor", "ray", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 1
    assert capsys.readouterr().err == (
        "vaelab: error: --executor ray needs Ray: pip install 'vaelab[ray]'\n"
    )
    assert not out.exists()


def dies_on_its_first_try(marker: str, fn, *args, threads: int, modules: list[str]):
    """`fn(*args)`, but the first time, its worker process dies first, as a lost node's does;
    `marker` records that it did."""
    if not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os._exit(1)
    return fn(*args, threads=threads, modules=modules)


class DyingWorkers(RayExecutor):
    """Ray, but every call's first worker dies."""

    def __init__(self, markers: Path) -> None:
        super().__init__()
        self.markers = markers

    def run(self, fn, calls, **options):
        marked = [(str(self.markers / f"call{i}"), fn, *args) for i, args in enumerate(calls)]
        return super().run(dies_on_its_first_try, marked, **options)


def refuses(attempts: str, *, threads: int, modules: list[str]):
    with open(attempts, "a") as f:
        f.write("tried\n")
    raise SettingError("{replay_size} 900 is too large", "replay_size")


def given(value: int, *, threads: int, modules: list[str]):
    import ray

    return value, threads, ray.get_runtime_context().get_assigned_resources()


@pytest.fixture(scope="module")
def ray_cluster():
    """A 2-CPU, 1-GPU (logical) Ray cluster whose workers import this folder's modules, as a
    user's registered models must be importable on every node; its address."""
    import ray

    path = os.pathsep.join(p for p in [str(TESTS), os.environ.get("PYTHONPATH")] if p)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYTHONPATH", path)
        ray.init(num_cpus=2, num_gpus=1, include_dashboard=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def local_results(tmp_path_factory):
    """The sweep in the local pool, each call with the threads it gets on the 2-CPU cluster."""
    with pytest.MonkeyPatch.context() as cores:
        cores.setattr(os, "cpu_count", lambda: 2)
        return run_oneclass(sweep(), tmp_path_factory.mktemp("local"), jobs=2, progress=False)


def test_ray_gets_the_users_own_modules_not_installed_packages(user_module):
    import sklearn.metrics

    from vaelab.executors import shipped_modules

    shipped = shipped_modules(["user_models", "sklearn.metrics", "user_models"])
    assert shipped == [user_module]  # sklearn is installed on the nodes as it is here
    assert sklearn.metrics  # imported, so that it is in sys.modules


@needs_ray
def test_ray_tasks_ask_for_their_threads_and_a_share_of_the_gpu(ray_cluster):
    executor = get_executor("ray")
    two = sorted(executor.run(given, [(1,), (2,)], jobs=2, gpu=True))
    assert two == [(v, 1, {"CPU": 1.0, "GPU": 0.5}) for v in (1, 2)]
    assert list(executor.run(given, [(3,)])) == [(3, 2, {"CPU": 2.0})]


@needs_ray
def test_an_error_of_the_call_itself_is_raised_as_it_is_and_not_retried(ray_cluster, tmp_path):
    attempts = tmp_path / "attempts"
    with pytest.raises(SettingError, match="^replay_size 900 is too large$"):
        list(get_executor("ray").run(refuses, [(str(attempts),)]))
    assert attempts.read_text() == "tried\n"


@needs_ray
@pytest.mark.slow
def test_a_sweep_on_ray_gives_the_local_pools_results(ray_cluster, local_results, tmp_path):
    out = tmp_path / "ray"
    results = run_oneclass(sweep(), out, jobs=2, executor="ray", progress=False)
    assert results["settings"]["executor"] == "ray"
    assert untimed(results) == untimed(local_results)

    # Another process, by the CLI's flags: it connects to the cluster by its address, finds
    # every call's result in the results folder and writes the same results again.
    args = ["bench", "oneclass", "--dataset", "mnist-sample", "--classes", "0,1", "--seeds", "1",
            "--epochs", "1", "--train-size", "64", "--jobs", "2", "--executor", "ray",
            "--ray-address", ray_cluster, "--out", str(out), "--quiet"]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "vaelab", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert untimed(json.loads((out / "results.json").read_text())) == untimed(local_results)


@needs_ray
@pytest.mark.slow
def test_a_call_whose_worker_dies_runs_again_and_the_sweep_completes(
    ray_cluster, local_results, tmp_path
):
    markers = tmp_path / "markers"
    markers.mkdir()
    results = run_oneclass(sweep(), tmp_path / "ray", jobs=2, executor=DyingWorkers(markers))
    died = sorted(p.name for p in markers.iterdir())
    assert died == ["call0", "call1"]  # each call's first worker died ...
    assert untimed(results) == untimed(local_results)  # ... and its next try finished it


SWEEP_WITH_A_USER_SCORE = """
import sys
sys.path.insert(0, "mine")  # the driver's path only, as a notebook may add it
import lab_models
from vaelab.bench import OneClassConfig, run_oneclass
from vaelab.config import TrainConfig

config = OneClassConfig(dataset="mnist-sample", classes=[0], seeds=1, train_size=64,
                        train=TrainConfig(epochs=1), score="user-worst-pixel")
run_oneclass(config, "out", executor="ray", progress=False)
"""


@needs_ray
@pytest.mark.slow
def test_ray_nodes_get_the_users_modules_from_the_sweep(tmp_path):
    """The user's module is on the Python path of the process starting the sweep, not on the
    workers' (as on another node): the sweep sends it to the cluster it starts. Without that
    a worker fails to import it."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "lab_models.py").write_text((TESTS / "user_models.py").read_text())
    (tmp_path / "sweep.py").write_text(SWEEP_WITH_A_USER_SCORE)
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "sweep.py"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["settings"]["score"] == "user-worst-pixel"
    assert [run["class"] for run in results["runs"]] == [0]


@needs_ray
@pytest.mark.slow
def test_continual_strategies_on_ray_give_the_local_pools_numbers(ray_cluster, tmp_path):
    config = ContinualConfig(
        dataset="mnist-sample", order=[7, 0], strategy="all", first_stage_epochs=1,
        train=TrainConfig(epochs=1, batch_size=32, device="cpu"), train_size=64,
        replay_size=16, dream_samples=100,
    )  # fmt: skip
    sample = load("mnist-sample", "train").stratified(500, seed=0), load("mnist-sample", "test")
    reader = cached_classifier(tmp_path, data=sample, schedule=Schedule(epochs=1), progress=False)
    with pytest.MonkeyPatch.context() as cores:
        cores.setattr(os, "cpu_count", lambda: 2)  # the threads each call gets on the cluster
        here = run_continual(config, tmp_path / "local", classifier=reader, jobs=2, progress=False)
    there = run_continual(
        config, tmp_path / "ray", classifier=reader, jobs=2, executor="ray", progress=False
    )
    assert list(there["strategies"]) == ["naive", "cumulative", "replay", "generative-replay"]
    for summary in [*here["strategies"].values(), *there["strategies"].values()]:
        for stage in summary["stages"]:
            stage.pop("train_seconds")
    assert there == here
