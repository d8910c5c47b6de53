"""vaelab's speed against plain PyTorch, measured in one process on the same data.

    python benchmarks/speed.py --data-dir /path/with/mnist [--epochs 16] [--train-size 1280]

Training: vaelab's own `train()` and the textbook loop of `reference.py` run
one epoch each in turn (the reference epoch runs from a `train()` callback),
from the same initial weights, on the same images, at the same batch size.
Their first epoch is warm-up; images/s is the median over the other epochs,
the ratio the median of the per-epoch ratios (each pair ran back to back),
and the CPU-time ratio compares CPU seconds per epoch, which a busy machine
disturbs less than wall time.
Before that, both are checked to compute the same loss on the same batch with
the same noise. Then: scoring the 10k test images (per-image negative ELBO,
one sample), decoding a 20x20 latent grid in one batch, `vaelab --help`
start-up, and peak resident memory of training on full MNIST (separate
processes, so each peak is its own). Prints a Markdown report; `--json`
saves the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from itertools import pairwise
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

import contextlib

from reference import REFERENCES, copy_weights, plain_adam, train_epoch  # noqa: E402

from vaelab.config import ModelConfig, TrainConfig  # noqa: E402
from vaelab.data import load  # noqa: E402
from vaelab.models import build  # noqa: E402
from vaelab.train import evaluate, train  # noqa: E402

LOSS_TOLERANCE = 1e-5  # relative; float32 sums of 784 terms in another order
ARTICLE_SCHEDULE = {  # (model, epochs, training images, validation images per epoch)
    "AE, 10 epochs on 1,000 images": ("ae", 10, 1_000, 10_000),
    "VAE, 100 epochs on 60,000 images": ("vae", 100, 60_000, 10_000),
    "VAE on the 7s, 100 epochs on 6,265 images": ("vae", 100, 6_265, 1_028),
}


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def same_loss(name: str, images: torch.Tensor) -> dict:
    """Both models, same weights, same batch, same noise: the losses must agree."""
    torch.manual_seed(0)
    fast = build(ModelConfig(name=name))
    plain = REFERENCES[name]()
    copy_weights(fast, plain)
    fast.to(memory_format=torch.channels_last)
    batch = images[:128]
    torch.manual_seed(1)
    ours = fast(batch).loss.item()
    torch.manual_seed(1)
    theirs = plain.loss(batch).item()
    relative = abs(ours - theirs) / abs(theirs)
    if relative > LOSS_TOLERANCE:
        raise SystemExit(f"{name}: vaelab loss {ours} differs from the reference {theirs}")
    return {"vaelab_loss": ours, "reference_loss": theirs, "relative_difference": relative}


def interleaved_training(name: str, images, epochs: int, batch_size: int) -> dict:
    """vaelab's trainer and the reference loop, one epoch each in turn."""
    torch.manual_seed(0)
    model = build(ModelConfig(name=name))
    plain = REFERENCES[name]()
    copy_weights(model, plain)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, seed=0, device="cpu")
    plain_optimizer = plain_adam(plain)
    shuffle = torch.Generator().manual_seed(0)
    floats = images.float()
    plain_rows = []
    cpu_marks = [time.process_time()]

    def reference_epoch(epoch, _model, _row):
        cpu_marks.append(time.process_time())
        start = time.perf_counter()
        loss = train_epoch(plain, plain_optimizer, floats, batch_size, shuffle)
        plain_rows.append({"seconds": time.perf_counter() - start, "train_loss": loss})
        cpu_marks.append(time.process_time())

    rows = train(model, images, config, callbacks=[reference_epoch], progress=False)
    ours = [row["seconds"] for row in rows][1:]
    theirs = [row["seconds"] for row in plain_rows][1:]
    cpu = [b - a for a, b in pairwise(cpu_marks)][2:]  # vaelab, plain, vaelab, ...
    n = len(images)
    return {
        "vaelab_images_per_s": n / statistics.median(ours),
        "reference_images_per_s": n / statistics.median(theirs),
        "ratio": statistics.median(t / o for o, t in zip(ours, theirs, strict=True)),
        "ratio_per_epoch": [t / o for o, t in zip(ours, theirs, strict=True)],
        "cpu_time_ratio": statistics.median(cpu[1::2]) / statistics.median(cpu[0::2]),
        "vaelab_last_loss": rows[-1]["train_loss"],
        "reference_last_loss": plain_rows[-1]["train_loss"],
        "model": model,
        "plain": plain,
    }


def scoring(model, plain, test: torch.Tensor, repeats: int) -> dict:
    """Per-image negative ELBO (one sample) of the test set: vaelab's evaluate vs a plain loop."""

    def plain_scores():
        with torch.no_grad():
            return torch.cat(
                [plain.loss_per_image(test[i : i + 1000]) for i in range(0, len(test), 1000)]
            )

    ours = median_seconds(lambda: evaluate(model, test), repeats)
    theirs = median_seconds(plain_scores, repeats)
    return {"vaelab_s": ours, "reference_s": theirs, "ratio": theirs / ours}


def manifold(model, plain, repeats: int) -> dict:
    """Decode a 20x20 grid of the 2-D latent plane in one batch."""
    axis = torch.linspace(-3, 3, 20)
    grid = torch.cartesian_prod(axis, axis)

    def ours():
        with torch.inference_mode():
            return torch.sigmoid(model.decode(grid))

    def theirs():
        with torch.no_grad():
            return plain.decoder(plain.expand(grid).view(-1, 8, 4, 4))

    torch.testing.assert_close(ours(), theirs(), rtol=1e-4, atol=1e-5)
    a, b = median_seconds(ours, repeats), median_seconds(theirs, repeats)
    return {"vaelab_s": a, "reference_s": b, "ratio": b / a}


def cli_startup(repeats: int) -> dict:
    """`vaelab --help` wall time, and whether it imported torch."""
    exe = shutil.which("vaelab")
    command = [exe, "--help"] if exe else [sys.executable, "-m", "vaelab", "--help"]
    seconds = median_seconds(
        lambda: subprocess.run(command, check=True, capture_output=True), repeats
    )
    probe = (
        "import sys\nfrom vaelab.cli import main\ntry:\n    main(['--help'])\n"
        "except SystemExit:\n    pass\nprint('torch' in sys.modules, file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    return {"seconds": seconds, "imports_torch": done.stderr.strip().endswith("True")}


def peak_memory_child(which: str, data_dir: str, seconds: float) -> None:
    """Train on full MNIST for `seconds`, then validate on the 10k test set; print peak RSS."""
    train_set = load("mnist", "train", data_dir=data_dir)
    test = load("mnist", "test", data_dir=data_dir).float()
    torch.manual_seed(0)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started in background
    stop = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    stop.start()
    if which == "vaelab":
        model = build(ModelConfig(name="vae"))
        config = TrainConfig(epochs=1, batch_size=128, device="cpu")
        with contextlib.suppress(KeyboardInterrupt):
            train(model, train_set, config, progress=False)
        stop.cancel()
        evaluate(model, test)
    else:
        plain = REFERENCES["vae"]()
        optimizer = torch.optim.Adam(plain.parameters(), lr=1e-3, eps=1e-7)
        with contextlib.suppress(KeyboardInterrupt):
            train_epoch(plain, optimizer, train_set.float(), 128, torch.Generator())
        stop.cancel()
        with torch.no_grad():
            for i in range(0, len(test), 1000):
                plain.loss_per_image(test[i : i + 1000])
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def peak_memory(data_dir: str, seconds: float) -> dict:
    result = {}
    for which in ("vaelab", "reference"):
        script = [sys.executable, __file__, "--memory-child", which, "--data-dir", data_dir]
        done = subprocess.run(
            [*script, "--memory-seconds", str(seconds)], capture_output=True, text=True
        )
        if done.returncode:
            raise SystemExit(done.stderr)
        result[f"{which}_bytes"] = int(done.stdout.split()[-1])
    return result


def schedule_estimate(ae_rate: float, vae_rate: float, scoring_rate: float) -> dict:
    """Minutes for the article's full schedule at the measured training and scoring rates."""
    rates = {"ae": ae_rate, "vae": vae_rate}
    minutes = {}
    for label, (name, epochs, n_train, n_val) in ARTICLE_SCHEDULE.items():
        seconds = epochs * (n_train / rates[name] + n_val / scoring_rate)
        minutes[label] = seconds / 60
    return minutes


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def report(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['torch_threads']} torch threads, "
        f"load average {m['load_average'][0]:.1f} at the start; "
        f"Python {m['python']}, torch {m['torch']}, {m['platform']}",
        "",
        "| measurement | vaelab | plain PyTorch | ratio |",
        "|---|---|---|---|",
    ]
    for name in ("ae", "vae"):
        t = results["training"][name]
        lines.append(
            f"| train {name.upper()}, batch {results['batch_size']} (images/s, median) "
            f"| {t['vaelab_images_per_s']:,.0f} | {t['reference_images_per_s']:,.0f} "
            f"| **{t['ratio']:.2f}x** (epochs {min(t['ratio_per_epoch']):.2f}-"
            f"{max(t['ratio_per_epoch']):.2f}; CPU time {t['cpu_time_ratio']:.2f}x) |"
        )
    s, g = results["scoring"], results["manifold"]
    lines += [
        f"| score 10k test images, negative ELBO (s) | {s['vaelab_s']:.3f} "
        f"| {s['reference_s']:.3f} | {s['ratio']:.2f}x |",
        f"| decode a 20x20 latent grid (ms) | {1000 * g['vaelab_s']:.1f} "
        f"| {1000 * g['reference_s']:.1f} | {g['ratio']:.2f}x |",
    ]
    if "memory" in results:
        mem = results["memory"]
        lines.append(
            f"| peak resident memory, VAE on full MNIST (MB) | {mem['vaelab_bytes'] / 2**20:,.0f} "
            f"| {mem['reference_bytes'] / 2**20:,.0f} | |"
        )
    c = results["cli"]
    lines += [
        f"| `vaelab --help` start-up (s) | {c['seconds']:.3f} | | imports torch: "
        f"{c['imports_torch']} |",
        "",
        "Same loss on the same batch and noise (vaelab / plain, relative difference): "
        + "; ".join(
            f"{n.upper()} {v['vaelab_loss']:.6g} / {v['reference_loss']:.6g}, "
            f"{v['relative_difference']:.1e}"
            for n, v in results["same_loss"].items()
        ),
        "Last-epoch train loss (vaelab / plain): "
        + "; ".join(
            f"{n.upper()} {t['vaelab_last_loss']:.5g} / {t['reference_last_loss']:.5g}"
            for n, t in results["training"].items()
        ),
        "Article's full schedule at these rates (estimate, minutes): "
        + "; ".join(f"{k} {v:.1f}" for k, v in results["schedule_minutes"].items())
        + f"; total {sum(results['schedule_minutes'].values()):.1f}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("VAELAB_DATA_DIR"))
    parser.add_argument("--epochs", type=int, default=16, help="per model; the first is warm-up")
    parser.add_argument("--train-size", type=int, default=1280, help="images per epoch")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5, help="for scoring, decoding, start-up")
    parser.add_argument("--memory-seconds", type=float, default=20.0)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--memory-child", choices=["vaelab", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        peak_memory_child(args.memory_child, args.data_dir, args.memory_seconds)
        return
    results: dict = {"machine": machine(), "batch_size": args.batch_size}
    train_set = load("mnist", "train", data_dir=args.data_dir)
    test = load("mnist", "test", data_dir=args.data_dir).float()
    subset = train_set.stratified(args.train_size, seed=0)
    results["same_loss"] = {name: same_loss(name, subset.float()) for name in ("ae", "vae")}
    training = {}
    for name in ("ae", "vae"):
        training[name] = interleaved_training(name, subset, args.epochs, args.batch_size)
    vae = training["vae"]
    model, plain = vae["model"], vae["plain"]
    for row in training.values():
        del row["model"], row["plain"]
    results["training"] = training
    copy_weights(model, plain)  # the same trained weights for both
    results["scoring"] = scoring(model, plain, test, args.repeats)
    results["manifold"] = manifold(model, plain, args.repeats)
    results["cli"] = cli_startup(max(args.repeats, 10))
    if not args.skip_memory:
        results["memory"] = peak_memory(args.data_dir, args.memory_seconds)
    results["schedule_minutes"] = schedule_estimate(
        training["ae"]["vaelab_images_per_s"],
        vae["vaelab_images_per_s"],
        len(test) / results["scoring"]["vaelab_s"],
    )
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
