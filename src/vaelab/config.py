"""Plain dataclasses that describe a run, saved as `config.json` in its folder.

A run can be rebuilt from its folder alone: `RunConfig.from_dict(json.load(...))`
gives back exactly the data selection, model and training settings it used.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaelab.errors import RunError

DEFAULT_SCORE = "recon-mse"
"""The anomaly score used unless one is asked for: on the one-class MNIST benchmark it beats
the Bernoulli scores (`recon-bce`, `elbo`), which rate thin digits as too normal, and it works
for every model, the AE included."""


@dataclass
class DataConfig:
    """Which images a run trains and validates on.

    `dataset` is a name (`mnist`, `fashion-mnist`, `kmnist`, `mnist-sample`)
    or a path (a folder of class subfolders, or an `.npz` with `x` and `y`).
    `validation` is `"test"` (the test split, filtered to the same classes, as
    the article does) or a fraction of the training images held out.
    """

    dataset: str = "mnist-sample"
    data_dir: str | None = None
    classes: list[int] | None = None
    train_size: int | None = None
    subset: str = "first"
    validation: str | float = "test"
    image_size: int | None = None


@dataclass
class ModelConfig:
    """Which model to build; `name` is a key of the model registry."""

    name: str = "vae"
    latent_dim: int = 2
    init: str = "glorot"


@dataclass
class TrainConfig:
    """How to train. `lr=None` takes the optimiser's default (adam 1e-3, adadelta 1.0)."""

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float | None = None
    seed: int = 0
    device: str = "auto"


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        try:
            return cls(
                data=DataConfig(**raw.get("data", {})),
                model=ModelConfig(**raw.get("model", {})),
                train=TrainConfig(**raw.get("train", {})),
            )
        except TypeError as err:
            raise RunError(f"config has an unknown or missing field: {err}") from None

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise RunError(f"{path} not found: is this a vaelab run folder?") from None
        except json.JSONDecodeError as err:
            raise RunError(f"{path} is not valid JSON ({err}); the run folder is damaged") from None
        return cls.from_dict(raw)
