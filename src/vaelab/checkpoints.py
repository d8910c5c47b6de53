"""A training run's checkpoint: model, optimiser, random streams and the position in the
epoch, as safetensors and JSON, so that a resumed run continues bit-exact and nothing is
ever unpickled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from vaelab.errors import RunError
from vaelab.models import Model
from vaelab.run import CHECKPOINT, Run, load_tensors, save_tensors


@dataclass
class Position:
    """Where training stands: finished epochs, plus progress inside the next one."""

    epoch: int = 0
    step: int = 0
    sums: list[float] | None = None
    seconds: float = 0.0
    order: Tensor | None = None
    names: list[str] | None = None


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict]:
    """An optimiser's state as safetensors-ready tensors (`optim/INDEX/KEY`) and the JSON
    rest (its parameter groups and per-parameter scalars), so nothing needs pickling."""
    state = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, param_state in state["state"].items():
        for key, value in param_state.items():
            if isinstance(value, Tensor):
                tensors[f"optim/{index}/{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], meta: dict[str, Any]
) -> None:
    """Load what `optimizer_tensors` saved back into `optimizer`, refusing moments saved
    for parameters of other shapes (another model's), which would fail at the next step."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    param_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, index, name = key.split("/", 2)
            param = params[int(index)]
            if value.ndim and value.shape != param.shape:
                raise RunError(
                    f"the checkpoint's optimiser state {key} has shape {tuple(value.shape)}, "
                    f"but the parameter it belongs to has {tuple(param.shape)}: it was saved "
                    "for another model (or by a vaelab whose model had other parameters), so "
                    "training cannot resume from it; train into another folder"
                )
            if value.shape == param.shape:  # moments: back in the parameter's memory layout,
                value = torch.empty_like(param).copy_(value)  # which fused Adam relies on
            param_state.setdefault(int(index), {})[name] = value
    for index, values in meta["scalars"].items():
        param_state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": param_state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    run: Run,
    model: Model,
    optimizer: torch.optim.Optimizer,
    shuffle: torch.Generator,
    pos: Position,
) -> None:
    optim, optim_meta = optimizer_tensors(optimizer)
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()} | optim
    tensors["rng/torch"] = torch.get_rng_state()
    tensors["rng/shuffle"] = shuffle.get_state()
    device = _device_of(model)
    if device.type == "cuda":  # where a GPU's sampling models draw their noise
        tensors["rng/cuda"] = torch.cuda.get_rng_state(device)
    if pos.order is not None:
        tensors["epoch/order"] = pos.order
    meta = {
        "epoch": pos.epoch,
        "step": pos.step,
        "sums": pos.sums,
        "names": pos.names,
        "seconds": pos.seconds,
        **optim_meta,
    }
    save_tensors(tensors, run.path / CHECKPOINT, meta)


def load_checkpoint(
    run: Run, model: Model, optimizer: torch.optim.Optimizer, shuffle: torch.Generator
) -> Position:
    tensors, meta = load_tensors(run.path / CHECKPOINT)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
    restore_optimizer(optimizer, tensors, meta)
    torch.set_rng_state(tensors["rng/torch"])
    shuffle.set_state(tensors["rng/shuffle"])
    device = _device_of(model)
    if "rng/cuda" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng/cuda"], device)
    order = tensors.get("epoch/order")
    return Position(
        meta["epoch"], meta["step"], meta["sums"], meta["seconds"], order, meta["names"]
    )


def _device_of(model: Model) -> torch.device:
    return next(model.parameters()).device
