"""Where a benchmark's independent trainings run: here, in spawned processes, or on Ray.

Every benchmark is a list of calls `fn(*args, threads=..., modules=...)`, one
per (task, seed): `threads` is the torch thread count each call should use
(a machine's cores split between the `jobs` calls running on it at once) and
`modules` the modules a worker imports first, so that the user's registered
models, scores and strategies exist there too (`vaelab.plugins`). A call keeps
its own results on disk, so the order in which they finish does not matter and
a rerun skips what is done.

An executor runs such calls and yields each result as it finishes.
`EXECUTORS` names them (`--executor NAME`); `get_executor` builds one from the
settings a benchmark takes (`executor`, `ray_address`), the same as the CLI's flags.
"""

from __future__ import annotations

import json
import site
import sys
import sysconfig
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from vaelab.config import changed_settings
from vaelab.errors import SettingError, VaelabError
from vaelab.jsonfiles import read_json
from vaelab.threads import choose as available_threads

RETRIES = 3
"""How many times Ray runs a call again after its worker died (a lost node, a killed process)."""


class Executor(ABC):
    """Runs a benchmark's calls and yields their results as they finish."""

    name: ClassVar[str]
    summary: ClassVar[str]

    @classmethod
    def create(cls, ray_address: str | None = None) -> Executor:
        """This executor from a benchmark's settings; only Ray's takes an address."""
        if ray_address is not None:
            raise SettingError(
                f"{{ray_address}} names a Ray cluster, but {{executor}} is {cls.name}; "
                "add {executor} ray or leave {ray_address} out",
                "ray_address",
                "executor",
            )
        return cls()

    def runs_here(self, jobs: int) -> bool:
        """Whether the calls run in this process (so they may draw progress bars)."""
        return False

    @abstractmethod
    def run(
        self,
        fn: Callable[..., Any],
        calls: Sequence[tuple[Any, ...]],
        *,
        jobs: int = 1,
        gpu: bool = False,
    ) -> Iterator[Any]:
        """Yield `fn(*args, threads=..., modules=...)` for every `args` in `calls` as each
        finishes, `jobs` at a time on each machine; `gpu`: the calls train on CUDA, so an
        executor that places them reserves each one `1 / jobs` of a GPU."""


class LocalExecutor(Executor):
    name = "local"
    summary = "on this machine, one call after another or in --jobs spawned processes"

    def runs_here(self, jobs: int) -> bool:
        return jobs == 1

    def run(
        self,
        fn: Callable[..., Any],
        calls: Sequence[tuple[Any, ...]],
        *,
        jobs: int = 1,
        gpu: bool = False,
    ) -> Iterator[Any]:
        """One after the other in this process for one job, else in `jobs` spawned processes
        (spawned, not forked: torch's thread pools do not survive a fork). The calls share
        this machine's devices, so `gpu` changes nothing here."""
        threads = threads_per_job(jobs, available_threads())
        if self.runs_here(jobs):
            for args in calls:
                yield fn(*args, threads=threads, modules=[])
            return
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from multiprocessing import get_context

        from vaelab.plugins import registered_modules

        modules = registered_modules()
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(fn, *args, threads=threads, modules=modules) for args in calls]
            for future in as_completed(futures):
                yield future.result()


class RayExecutor(Executor):
    name = "ray"
    summary = (
        "on a Ray cluster (--ray-address, else a local one), one task per call, "
        "run again if its worker dies"
    )

    def __init__(self, address: str | None = None) -> None:
        import_ray()  # refuse before any work, not when the first call is sent
        self.address = address

    @classmethod
    def create(cls, ray_address: str | None = None) -> Executor:
        return cls(ray_address)

    def run(
        self,
        fn: Callable[..., Any],
        calls: Sequence[tuple[Any, ...]],
        *,
        jobs: int = 1,
        gpu: bool = False,
    ) -> Iterator[Any]:
        """Send every call to the cluster as a task asking for its threads in CPUs (the
        smallest node's CPUs // `jobs`, so every node can take one) and `1 / jobs` of a GPU
        for `gpu`. A task whose worker dies runs again, up to `RETRIES` times; an error the
        call raises (a bad setting, a diverged training) is the call's own and is raised here
        as it is, not retried. Tasks not finished when this stops are cancelled."""
        ray = import_ray()
        from vaelab.plugins import registered_modules

        modules = registered_modules()
        with connected(ray, self.address, modules):
            threads = threads_per_job(jobs, smallest_node_cpus(ray))
            task = ray.remote(fn).options(
                num_cpus=threads,
                num_gpus=1 / jobs if gpu else 0,
                max_retries=RETRIES,
                retry_exceptions=False,
            )
            pending = [task.remote(*args, threads=threads, modules=modules) for args in calls]
            try:
                while pending:
                    [done], pending = ray.wait(pending)
                    yield ray_result(ray, done)
            finally:
                for ref in pending:
                    ray.cancel(ref)


EXECUTORS: dict[str, type[Executor]] = {e.name: e for e in (LocalExecutor, RayExecutor)}
"""Every executor by the name `--executor` takes, each with its one-line `summary`."""


def get_executor(executor: str | Executor = "local", ray_address: str | None = None) -> Executor:
    """The executor named `executor` with its settings, or `executor` itself when it is one
    (it then carries its own settings)."""
    if isinstance(executor, Executor):
        if ray_address is not None:
            raise SettingError(
                "{ray_address} goes with an executor's name; an executor object carries its own",
                "ray_address",
            )
        return executor
    if executor not in EXECUTORS:
        raise SettingError(
            f"unknown {{executor}} {executor!r}; choose one of {', '.join(EXECUTORS)}",
            "executor",
        )
    return EXECUTORS[executor].create(ray_address)


def threads_per_job(jobs: int, cores: int) -> int:
    """Torch threads for each of `jobs` trainings running at once on `cores`: shared out."""
    return max(1, cores // jobs)


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise SettingError(
            "{executor} ray needs Ray: pip install 'vaelab[ray]'", "executor"
        ) from None
    return ray


@contextmanager
def connected(ray: ModuleType, address: str | None, modules: list[str]) -> Iterator[None]:
    """Use this process's Ray connection if it has one; else connect to `address` (without
    one, Ray's own choice: `RAY_ADDRESS`, a cluster `ray start` began on this machine, or a
    new local one) for this sweep alone, sending the user's registering `modules` to every
    node, and disconnect after it (a local one stops)."""
    if ray.is_initialized():
        yield
        return
    shipped = shipped_modules(modules)
    runtime_env = {"py_modules": shipped} if shipped else None
    ray.init(address=address, include_dashboard=False, runtime_env=runtime_env)
    try:
        yield
    finally:
        ray.shutdown()


def shipped_modules(modules: list[str]) -> list[ModuleType]:
    """The top-level modules or packages holding `modules`, for Ray to copy to every node
    (its `py_modules`), so a cluster's nodes need only vaelab, not the user's files.

    Left out: what is installed (under site-packages: the nodes install it as the driver
    did, and a copy would shadow their build of it), and a namespace package (no
    `__init__.py`), which Ray cannot copy: those must be on the nodes' Python path."""
    installed = {sysconfig.get_path(key) for key in ("purelib", "platlib")}
    installed.add(site.getusersitepackages())
    tops = [sys.modules[top] for top in dict.fromkeys(name.partition(".")[0] for name in modules)]
    return [
        module
        for module in tops
        if getattr(module, "__file__", None)
        and not any(Path(module.__file__).is_relative_to(root) for root in installed if root)
    ]


def smallest_node_cpus(ray: ModuleType) -> int:
    """The CPUs of the cluster's smallest live node with any: a task asking for more could
    never be placed on it."""
    cpus = [node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]]
    return int(min((c for c in cpus if c), default=1))


def ray_result(ray: ModuleType, ref: Any) -> Any:
    """A task's result; the call's own error as it raised it (`VaelabError`s stay one line);
    one line when Ray lost the task on every try."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        raise err.cause from err
    except ray.exceptions.RayError as err:
        raise VaelabError(
            f"Ray lost a call {RETRIES + 1} times ({type(err).__name__}; the Ray logs say "
            "why); the finished calls are kept in the results folder: rerun to go on"
        ) from err


SETTINGS_FILE = "settings.json"


def claim_settings(folder: Path, settings: dict[str, Any], file: str = SETTINGS_FILE) -> None:
    """Record an experiment's `settings` in `folder/file`, or refuse if the folder holds one
    with others: results of different protocols must never be summarised together."""
    from vaelab.run import refuse_a_run_folder  # torch: the CLI's --help must not wait on it

    refuse_a_run_folder(folder)
    path = folder / file
    if path.exists():
        saved = read_json(path, "restore it, or write into another folder")
        if changed := changed_settings(saved, settings):
            raise SettingError(
                f"{folder} holds results with other settings ({', '.join(changed)} "
                "differ); use another {out} or the same settings to resume it",
                "out",
            )
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n")


def run_with_progress(
    runner: Executor,
    fn: Callable[..., Any],
    calls: Sequence[tuple[Any, ...]],
    *,
    jobs: int,
    gpu: bool,
    desc: str,
    describe: Callable[[Any], str],
    progress: bool = True,
) -> list[Any]:
    """Every result of `runner.run(fn, calls)`, with a bar that ticks as each call finishes
    and shows `describe` of the latest result."""
    from tqdm.auto import tqdm

    done = []
    with tqdm(total=len(calls), desc=desc, unit="run", disable=not progress) as bar:
        for result in runner.run(fn, calls, jobs=jobs, gpu=gpu):
            done.append(result)
            bar.set_postfix_str(describe(result))
            bar.update(1)
    return done
