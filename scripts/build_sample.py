"""Build `src/vaelab/data/mnist_sample.npz`, the MNIST subset shipped with vaelab.

    python scripts/build_sample.py --data-dir /path/holding/mnist

Takes a class-balanced draw (`Dataset.stratified`, seed 0) of 800 images per
digit from the official training files and 200 per digit from the test
files. The archive is written with fixed timestamps, so the same inputs give
the same bytes and a rebuild shows no diff.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np

from vaelab.data import load

SEED = 0
PER_CLASS = {"train": 800, "test": 200}
OUT = Path(__file__).resolve().parents[1] / "src" / "vaelab" / "data" / "mnist_sample.npz"


def build(data_dir: str | None) -> dict[str, np.ndarray]:
    """Arrays `x`, `y`, `x_test`, `y_test`: (N, 28, 28) uint8 images and uint8 labels."""
    arrays = {}
    for split, prefix in (("train", ""), ("test", "_test")):
        full = load("mnist", split, data_dir=data_dir)
        sample = full.stratified(PER_CLASS[split] * len(full.classes), SEED)
        arrays["x" + prefix] = sample.images[:, 0].numpy()
        arrays["y" + prefix] = sample.labels.numpy().astype(np.uint8)
    return arrays


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like `np.savez_compressed`, but with fixed member timestamps for reproducible bytes."""
    with zipfile.ZipFile(path, "w") as archive:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, buffer.getvalue(), zipfile.ZIP_DEFLATED, compresslevel=9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder holding mnist/ (default: the usual lookup)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    save_npz(args.out, build(args.data_dir))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
