"""Models by name. New models register themselves here; the trainer never changes.

model = build(ModelConfig(name="vae", latent_dim=2))
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vaelab.config import ModelConfig
from vaelab.errors import VaelabError
from vaelab.models.ae import AE
from vaelab.models.base import Model, Output
from vaelab.models.blocks import glorot_init
from vaelab.models.vae import VAE

__all__ = ["AE", "MODELS", "VAE", "Model", "Output", "build", "register"]

MODELS: dict[str, Callable[[ModelConfig, int], Model]] = {
    "ae": lambda config, channels: AE(channels),
    "vae": lambda config, channels: VAE(config.latent_dim, channels),
}
INITS = ("glorot", "torch")


def register(name: str, factory: Callable[[ModelConfig, int], Model]) -> None:
    """Make `factory(config, channels)` buildable as `name`."""
    MODELS[name] = factory


def build(config: ModelConfig, channels: int = 1) -> Model:
    """A freshly initialised model; seed torch first for reproducible weights.

    Its conv weights are stored channels-last, the layout oneDNN's CPU
    convolutions run fastest on; only strides differ, never values.
    """
    if config.name not in MODELS:
        raise VaelabError(f"unknown model {config.name!r}; choose one of {', '.join(MODELS)}")
    if config.init not in INITS:
        raise VaelabError(f"unknown init {config.init!r}; choose one of {', '.join(INITS)}")
    model = MODELS[config.name](config, channels)
    if config.init == "glorot":
        glorot_init(model)
    return model.to(memory_format=torch.channels_last)
