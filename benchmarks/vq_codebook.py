"""How well does the VQ-VAE's codebook serve its codes, and at what reconstruction?

    python benchmarks/vq_codebook.py --json docs/results/vq-vae-sample.json

Trains `vq-vae` (512 vectors, and 64), and the `ae` it quantises, on the bundled sample's
8,000 training images (Adam lr 1e-3, batch 128, seed 0), resuming each run to every number
of epochs (bit for bit the weights of a straight run), and after each measures on the
2,000 test images what `vaelab eval` reports: the reconstruction loss, and for a VQ-VAE
how many codebook vectors the test codes use and their perplexity. Then
`python scripts/doc_tables.py` redraws the table in docs/models.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import vaelab
from vaelab.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vaelab.train import evaluate_run

sys.path.insert(0, str(Path(__file__).parent))
from records import report, stamp  # noqa: E402

MODELS = {"vq-vae": {}, "vq-vae, 64 vectors": {"codebook_size": 64}, "ae": {}}
PROTOCOL = (
    "mnist-sample: trained on its 8,000 training images, measured on its 2,000 test images "
    "(validation on them too, as `vaelab train` does by default; nothing was chosen by it); "
    "Adam lr 1e-3, batch 128, seed 0; recon is the mean pixel BCE; perplexity is exp of the "
    "entropy of how often the test codes pick each codebook vector"
)


def measure(name: str, fields: dict[str, int], epochs: list[int], folder: Path) -> list[dict]:
    """One row per number of epochs, resuming one run from each to the next."""
    rows, seconds = [], 0.0
    preset = name.split(",")[0]
    for count in epochs:
        model = ModelConfig(preset, **fields)
        config = RunConfig(DataConfig("mnist-sample"), model, TrainConfig(count, seed=0))
        started = time.perf_counter()
        run = vaelab.fit(config, folder, resume=bool(rows), progress=False)
        seconds += time.perf_counter() - started
        measured = evaluate_run(run)
        row = {"model": name, "epochs": count, "recon": round(measured["recon"], 4)}
        if "codes_used" in measured:
            row |= {
                "codebook_size": measured["codebook_size"],
                "codes_used": measured["codes_used"],
                "perplexity": round(measured["code_perplexity"], 1),
            }
        rows.append(row | {"train_seconds": round(seconds, 1)})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="results file to write")
    parser.add_argument("--epochs", default="10,30", help="numbers of epochs to measure at")
    args = parser.parse_args()
    epochs = sorted(int(e) for e in args.epochs.split(","))
    rows = []
    for name, fields in MODELS.items():
        steps = epochs[:1] if "64" in name else epochs  # the smaller codebook: the first only
        with tempfile.TemporaryDirectory() as folder:
            rows += measure(name, fields, steps, Path(folder) / "run")
    report({**stamp("vq-codebook", PROTOCOL), "rows": rows}, args.json)


if __name__ == "__main__":
    main()
