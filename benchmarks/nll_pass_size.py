"""The likelihood estimate's speed by pass size, for each family of decoder.

    python benchmarks/nll_pass_size.py --data-dir DIR [--images 100] [--samples 100]
        [--batches 1,2,5,10] [--rounds 3] [--models mlp-vae-iwae,vae,resnet-vae,pixel-vae]
        [--threads 1,2] [--json FILE]

`vaelab.likelihood.importance_nll` of the first `--images` binarised MNIST test images at
K = `--samples`, freshly initialised models (the time does not depend on the weights'
values), at each fixed batch (images a pass; a pass decodes batch x min(K, 100) samples)
and at the default, which sizes a pass by the largest activation one decoded sample makes
(`vaelab.batching`). Every setting runs once a round, in turn; the time is the median of
the rounds. All of it is measured at each torch thread count of `--threads`. Each image's
noise is its own, so every setting gives the same estimates up to float rounding: the
largest difference from the default's is recorded.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from records import report, stamp  # noqa: E402

from vaelab.config import ModelConfig
from vaelab.data import load
from vaelab.likelihood import default_batch, importance_nll, largest_activation
from vaelab.models import build
from vaelab.threads import cores

MODELS = ("mlp-vae-iwae", "vae", "resnet-vae", "pixel-vae")


def timed(model: torch.nn.Module, images: torch.Tensor, samples: int, batch: int):
    started = time.perf_counter()
    values = importance_nll(model, images, samples, batch=batch)
    return time.perf_counter() - started, values


def measure(name: str, images: torch.Tensor, args: argparse.Namespace, threads: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build(ModelConfig(name).resolved())
    default = default_batch(model, images, args.samples)
    batches = sorted({*args.batches, default})
    times: dict[int, list[float]] = {batch: [] for batch in batches}
    estimates: dict[int, torch.Tensor] = {}
    for _ in range(args.rounds):
        for batch in batches:
            seconds, estimates[batch] = timed(model, images, args.samples, batch)
            times[batch].append(seconds)
    medians = {batch: statistics.median(t) for batch, t in times.items()}
    row = {
        "model": name,
        "threads": threads,
        "largest_activation": largest_activation(model, images[:1]),
        "default_batch": default,
        "seconds": {str(batch): medians[batch] for batch in batches},
        "largest_difference": max(
            (estimates[b] - estimates[default]).abs().max().item() for b in batches
        ),
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--batches", default="1,2,5,10")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    thread_counts = [int(t) for t in args.threads.split(",")]
    images = (load("mnist", "test", args.data_dir).float()[: args.images] > 0.5).float()
    protocol = (
        f"importance_nll of the first {args.images} MNIST test images binarised at 0.5, "
        f"K = {args.samples}, freshly initialised models, seed 0; the median of "
        f"{args.rounds} rounds, every batch once a round"
    )
    results = {
        **stamp("nll-pass-size", protocol),
        "device": f"{cores()} CPU cores ({platform.machine()})",
        "batches": args.batches,
        "torch": torch.__version__,
        "rows": [
            measure(name, images, args, threads)
            for threads in thread_counts
            for name in args.models.split(",")
        ],
    }
    report(results, args.json)


if __name__ == "__main__":
    main()
