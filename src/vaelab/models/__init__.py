"""Models by name: presets built from parts, and models registered by their authors.

    model = build(ModelConfig("vae"))                      # the article's VAE
    model = build(ModelConfig("resnet-vae", latent_dim=64), shape=(1, 28, 28))

A preset (`vaelab.presets`) is a `ModelConfig` with its parts filled in; `build` makes
an `AE`, a `VAE` or a `VQVAE` from those parts. A model that parts cannot describe is
registered with `register(name, factory)`; the trainer, scores and experiments never change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from vaelab import plugins
from vaelab.config import ModelConfig
from vaelab.errors import SettingError, VaelabError
from vaelab.models.ae import AE
from vaelab.models.base import Capabilities, Model, Output
from vaelab.models.blocks import glorot_init
from vaelab.models.vae import VAE
from vaelab.models.vq import VQVAE
from vaelab.presets import PRESETS

__all__ = [
    "AE", "MODELS", "VAE", "VQVAE", "Capabilities", "Model", "Output", "build",
    "describe_models", "loss_unit", "parameter_count", "register",
]  # fmt: skip

Shape = tuple[int, int, int]
Factory = Callable[[ModelConfig, Shape], Model]
KINDS: dict[str, type[Model]] = {"ae": AE, "vae": VAE, "vq": VQVAE}
INITS = ("glorot", "torch")


@dataclass(frozen=True)
class Registered:
    factory: Factory
    summary: str


MODELS: dict[str, Registered] = {}
"""Models registered with `register`, by name (presets live in `vaelab.presets.PRESETS`)."""


def register(name: str, factory: Factory, summary: str = "") -> None:
    """Make `factory(config, shape)` buildable as `name` everywhere a model name is taken.

    The calling module is recorded so that worker processes (the benchmarks'
    `--jobs`) import it, and with it this registration, before building the model
    (`vaelab.plugins`).
    """
    if name in PRESETS:
        raise VaelabError(f"{name!r} is a preset; register your model under another name")
    if not callable(factory):
        raise VaelabError(
            f"the model {name!r} needs a factory (config, shape) -> Model, got "
            f"{type(factory).__name__}"
        )
    plugins.add(MODELS, name, Registered(factory, summary), Registered, "model")


def loss_unit(config: ModelConfig) -> str:
    """What the loss of a model of `config` measures (`Model.loss_unit`), without its
    weights: a run whose weights are damaged still has a loss curve to draw."""
    config = config.resolved()
    if config.name in MODELS:  # a registered model's class is known once it is built
        return build(config).loss_unit
    return KINDS[config.kind].loss_unit if config.kind in KINDS else Model.loss_unit


def build(config: ModelConfig, shape: Shape = (1, 28, 28)) -> Model:
    """A freshly initialised model for images of `shape` (C, H, W); seed torch first for
    reproducible weights.

    Its conv weights are stored channels-last, the layout oneDNN's CPU
    convolutions run fastest on; only strides differ, never values.
    """
    config = config.resolved()
    if config.latent_dim is not None and config.latent_dim < 1:
        raise SettingError(
            f"{{latent_dim}} must be at least 1, got {config.latent_dim}", "latent_dim"
        )
    if config.init not in INITS:
        raise VaelabError(f"unknown init {config.init!r}; choose one of {', '.join(INITS)}")
    if config.name in MODELS:
        model = MODELS[config.name].factory(config, shape)
    elif config.name in PRESETS or config.kind is not None:
        if config.kind not in KINDS:
            raise VaelabError(
                f"unknown model kind {config.kind!r}; choose one of {', '.join(KINDS)}"
            )
        refuse_codebook(config)
        model = KINDS[config.kind](config, shape)
    else:
        names = [*PRESETS, *MODELS]
        raise VaelabError(
            f"unknown model {config.name!r}; choose one of {', '.join(names)}, or register "
            "yours (vaelab.models.register; on the command line, name the module that "
            "registers it in VAELAB_PLUGINS)"
        )
    if config.init == "glorot":
        glorot_init(model)
    return model.to(memory_format=torch.channels_last)


def refuse_codebook(config: ModelConfig) -> None:
    """A codebook size given to a model without a codebook would be recorded as used and
    silently ignored: refuse it, naming the kind that reads it."""
    if config.codebook_size is not None and config.kind != "vq":
        raise SettingError(
            f"{{codebook_size}} is read by a VQ-VAE only (kind 'vq', e.g. the vq-vae preset); "
            f"{config.name} is of kind {config.kind!r}: leave it out",
            "codebook_size",
        )


def describe_models(shape: Shape = (1, 28, 28)) -> list[dict[str, object]]:
    """Name, summary and parameter count (for images of `shape`) of every preset and
    registered model."""
    summaries = {name: p.summary for name, p in PRESETS.items()}
    summaries |= {name: entry.summary for name, entry in MODELS.items()}
    return [
        {
            "name": name,
            "summary": summary,
            "parameters": parameter_count(build(ModelConfig(name), shape)),
        }
        for name, summary in summaries.items()
    ]


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
