"""Training speed on a shared machine: quiet, and beside one and two busy processes.

    python benchmarks/shared_machine.py --data-dir /path/with/mnist [--epochs 4] [--json FILE]

Each arm is a whole `vaelab train vae` process on the first 20,000 MNIST
training images (batch 128), so thread pools start as a user's would. The
busy processes are `yes > /dev/null`, one core each, started before the
training and stopped after it. Two thread settings, side by side in each
load: every core (OMP_NUM_THREADS = the cores, torch's default on an idle
machine) and vaelab's choice (the cores nobody else uses, chosen when the run
starts). images/s is the median over the epochs after the first; the
slowdown is quiet speed / loaded speed with the same setting. Arms are
interleaved (every setting under one load, then the next load) and the whole
round is repeated `--rounds` times; the table shows the median per cell.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from vaelab.threads import cores

LOADS = (0, 1, 2)


def train_speed(data_dir: str, epochs: int, threads: str | None) -> float:
    """Median images/s of one `vaelab train vae` process after its first epoch."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = threads
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "vaelab", "train", "vae", "--dataset", "mnist",
                   "--data-dir", data_dir, "--train-size", "20000", "--epochs", str(epochs),
                   "--out", out, "--quiet"]  # fmt: skip
        subprocess.run(command, env=env, check=True, capture_output=True)
        rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(row["images_per_s"] for row in rows[1:])


def measure(data_dir: str, epochs: int, rounds: int) -> dict[str, dict[int, float]]:
    settings = {"every core": str(cores()), "vaelab's choice": None}
    speeds: dict[str, dict[int, list[float]]] = {s: {n: [] for n in LOADS} for s in settings}
    for _ in range(rounds):
        for load in LOADS:
            busy = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(load)]
            try:
                for name, threads in settings.items():
                    speeds[name][load].append(train_speed(data_dir, epochs, threads))
            finally:
                for process in busy:
                    process.kill()
                    process.wait()
    return {s: {n: statistics.median(v) for n, v in load.items()} for s, load in speeds.items()}


def report(speeds: dict[str, dict[int, float]]) -> str:
    lines = [
        f"`vaelab train vae`, 20,000 MNIST images, {cores()} cores; images/s (slowdown vs quiet)",
        "",
        "| threads | quiet | 1 busy process | 2 busy processes |",
        "|---|---:|---:|---:|",
    ]
    for name, by_load in speeds.items():
        cells = [f"{by_load[0]:,.0f}"]
        cells += [f"{by_load[n]:,.0f} ({by_load[0] / by_load[n]:.1f}x)" for n in LOADS[1:]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", help="also save the numbers here")
    args = parser.parse_args()
    speeds = measure(args.data_dir, args.epochs, args.rounds)
    print(report(speeds))
    if args.json:
        Path(args.json).write_text(json.dumps(speeds, indent=2) + "\n")


if __name__ == "__main__":
    main()
