"""Two checks of the model presets on full MNIST, written to a results JSON.

1. `cvae`: does it draw the digit it is asked for? Train it, sample `--samples` images
   per label from the prior, and let the cached MNIST classifier (99.2% test accuracy)
   name them: the share named as asked, per label.
2. `iwae` (K = 5) against `vae`, trained alike: which has the tighter test bound?
   Both estimated with the same K = `--iw-samples` importance-weighted bound on the first
   `--test-images` test images (grey-level MNIST under the Bernoulli likelihood, as the
   article trains; not the binarised log-likelihood protocol).

    VAELAB_DATA_DIR=../shared/data python benchmarks/model_bars.py --out bench/model-bars
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import vaelab
from vaelab.classifier import cached_classifier
from vaelab.config import ModelConfig, RunConfig, TrainConfig
from vaelab.data import load
from vaelab.scores import iwae


def train(
    name: str, epochs: int, out: Path, seed: int, latent_dim: int | None = None, beta: float = 1.0
) -> tuple[vaelab.Run, float]:
    config = RunConfig()
    config.data.dataset = "mnist"
    config.model = ModelConfig(name, latent_dim=latent_dim).resolved()
    config.model.objective.beta = beta
    config.train = TrainConfig(epochs=epochs, seed=seed)
    started = time.perf_counter()
    run = vaelab.fit(config, out / name, resume=(out / name / "checkpoint.safetensors").exists())
    return run, time.perf_counter() - started


def label_accuracy(run: vaelab.Run, samples: int, seed: int) -> dict[str, float]:
    model = run.load_model()
    classifier, _ = cached_classifier()
    generator = torch.Generator().manual_seed(seed)
    accuracy = {}
    for label in range(10):
        asked = torch.full((samples,), label)
        with torch.inference_mode():
            images = model.sample(samples, generator, asked)
        named = classifier.predict(images)
        accuracy[str(label)] = (named == label).float().mean().item()
    return accuracy


def bound(run: vaelab.Run, images: torch.Tensor, k: int) -> float:
    return iwae(run.load_model(), images, samples=k, seed=0).mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--iw-samples", type=int, default=5000)
    parser.add_argument("--test-images", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latent-dim", type=int, help="the cvae's latent size (its preset's)")
    parser.add_argument("--beta", type=float, default=1.0, help="the cvae's KL weight (1)")
    parser.add_argument("--only", choices=["cvae", "iwae"], default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    protocol = {
        "dataset": "mnist (60,000 training images, grey levels)",
        "epochs": args.epochs,
        "batch_size": 128,
        "optimizer": "adam 1e-3",
        "seed": args.seed,
    }
    if args.only in (None, "cvae"):
        run, seconds = train("cvae", args.epochs, args.out, args.seed, args.latent_dim, args.beta)
        per_label = label_accuracy(run, args.samples, args.seed)
        results["cvae"] = {
            **protocol,
            "latent_dim": run.config.model.latent_dim,
            "beta": args.beta,
            "samples_per_label": args.samples,
            "classifier": "vaelab's cached MNIST CNN",
            "named_as_asked": per_label,
            "min": min(per_label.values()),
            "train_seconds": round(seconds, 1),
        }
        print(json.dumps(results["cvae"], indent=2))
    if args.only in (None, "iwae"):
        test = load("mnist", "test").float()[: args.test_images]
        rows = {}
        for name in ("vae", "iwae"):
            run, seconds = train(name, args.epochs, args.out, args.seed)
            rows[name] = {"nll_bound": bound(run, test, args.iw_samples), "train_seconds": seconds}
        results["iwae_vs_vae"] = {
            **protocol,
            "estimate": f"K={args.iw_samples} importance-weighted bound, nats",
            "test_images": args.test_images,
            **rows,
        }
        print(json.dumps(results["iwae_vs_vae"], indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
