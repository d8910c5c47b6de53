"""The model card: what was trained, on what, for how long, to what loss.

Shown above the plane so that a barely trained model's grey blobs are read
as the model's state, not the tool's fault.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from vaelab.config import NO_DATASET, DataConfig
from vaelab.models import Model
from vaelab.plotting import describe
from vaelab.run import Run

FEW_EPOCHS = 10
"""Below this, decodings are still visibly blurry on MNIST: the card says so."""


def model_card(run: Run, model: Model, class_names: Sequence[str] | None) -> dict:
    """JSON-ready facts about the run; `conditional` tells the page whether decoding needs a
    class label (a label picker) besides the point. `class_names` are the run's dataset's,
    None where the explorer did not load it."""
    config = run.config
    metrics = run.metrics()
    last = metrics[-1] if metrics else {}
    epochs = len(metrics)
    return {
        "title": describe(run),
        "dataset": config.data.dataset,
        "train_size": config.data.train_size,
        "classes": trained_classes(config.data, class_names),
        "model": config.model.name,
        "latent_dim": model.latent_dim,
        "parameters": sum(p.numel() for p in model.parameters()),
        "generative": model.capabilities.sampling,
        "conditional": model.capabilities.conditional,
        "epochs": epochs,
        "planned_epochs": config.train.epochs,
        "train_loss": last.get("train_loss"),
        "val_loss": last.get("val_loss"),
        "loss_unit": model.loss_unit,
        "run": str(run.path.resolve()),
        "warning": few_epochs_warning(run, epochs),
    }


def trained_classes(data: DataConfig, names: Sequence[str] | None) -> list[str] | str:
    """The classes a run was trained on, by name where the names are known (else by id); a
    detector was fitted on normal images, which have no classes."""
    if data.dataset == NO_DATASET:
        return "its normal images only (an anomaly detector)"
    if data.classes is None:
        return "all"
    return [names[c] if names else str(c) for c in data.classes]


def few_epochs_warning(run: Run, epochs: int) -> str:
    if epochs >= FEW_EPOCHS:
        return ""
    more = max(FEW_EPOCHS * 3, run.config.train.epochs)
    if run.config.data.dataset == NO_DATASET:
        longer = f"fit the detector again with --epochs {more}"
    else:
        where = shlex.quote(str(run.path))
        longer = f"vaelab train {run.config.model.name} --out {where} --resume --epochs {more}"
    return (
        f"Trained for only {epochs} epoch{'s' if epochs != 1 else ''}: decoded images stay "
        f"blurry and grey until the model has learnt more. Train it for longer: {longer}."
    )
