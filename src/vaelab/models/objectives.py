"""What a VAE minimises, per image: the ELBO (with beta, warm-up and capacity) or the
K-sample importance-weighted bound.

An objective takes the posterior's parameters and returns the model's `Output`; the
training loop only ever sees `Output.loss`. Schedules count optimiser steps in a buffer
(`steps`), so they are saved with the weights and resume exactly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from vaelab.config import ObjectiveConfig
from vaelab.errors import SettingError, VaelabError
from vaelab.models.base import Output
from vaelab.models.losses import gaussian_kl, importance_log_weights

if TYPE_CHECKING:
    from vaelab.models.vae import VAE


class Objective(nn.Module):
    """Counts optimiser steps when a schedule needs them."""

    def __init__(self, scheduled: bool) -> None:
        super().__init__()
        if scheduled:
            self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def after_step(self) -> None:
        if hasattr(self, "steps"):
            self.steps += 1

    def ramp(self, length: int) -> float:
        """Linear from 0 to 1 over the first `length` steps (1 when there is no ramp)."""
        return 1.0 if length == 0 else min(1.0, float(self.steps) / length)


class ELBO(Objective):
    """Reconstruction NLL + KL weight * KL, one posterior sample per image.

    With a capacity C the KL term is `beta * |KL - C(t)|` (Burgess et al. 2018): the
    posterior is pushed to carry C nats, and C grows so that it learns to use them in order.
    """

    def __init__(self, config: ObjectiveConfig) -> None:
        for name in ("beta", "warmup_steps", "capacity", "capacity_steps"):
            value = getattr(config, name)
            if value is not None and not (0 <= value < math.inf):
                raise SettingError(
                    f"{{{name}}} of the elbo objective must be a finite number, 0 or more; "
                    f"got {value}",
                    name,
                )
        if config.capacity is None and config.capacity_steps:
            raise SettingError(
                "{capacity_steps} grows the KL capacity, but no {capacity} is given",
                "capacity_steps",
                "capacity",
            )
        super().__init__(scheduled=config.warmup_steps > 0 or config.capacity is not None)
        self.config = config

    def kl_weight(self) -> float:
        return self.config.beta * self.ramp(self.config.warmup_steps)

    def forward(self, model: VAE, x: Tensor, y: Tensor | None, mean: Tensor, log_var: Tensor):
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        logits = model.pixel_logits(z, x, y)
        kl = gaussian_kl(mean, log_var)
        losses = {"recon": model.likelihood.nll(logits, x)}
        if self.config.capacity is None:
            weight = self.kl_weight()
            losses["kl"] = kl if weight == 1.0 else weight * kl
        else:
            target = self.config.capacity * self.ramp(self.config.capacity_steps)
            losses["kl_capacity"] = self.config.beta * (kl - target).abs()
        return Output(logits, z, losses, z_mean=mean, z_log_var=log_var)


class IWAE(Objective):
    """-log (1/K) sum_k p(x, z_k) / q(z_k | x), z_k ~ q(z | x) (Burda et al. 2016).

    A tighter bound than the ELBO for K > 1 (equal for K = 1); its gradient weighs each
    sample by its normalised importance weight. The K decodes run as one batch.
    """

    def __init__(self, config: ObjectiveConfig) -> None:
        if config.samples < 1:
            raise VaelabError(f"the iwae objective needs samples >= 1, got {config.samples}")
        super().__init__(scheduled=False)
        self.samples = config.samples

    def forward(self, model: VAE, x: Tensor, y: Tensor | None, mean: Tensor, log_var: Tensor):
        k, n = self.samples, len(x)
        z = mean + torch.exp(0.5 * log_var) * torch.randn((k, *mean.shape), device=mean.device)
        repeated = None if y is None else y.repeat(k)
        images = x.expand(k, *x.shape).flatten(0, 1)
        logits = model.pixel_logits(z.flatten(0, 1), images, repeated)
        log_likelihood = -model.likelihood.nll(logits, images).view(k, n)
        log_weights = importance_log_weights(log_likelihood, z, mean, log_var)
        bound = torch.logsumexp(log_weights, 0) - math.log(k)
        return Output(logits[:n], z[0], {"iwae": -bound}, z_mean=mean, z_log_var=log_var)


@dataclass(frozen=True)
class Registered:
    build: Callable[[ObjectiveConfig], Objective]
    summary: str
    reads: tuple[str, ...]
    """The `ObjectiveConfig` fields it follows; any other must keep its default."""


OBJECTIVES: dict[str, Registered] = {
    "elbo": Registered(
        ELBO, "the evidence lower bound, with beta, warm-up and capacity",
        ("beta", "warmup_steps", "capacity", "capacity_steps"),
    ),
    "iwae": Registered(
        IWAE, "the K-sample importance-weighted bound (Burda et al. 2016)", ("samples",)
    ),
}  # fmt: skip
"""A VAE's objectives by name, with what each is."""


def objective(config: ObjectiveConfig) -> Objective:
    """The objective `config` names, refusing settings it cannot follow."""
    if config.name not in OBJECTIVES:
        raise VaelabError(
            f"unknown objective {config.name!r} for a VAE; choose {' or '.join(OBJECTIVES)}"
        )
    return OBJECTIVES[config.name].build(config)


AUTOENCODER_OBJECTIVE = "reconstruction"
"""The autoencoder's objective, which reads none of the VAE objectives' settings."""


def refuse_unread(config: ObjectiveConfig) -> None:
    """Refuse a setting the objective would ignore without a word (a beta for the iwae
    bound, importance samples for the elbo), before a new run records it as used. Runs
    saved with one still load and resume: the check is for new trainings only."""
    if config.name == AUTOENCODER_OBJECTIVE:
        reads: tuple[str, ...] = ()
    elif config.name in OBJECTIVES:
        reads = OBJECTIVES[config.name].reads
    else:
        return  # a registered model's own objective: its settings are its own
    default = ObjectiveConfig()
    for field in dataclasses.fields(ObjectiveConfig):
        value = getattr(config, field.name)
        if field.name not in (*reads, "name") and value != getattr(default, field.name):
            raise SettingError(
                f"the {config.name} objective does not read {{{field.name}}} (got {value}); "
                "leave it out or choose a model that trains on another objective",
                field.name,
            )
