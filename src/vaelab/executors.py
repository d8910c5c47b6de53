"""Where a benchmark's independent trainings run: here, or in a pool of spawned processes.

Every benchmark is a list of calls `fn(*args, threads=..., modules=...)`, one
per (task, seed): `threads` is the torch thread count each call should use
(the cores split between the calls running at once) and `modules` the
modules a spawned worker imports first, so the user's registered models
exist there too. A call keeps its own results on disk, so the order in
which they finish does not matter and a rerun skips what is done.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any


def threads_per_job(jobs: int) -> int:
    """Torch threads for each of `jobs` trainings running at once: the cores, shared out."""
    return max(1, (os.cpu_count() or 1) // jobs)


def run_calls(
    fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], jobs: int = 1
) -> Iterator[Any]:
    """Yield `fn(*args, threads=..., modules=...)` for every `args` in `calls`, as each
    finishes: one after the other in this process for one job, else in `jobs` spawned
    processes (spawned, not forked: torch's thread pools do not survive a fork)."""
    threads = threads_per_job(jobs)
    if jobs == 1:
        for args in calls:
            yield fn(*args, threads=threads, modules=[])
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from vaelab.models import registered_modules

    modules = registered_modules()
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(fn, *args, threads=threads, modules=modules) for args in calls]
        for future in as_completed(futures):
            yield future.result()
