"""How many threads torch should use: as many as there are cores nobody else is using.

On a laptop something else always runs. Torch's default, one OpenMP thread
per core, assumes the machine is idle: with one other busy process on two
cores, two threads spin for the one free core, and each waits at every
barrier for the other to be scheduled (training slowed 4x, measured in
`benchmarks/shared_machine.py`). One thread per *free* core avoids the
convoy and keeps the quiet speed when the machine is quiet.

The count is chosen once per run, when it starts, and kept in the run's
config: the sums inside a batch's gradient depend on how many threads split
them, so a run keeps one count to stay bit-exact across resumes, and a
recorded count (`--threads N`) repeats a run's numbers exactly.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

STAT = Path("/proc/stat")
WINDOW = 0.1
"""Seconds over which other processes' CPU use is sampled (10 ticks of a 100 Hz clock)."""


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _busy_and_total() -> tuple[int, int] | None:
    """Busy and total CPU ticks of the whole machine since boot, or None off Linux."""
    try:
        fields = [int(v) for v in STAT.read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # user .. steal; guest time is already inside user
    return total - idle, total


def busy_elsewhere(window: float = WINDOW) -> float:
    """How many cores other processes kept busy over the last `window` seconds."""
    start, own, clock = _busy_and_total(), time.process_time(), time.monotonic()
    time.sleep(window)
    end = _busy_and_total()
    if start is None or end is None or end[1] == start[1]:
        return 0.0
    machine = (end[0] - start[0]) / (end[1] - start[1]) * (os.cpu_count() or 1)
    mine = (time.process_time() - own) / max(time.monotonic() - clock, 1e-9)
    return max(0.0, machine - mine)


def free_cores(window: float = WINDOW) -> int:
    """Cores of this process's set that nobody else is using now (at least one)."""
    return max(1, min(cores(), round(cores() - busy_elsewhere(window))))


def choose(limit: int | None = None) -> int:
    """The threads a run should use: OMP_NUM_THREADS if set, else the free cores, at most
    `limit` (a benchmark job's share of the cores)."""
    pinned = os.environ.get("OMP_NUM_THREADS", "")
    if pinned.isdigit() and int(pinned) > 0:
        return int(pinned)
    free = free_cores()
    return free if limit is None else max(1, min(limit, free))
