"""Plain dataclasses that describe a run, saved as `config.json` in its folder.

A run can be rebuilt from its folder alone: `RunConfig.from_dict(json.load(...))`
gives back exactly the data selection, model and training settings it used.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaelab.errors import RunError, SettingError
from vaelab.jsonfiles import read_json

DEFAULT_SCORE = "recon-mse"
"""The anomaly score used unless one is asked for: on the one-class MNIST benchmark it beats
the Bernoulli scores (`recon-bce`, `elbo`), which rate thin digits as too normal, and it works
for every model, the AE included."""

DEFAULT_LR_DECAY = 0.1
"""The factor of each learning-rate milestone unless another is given."""


@dataclass
class DataConfig:
    """Which images a run trains and validates on.

    `dataset` is a name (`mnist`, `fashion-mnist`, `kmnist`, `mnist-sample`)
    or a path (a folder of class subfolders, or an `.npz` with `x` and `y`).
    `validation` is `"test"` (the test split, filtered to the same classes, as
    the article does) or a fraction of the training images held out.
    `binarize` is `"none"` (grey levels) or `"dynamic"`, the log-likelihood literature's
    protocol: every training image is re-drawn as Bernoulli(pixel intensity) each time a
    batch holds it, and the validation images are binarised once with a fixed seed.
    """

    dataset: str = "mnist-sample"
    data_dir: str | None = None
    classes: list[int] | None = None
    train_size: int | None = None
    subset: str = "first"
    validation: str | float = "test"
    image_size: int | None = None
    binarize: str = "none"


NO_DATASET = "arrays given to AnomalyDetector.fit"
"""The dataset a detector's run records: it was fitted on arrays or image files, not on a
dataset that can be loaded again."""


@dataclass
class NetworkConfig:
    """An encoder or a decoder: a family of layers and its sizes.

    - `conv`: the article's stack, `widths` per stage (encoder 16, 8, 8 and decoder 8, 8, 16
      in the article); 28x28 images;
    - `mlp`: fully connected, `widths` are the hidden sizes (the decoder's in reverse order);
    - `resnet`: a stride-2 conv per entry of `widths`, each followed by `depth` residual
      blocks (the decoder mirrors it with x2 upsampling).
    """

    family: str = "conv"
    widths: list[int] = field(default_factory=lambda: [16, 8, 8])
    depth: int = 1
    activation: str = "relu"


@dataclass
class LikelihoodConfig:
    """p(x | z): `bernoulli` (the article's, for nearly binary images) or `gaussian`.

    The Gaussian's mean is the sigmoid of the decoder's output, so it stays in the pixels'
    [0, 1]; its standard deviation is `sigma` (`variance="fixed"`) or one learned scalar
    (`variance="learned"`, starting at `sigma`), for images that are not nearly binary.
    `pixelcnn` is an autoregressive Bernoulli for binary images: each pixel's logit reads
    the decoder's output at its place and the image's earlier pixels, through a 7x7 masked
    convolution to `width` channels and `layers` residual 3x3 ones.
    """

    name: str = "bernoulli"
    variance: str = "learned"
    sigma: float = 0.1
    width: int = 32
    layers: int = 1


@dataclass
class ObjectiveConfig:
    """What training minimises, per image.

    - `elbo`: reconstruction NLL + weight * KL. The weight is `beta`, reached linearly over
      the first `warmup_steps` optimiser steps; with `capacity` (nats, Burgess et al. 2018)
      the KL term becomes `beta * |KL - C|`, C growing from 0 to `capacity` over
      `capacity_steps`;
    - `iwae`: the negative K-sample importance-weighted bound, K = `samples` (Burda et al.
      2016); K = 1 is the ELBO;
    - `reconstruction`: an autoencoder's mean pixel NLL (Keras' `binary_crossentropy`).
    """

    name: str = "elbo"
    beta: float = 1.0
    warmup_steps: int = 0
    capacity: float | None = None
    capacity_steps: int = 0
    samples: int = 1


@dataclass
class ModelConfig:
    """Which model to build: a preset's name and its parts.

    `name` is a preset (`vaelab models` lists them) or a model registered with
    `vaelab.models.register`. Parts left as None are the preset's (`resolved()` fills them
    in; a run saves its config resolved), so `ModelConfig("vae")` is the article's VAE and
    `ModelConfig("mlp-vae-iwae", latent_dim=20)` that preset with another latent size.
    `kind` is `vae` (a Gaussian posterior and a standard normal prior), `ae` (a
    deterministic code: the encoder's output) or `vq` (a VQ-VAE: the encoder's grid of
    vectors, each replaced by the nearest of `codebook_size` learned ones; no other kind
    reads `codebook_size`). A `conditional` model
    sees the image's label (one of `num_classes`) in its encoder and decoder.
    """

    name: str = "vae"
    latent_dim: int | None = None
    init: str = "glorot"
    kind: str | None = None
    encoder: NetworkConfig | None = None
    decoder: NetworkConfig | None = None
    likelihood: LikelihoodConfig | None = None
    objective: ObjectiveConfig | None = None
    conditional: bool | None = None
    num_classes: int = 10
    codebook_size: int | None = None

    def resolved(self) -> ModelConfig:
        """A copy with every part left as None filled in from the preset `name`."""
        from vaelab.presets import resolve

        return resolve(self)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data; the pixelcnn's size only for that likelihood, and the
        codebook's only where one is set (a VQ-VAE's), so that the settings of results
        folders written before they existed still match."""
        fields = dataclasses.asdict(self)
        if self.likelihood is not None and self.likelihood.name != "pixelcnn":
            for name in PIXELCNN_FIELDS:
                fields["likelihood"].pop(name)
        if self.codebook_size is None:
            fields.pop("codebook_size")
        return fields

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelConfig:
        values = {k: PARTS[k](**v) if k in PARTS and v is not None else v for k, v in raw.items()}
        return cls(**values)


PARTS: dict[str, type] = {
    "encoder": NetworkConfig,
    "decoder": NetworkConfig,
    "likelihood": LikelihoodConfig,
    "objective": ObjectiveConfig,
}
"""The fields of `ModelConfig` that are parts, and the dataclass of each."""
PIXELCNN_FIELDS = ("width", "layers")
"""The fields of `LikelihoodConfig` that only the pixelcnn likelihood reads."""


@dataclass
class TrainConfig:
    """How to train. `lr=None` takes the optimiser's default (adam 1e-3, adadelta 1.0);
    `threads=None` uses the cores nobody else is using when the run starts
    (`vaelab.threads`), and the run's saved config records the count chosen.

    The learning rate is multiplied by `lr_decay` after each epoch of `lr_milestones`: a
    staged schedule such as the IWAE paper's (stages of 3^i epochs, each 10^(-1/7) times
    the last: milestones 1, 4, 13, 40, 121, 364, 1093 of 3280 epochs).

    Two fast paths of the training step (`vaelab.fastpaths`), off by default:
    `precision="bf16"` runs its forward pass under bfloat16 autocast (evaluation stays in
    float32), and `compile=True` compiles it with `torch.compile` (on a GPU with CUDA
    graphs). Both may change when a run is resumed.
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float | None = None
    lr_milestones: list[int] = field(default_factory=list)
    lr_decay: float = DEFAULT_LR_DECAY
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    precision: str = "fp32"
    compile: bool = False

    def protocol(self) -> dict[str, Any]:
        """The fields that change what a benchmark trains (not the seed, device, threads or
        compiling). A constant learning rate leaves the schedule's fields out, and float32
        the precision, as results folders written before those settings existed recorded
        them, so they still resume."""
        fields = dataclasses.asdict(self)
        for name in ("seed", "device", "threads", "compile"):
            fields.pop(name)
        if not self.lr_milestones:
            fields.pop("lr_milestones")
            fields.pop("lr_decay")
        if self.precision == "fp32":
            fields.pop("precision")
        return fields


@dataclass
class DistributedConfig:
    """How many processes trained the run, and over which backend they shared gradients.

    A record, not a setting: `fit` fills it in from torchrun's environment (one process,
    backend None, without torchrun), and a resumed run records its latest processes.
    """

    world_size: int = 1
    backend: str | None = None


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        for part in ("data", "model", "train", "distributed"):
            if not isinstance(raw.get(part, {}), dict):
                raise RunError(f"config section {part} is {raw[part]!r}, not an object")
        try:
            sections = {
                "data": DataConfig(**raw.get("data", {})),
                "model": ModelConfig.from_dict(raw.get("model", {})),
                "train": TrainConfig(**raw.get("train", {})),
                "distributed": DistributedConfig(**raw.get("distributed", {})),
            }
        except TypeError as err:
            field_name = str(err).rpartition("argument ")[2] or str(err)
            raise RunError(
                f"config has an unknown field {field_name}; the run folder is damaged, or was "
                "written by another vaelab"
            ) from None
        for name, section in sections.items():
            if found := mistyped(section, name):
                where, value, hint = found
                raise RunError(
                    f"config field {where} is {value!r}, not of type {spelled(hint)}; the run "
                    "folder is damaged"
                )
        sections["model"] = sections["model"].resolved()
        return cls(**sections)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        try:
            raw = read_json(path, "the run folder is damaged: train it again into another folder")
        except FileNotFoundError:
            raise RunError(f"{path} not found: is this a vaelab run folder?") from None
        if missing := [part for part in ("data", "model", "train") if part not in raw]:
            raise RunError(
                f"{path} has no {' or '.join(missing)} section; the run folder is damaged"
            )
        try:
            return cls.from_dict(raw)
        except RunError as err:
            raise RunError(f"{path}: {err}") from None


def check_types(config: Any) -> None:
    """Refuse a setting whose value its annotation does not allow (`epochs="2"`,
    `classes=7`), naming it, before any work: a typed config given the wrong type would
    otherwise fail deep inside, far from the mistake."""
    if found := mistyped(config, ""):
        where, value, hint = found
        if where.count(".") > 1:  # a part of a model's part (model.likelihood.name): no flag
            raise SettingError(f"{where} must be {spelled(hint)}, got {value!r}")
        name = where.rpartition(".")[2]  # a section's setting (train.epochs): its own flag
        raise SettingError(f"{{{name}}} must be {spelled(hint)}, got {value!r}", name)


def mistyped(config: Any, where: str) -> tuple[str, Any, Any] | None:
    """The first field of `config` (nested configs too) whose value its annotation does not
    allow: its dotted name under `where`, the value and the annotation; None if all fit."""
    hints = typing.get_type_hints(type(config))
    for name in (f.name for f in dataclasses.fields(config)):
        value, dotted = getattr(config, name), f"{where}.{name}".lstrip(".")
        if dataclasses.is_dataclass(value):
            if found := mistyped(value, dotted):
                return found
        elif not _allowed(value, hints[name]):
            return dotted, value, hints[name]
    return None


def _allowed(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_allowed(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if origin in (list, tuple):
        return isinstance(value, (list, tuple)) and all(_allowed(v, args[0]) for v in value)
    if hint is float:  # Python's own numbers: a config is saved as JSON, which has no others
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, (str, os.PathLike))  # a folder's path is a name too
    return not isinstance(hint, type) or isinstance(value, hint)


def spelled(hint: Any) -> str:
    """An annotation as a person reads it: `int | None`, `list[int]`."""
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("NoneType", "None")


def changed_settings(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The dotted names (`model.latent_dim`) of the nested settings that differ, sorted: to
    say what stops a folder from being resumed."""
    old, new = _flat(saved), _flat(wanted)
    return sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat
