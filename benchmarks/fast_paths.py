"""The training step's fast paths side by side on one device: bfloat16 autocast,
torch.compile, the inference pass size, and the training data kept on the device.

    python benchmarks/fast_paths.py --data-dir DIR [--device cuda] [--train-size N]
        [--epochs 3] [--rounds 2] [--arms fp32,bf16,compile,bf16+compile] [--json FILE]

Training: `vaelab.train.fit` of the article's VAE (batch 128) on the first N MNIST
training images, validated on the 10,000 test images after every epoch, from the same
seed in every arm, so the weights start equal and the noise is drawn alike; every arm
trains once a round. images/s is the median over the epochs after the first (the first
holds the compiling, reported on its own), then over the rounds; the last validation
loss, always a float32 evaluation, shows what the precision changed. Inference:
`vaelab.train.evaluate` of the 10,000 test images at 1,000 and at 10,000 images a pass
(median of `--repeats`). Data: the textbook loop of `benchmarks/reference.py` with the
training images on the device against on the host, copied there a batch at a time
(median of the epochs after the first). The arms of each part take turns: a training
each a round, a pass size each a repeat, a placement each an epoch.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from records import report, stamp  # noqa: E402
from reference import REFERENCES, plain_adam, train_epoch  # noqa: E402

from vaelab.config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from vaelab.data import load  # noqa: E402
from vaelab.devices import resolve_device  # noqa: E402
from vaelab.run import Run  # noqa: E402
from vaelab.threads import cores  # noqa: E402
from vaelab.train import evaluate, fit  # noqa: E402

ARMS = {
    "fp32": {},
    "bf16": {"precision": "bf16"},
    "compile": {"compile": True},
    "bf16+compile": {"precision": "bf16", "compile": True},
}


def training(args: argparse.Namespace, arms: list[str], out: Path) -> list[dict]:
    """Every arm trained once a round; a row per arm, its speed the median over rounds and
    its first epoch that of the first round (later rounds may reuse compiled kernels)."""
    runs: dict[str, list[list[dict]]] = {arm: [] for arm in arms}
    for round_ in range(args.rounds):
        for arm in arms:
            config = RunConfig(
                DataConfig("mnist", data_dir=args.data_dir, train_size=args.train_size),
                ModelConfig("vae"),
                TrainConfig(args.epochs, device=args.device, **ARMS[arm]),
            )
            runs[arm].append(fit(config, out / f"{arm}-{round_}", progress=False).metrics())
            print(arm, json.dumps(runs[arm][-1][-1]), flush=True)
    return [
        {
            "arm": arm,
            "images_per_s": statistics.median(
                statistics.median(m["images_per_s"] for m in metrics[1:]) for metrics in rounds
            ),
            "first_epoch_s": rounds[0][0]["seconds"],
            "val_loss": rounds[0][-1]["val_loss"],
            "train_loss": [m["train_loss"] for m in rounds[0]],
        }
        for arm, rounds in runs.items()
    ]


def seconds(fn, *args, **kwargs) -> float:
    started = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - started


def inference(model_run: Path, device: torch.device, data_dir: str, repeats: int) -> list[dict]:
    model = Run(model_run).load_model(device)
    images = load("mnist", "test", data_dir).float().to(device)
    evaluate(model, images)  # warm-up
    times: dict[int, list[float]] = {1000: [], 10_000: []}
    for _ in range(repeats):
        for batch, timed in times.items():
            timed.append(seconds(evaluate, model, images, batch_size=batch))
    return [
        {"batch": batch, "images_per_s": len(images) / statistics.median(timed)}
        for batch, timed in times.items()
    ]


def data_placement(args: argparse.Namespace, device: torch.device) -> list[dict]:
    images = load("mnist", "train", args.data_dir).float()[: args.train_size]
    arms = {}
    for place, data in (("device", images.to(device)), ("host", images)):
        torch.manual_seed(0)
        model = REFERENCES["vae"]().to(device)
        arms[place] = (model, plain_adam(model), data, torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {place: [] for place in arms}
    for _ in range(args.epochs):
        for place, (model, optimizer, data, order) in arms.items():
            times[place].append(seconds(train_epoch, model, optimizer, data, 128, order, device))
    return [
        {"data": place, "images_per_s": len(images) / statistics.median(timed[1:])}
        for place, timed in times.items()
    ]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cores()} CPU cores ({platform.machine()})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--train-size", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    device = resolve_device(args.device)
    args.device = device.type
    arms = args.arms.split(",")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        protocol = (
            f"article's VAE, first {args.train_size:,} MNIST training images, batch 128, "
            f"{args.epochs} epochs, seed 0, validated on the 10,000 test images; images/s "
            f"the median of the epochs after the first, then of {args.rounds} rounds"
        )
        results = {
            **stamp("fast-paths", protocol),
            "device": device_name(device),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "training": training(args, arms, out),
            "inference": inference(out / f"{arms[0]}-0", device, args.data_dir, args.repeats),
            "data": data_placement(args, device),
        }
    report(results, args.json)


if __name__ == "__main__":
    main()
