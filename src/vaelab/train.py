"""One training loop for every model: metrics, callbacks, checkpoints, resume, clean stops.

The loop relies only on the model's `Output` record, so new models need no
change here. Each epoch ends with an atomic checkpoint (`vaelab.checkpoints`);
Ctrl-C finishes the current batch, saves a mid-epoch checkpoint and stops; a NaN
loss stops before the bad step is applied, leaving the last good checkpoint in place. Under
torchrun the same loop runs in every process, each on its slice of every
global batch (`vaelab.distributed`); one process is the loop without a group.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from vaelab import batching, distributed, fastpaths, threads
from vaelab.checkpoints import Position, load_checkpoint, save_checkpoint
from vaelab.config import (
    DEFAULT_LR_DECAY,
    DataConfig,
    RunConfig,
    TrainConfig,
    changed_settings,
    check_types,
)
from vaelab.data.dataset import check_binarize, redraw_bits
from vaelab.devices import prepare_for_speed, resolve_device, sum_dtype
from vaelab.distributed import LOCAL, Group
from vaelab.errors import Interrupted, RunError, SettingError, TrainingError, VaelabError
from vaelab.likelihood import check_positive_count
from vaelab.models import VQVAE, Model, build
from vaelab.models.objectives import refuse_unread
from vaelab.models.vq import perplexity
from vaelab.run import CHECKPOINT, METRICS, WEIGHTS, Run, load_tensors
from vaelab.seeding import check_seed

EpochCallback = Callable[[int, Model, dict[str, Any]], None]
"""Called after each epoch with (epoch, model in eval mode, that epoch's metrics)."""

OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    # Keras' defaults, which the article ran with (Keras 2's Adadelta: lr 1.0).
    # Fused Adam updates every tensor in one kernel instead of about ten small ops
    # per tensor: the same update up to float rounding, 3% of a CPU training step.
    "adam": (torch.optim.Adam, {"lr": 1e-3, "eps": 1e-7, "fused": True}),
    "adadelta": (torch.optim.Adadelta, {"lr": 1.0, "rho": 0.95, "eps": 1e-7}),
}


def make_optimizer(model: Model, config: TrainConfig) -> torch.optim.Optimizer:
    check_training(config)
    cls, defaults = OPTIMIZERS[config.optimizer]
    return cls(model.parameters(), **{**defaults, "lr": learning_rate(config, 1)})


def check_training(config: TrainConfig) -> None:
    """Refuse a training schedule, optimiser or learning rate that cannot be followed,
    naming its setting."""
    for name, least in (("epochs", 0), ("batch_size", 1), ("threads", 1)):
        value = getattr(config, name)
        if value is not None and value < least:
            raise SettingError(f"{{{name}}} must be at least {least}, got {value}", name)
    if config.optimizer not in OPTIMIZERS:
        raise VaelabError(f"unknown optimizer {config.optimizer!r}; choose {', '.join(OPTIMIZERS)}")
    milestones = config.lr_milestones
    whole = all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in milestones)
    if not whole or list(milestones) != sorted(set(milestones)):
        raise SettingError(
            f"{{lr_milestones}} must be increasing epochs of at least 1, got {list(milestones)}",
            "lr_milestones",
        )
    if not 0 < config.lr_decay < math.inf:
        raise SettingError(
            f"{{lr_decay}} must be a finite number above 0, got {config.lr_decay}", "lr_decay"
        )
    if config.lr_decay != DEFAULT_LR_DECAY and not milestones:
        raise SettingError(
            f"{{lr_decay}} {config.lr_decay:g} multiplies the learning rate after each of "
            "{lr_milestones}, and none is given: name those epochs (e.g. 10,20) or leave "
            "{lr_decay} out",
            "lr_decay",
            "lr_milestones",
        )
    if config.lr is not None and not 0 < config.lr < math.inf:
        raise SettingError(f"{{lr}} must be a finite number above 0, got {config.lr}", "lr")
    check_seed(config.seed)


def learning_rate(config: TrainConfig, epoch: int) -> float:
    """The learning rate of `epoch` (counted from 1): the base rate (`lr`, or the optimiser's
    default), times `lr_decay` for each milestone that epoch comes after."""
    base = OPTIMIZERS[config.optimizer][1]["lr"] if config.lr is None else config.lr
    return base * config.lr_decay ** sum(epoch > m for m in config.lr_milestones)


@torch.inference_mode()
def evaluate(
    model: Model,
    images: Tensor,
    batch_size: int | None = None,
    seed: int = 0,
    labels: Tensor | None = None,
) -> dict:
    """Mean loss and its parts over float images (with their labels, which conditional
    models read), with fixed noise for sampling models, in batches of `batch_size` (default:
    `vaelab.batching`'s size for the images' device).

    The noise is drawn from a forked generator, the CPU's or the images' GPU's, so training
    goes on with the stream it had."""
    if batch_size is not None:
        check_positive_count(batch_size, "batch_size")
    model.eval()
    sums: Tensor | None = None
    names: list[str] = []
    batch_size = batch_size or batching.rows(images.device)
    dtype = sum_dtype(images.device)
    gpus = [images.device] if images.device.type == "cuda" else []
    with torch.random.fork_rng(devices=gpus):
        torch.manual_seed(seed)
        for start in range(0, len(images), batch_size):
            batch_labels = None if labels is None else labels[start : start + batch_size]
            out = model(images[start : start + batch_size], batch_labels)
            names = list(out.losses)
            part_sums = torch.stack([v.sum(dtype=dtype) for v in out.losses.values()])
            sums = part_sums if sums is None else sums + part_sums
    if sums is None:
        raise VaelabError("cannot evaluate on an empty set of images")
    means = (sums / len(images)).tolist()
    return {"loss": sum(means), **dict(zip(names, means, strict=True))}


class CtrlC:
    """Turns the first Ctrl-C into a request to stop after the current batch.

    A second Ctrl-C interrupts at once, as usual.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


@torch.inference_mode()
def check_fits(model: Model, images: Tensor, labels: Tensor) -> None:
    """Fail early, and clearly, when the model cannot reconstruct images of this shape."""
    if len(images) == 0:
        raise VaelabError("there are no training images: check the class and size selection")
    shape = tuple(images.shape[1:])
    try:
        fits = tuple(model.decode(model.encode(images[:1], labels[:1]), labels[:1]).shape[1:])
    except RuntimeError:
        fits = None
    if fits != shape:
        raise SettingError(
            f"{model.describe()} cannot reconstruct images of shape {shape} (channels, "
            "height, width); the article's models take 28x28 images: use {image_size} 28",
            "image_size",
        )
    if model.capabilities.conditional:
        model.check_labels(labels, len(labels))


def train(
    model: Model,
    data: Any,
    config: TrainConfig,
    *,
    val: Any = None,
    run: Run | None = None,
    callbacks: Sequence[EpochCallback] = (),
    resume: bool = False,
    progress: bool = True,
    group: Group = LOCAL,
    binarize: str = "none",
) -> list[dict[str, Any]]:
    """Train `model` on a `vaelab.data.Dataset`; returns one metrics dict per epoch.

    With a `run`, each epoch is checkpointed there and appended to its
    `metrics.jsonl`, and `resume=True` continues from its checkpoint exactly.
    In a `group` of processes (see `fit`) only the main one writes to the run,
    validates, shows progress and calls the callbacks; the others return the
    rows of the epochs they trained, without validation metrics.
    `binarize="dynamic"` re-draws every batch's pixels as Bernoulli(intensity) from a
    stream keyed by the seed, epoch and batch, so resuming draws the same bits.
    """
    check_binarize(binarize)
    bits_seed = config.seed if binarize == "dynamic" else None
    device = group.place(resolve_device(config.device))
    prepare_for_speed(model, device)
    images, labels = data.float().to(device), data.labels.to(device)
    check_fits(model, images, labels)
    group.check_batches(len(images), config.batch_size)
    has_val = group.is_main and val is not None and len(val) > 0
    val_set = (val.float().to(device), val.labels.to(device)) if has_val else None
    optimizer = make_optimizer(model, config)
    torch.manual_seed(group.noise_seed(config.seed))  # the noise of sampling models
    shuffle = torch.Generator().manual_seed(config.seed)
    pos = Position()
    n_batches = -(-len(images) // config.batch_size)
    writes = run if group.is_main else None
    if writes is not None:
        writes.path.mkdir(parents=True, exist_ok=True)
    if resume and run is not None:
        pos = load_checkpoint(run, model, optimizer, shuffle)
        if not group.is_main:  # checkpoints hold the main process's noise stream only
            torch.manual_seed(group.noise_seed(config.seed, pos.epoch * n_batches + pos.step))
        if writes is not None:
            writes.truncate_metrics(pos.epoch)
    history = writes.metrics() if writes is not None else []
    forward = fastpaths.training_forward(
        group.wrap(model), device, config.precision, config.compile
    )
    learner = Learner(model, forward, optimizer, group)

    with CtrlC() as ctrl_c:
        for epoch in range(pos.epoch + 1, config.epochs + 1):
            for param_group in optimizer.param_groups:
                param_group["lr"] = learning_rate(config, epoch)
            if pos.order is None:
                pos = replace(pos, order=torch.randperm(len(images), generator=shuffle))
            bar = tqdm(
                total=n_batches,
                initial=pos.step,
                desc=f"epoch {epoch}/{config.epochs}",
                unit="batch",
                disable=not (progress and group.is_main),
                dynamic_ncols=True,
            )
            with bar:
                pos = _train_epoch(
                    learner, (images, labels), config.batch_size, pos, ctrl_c, bar, epoch,
                    bits_seed,
                )  # fmt: skip
                if pos.step < n_batches:
                    _stop(run, learner, shuffle, pos, epoch, n_batches)
                row = _epoch_metrics(epoch, pos, len(images), model, val_set, config.seed)
                row["lr"] = learning_rate(config, epoch)
                bar.set_postfix(_progress_postfix(row))
            pos = Position(epoch=epoch)
            if writes is not None:
                save_checkpoint(writes, model, optimizer, shuffle, pos)
                writes.save_weights(model, epoch)
                writes.append_metrics(row)
            history.append(row)
            for callback in callbacks if group.is_main else ():
                callback(epoch, model, row)
            group.barrier()
            model.train()
            if group.any(ctrl_c.requested):
                _stop(run, learner, shuffle, pos, epoch + 1, n_batches)
    model.eval()
    return history


@dataclass
class Learner:
    """What a training step uses: the model, what runs its forward pass (the model or its
    DDP wrapper in a group, through `vaelab.fastpaths`), its optimiser, and the group of
    processes."""

    model: Model
    forward: fastpaths.Forward
    optimizer: torch.optim.Optimizer
    group: Group


def _progress_postfix(row: dict[str, Any]) -> dict[str, str]:
    """The epoch's losses for the progress bar; validation only when there was any."""
    postfix = {"loss": f"{row['train_loss']:.4g}"}
    if "val_loss" in row:
        postfix["val"] = f"{row['val_loss']:.4g}"
    return postfix


def _train_epoch(
    learner: Learner,
    data: tuple[Tensor, Tensor],
    batch_size: int,
    pos: Position,
    ctrl_c: CtrlC,
    bar: tqdm,
    epoch: int,
    bits_seed: int | None = None,
) -> Position:
    """Run the rest of one epoch from `pos.step`; returns where it stopped.

    Each process trains on its slice of every global batch; the returned loss sums
    are the group's (the main process carries those restored from a checkpoint).
    With a `bits_seed`, each global batch is binarised afresh (`redraw_bits`).
    """
    assert pos.order is not None
    images, labels = data
    group = learner.group
    learner.model.train()
    restored = pos.sums if group.is_main else None
    dtype = sum_dtype(images.device)
    sums = (  # kept where the images are: no copy to the CPU every step
        None if restored is None else torch.tensor(restored, dtype=dtype, device=images.device)
    )
    started = time.perf_counter()
    done, stop = pos.step, False
    n_batches = -(-len(images) // batch_size)
    while done < n_batches and not stop:
        batch = pos.order[done * batch_size : (done + 1) * batch_size]
        index = group.shard(batch).to(images.device)
        x = images[index]
        if bits_seed is not None:
            rows = group.shard(torch.arange(len(batch)))
            x = redraw_bits(x, bits_seed, epoch, done, rows, len(batch))
        out = learner.forward(x, labels[index])
        loss = group.batch_loss(out, len(batch))
        mean, stop = group.agree(loss, ctrl_c.requested)
        if not math.isfinite(mean):
            raise TrainingError(
                f"the loss became {mean} in epoch {epoch}, batch {done + 1}; training "
                "stopped before applying it (the checkpoint of the last finished epoch, if "
                "any, is kept). Try a lower learning rate or check the input data for NaNs."
            )
        learner.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        learner.optimizer.step()
        learner.model.after_step()
        part_sums = torch.stack([v.detach().sum(dtype=dtype) for v in out.losses.values()])
        sums = part_sums if sums is None else sums + part_sums
        done += 1
        bar.update(1)
        if done % 20 == 0:
            bar.set_postfix(loss=f"{mean:.4g}")
    assert sums is not None  # the loop runs at least one batch
    seconds = pos.seconds + time.perf_counter() - started
    sums = group.sum(sums.cpu())
    return replace(pos, step=done, sums=sums.tolist(), seconds=seconds, names=list(out.losses))


def _epoch_metrics(
    epoch: int,
    pos: Position,
    n_images: int,
    model: Model,
    val_set: tuple[Tensor, Tensor] | None,
    seed: int,
) -> dict[str, Any]:
    assert pos.sums is not None and pos.names is not None
    names = pos.names
    means = [s / n_images for s in pos.sums]
    row: dict[str, Any] = {"epoch": epoch, "train_loss": sum(means)}
    row |= {f"train_{name}": value for name, value in zip(names, means, strict=True)}
    if val_set is not None:
        images, labels = val_set
        metrics = evaluate(model, images, seed=seed, labels=labels)
        row |= {f"val_{k}": v for k, v in metrics.items()}
    row["seconds"] = pos.seconds
    row["images_per_s"] = n_images / pos.seconds if pos.seconds > 0 else None
    return row


def _stop(
    run: Run | None,
    learner: Learner,
    shuffle: torch.Generator,
    pos: Position,
    epoch: int,
    n_batches: int,
) -> None:
    """Save a resumable checkpoint (the main process) and stop every process together."""
    if run is None:
        raise KeyboardInterrupt
    if learner.group.is_main:
        save_checkpoint(run, learner.model, learner.optimizer, shuffle, pos)
    learner.group.barrier()  # no process exits, and so ends the group, before it is saved
    raise Interrupted(
        f"interrupted in epoch {epoch} after {pos.step}/{n_batches} batches; a resumable "
        f"checkpoint is saved in {run.path}; resume it to continue (resume=True; --resume on "
        "the command line)"
    )


def fit(
    config: RunConfig,
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    callbacks: Sequence[EpochCallback] = (),
    progress: bool = True,
) -> Run:
    """Load the data, build the model and train it into the run folder `out`.

    With `resume=True` the run continues from its checkpoint; only the number
    of epochs, the device and the number of processes may differ from the saved
    config. Started by torchrun, every process trains its share of each batch
    (see `vaelab.distributed`); only the main one writes `out` and calls the
    callbacks, and resuming needs `out` readable by every process.
    """
    from vaelab.data import check_subset, prepare

    check_types(config)  # before any data is read or the run folder is made
    check_training(config.train)
    device = resolve_device(config.train.device)
    fastpaths.check(config.train.precision, device)
    if not resume:  # a run saved before this check resumes
        check_subset(config.data.subset, config.data.train_size)
    with distributed.setup(device) as group:
        config = dataclasses.replace(
            config,
            data=absolute_paths(config.data),
            model=config.model.resolved(),
            distributed=group.record(),
        )
        if not resume and config.model.objective:  # a run saved before this check resumes
            refuse_unread(config.model.objective)
        config.train = _with_threads(config.train, Run(out) if resume else None)
        torch.set_num_threads(config.train.threads)
        train_data, val_data = prepare(config.data)
        torch.manual_seed(config.train.seed)
        model = build(config.model, shape=tuple(train_data.images.shape[1:]))
        run = _open_run(out, config, resume, group)  # once the data and the model are known
        train(
            model,
            train_data,
            config.train,
            val=val_data,
            run=run,
            callbacks=callbacks,
            resume=resume,
            progress=progress,
            group=group,
            binarize=config.data.binarize,
        )
    return run


def absolute_paths(data: DataConfig) -> DataConfig:
    """`data` with a dataset given as a path, and its data folder, made absolute: the run's
    config then finds them again from any working directory (eval, plot, resume). A name
    that is neither a dataset nor a path is kept as typed, for the error to quote."""
    from vaelab.data.sources import SAMPLE, SOURCES, normalize

    def absolute(path: str) -> str:
        return str(Path(path).expanduser().absolute())

    dataset = str(data.dataset)
    is_path = normalize(dataset) not in (SAMPLE, *SOURCES) and Path(dataset).expanduser().exists()
    return dataclasses.replace(
        data,
        dataset=absolute(dataset) if is_path else dataset,
        data_dir=absolute(data.data_dir) if data.data_dir else None,
    )


def _with_threads(schedule: TrainConfig, resumed: Run | None) -> TrainConfig:
    """`schedule` with its thread count settled: the one asked for, else the resumed run's
    (so it continues bit-exact), else the free cores now."""
    if schedule.threads is not None:
        return schedule
    saved = resumed.config.train.threads if resumed is not None else None
    return dataclasses.replace(schedule, threads=saved or threads.choose())


def _open_run(out: str | os.PathLike[str], config: RunConfig, resume: bool, group: Group) -> Run:
    """The run folder `out`, checked for resuming (or for not overwriting a run); the
    main process writes `config` into it."""
    run = Run(out)
    if resume:
        _check_resumable(run, config)
    elif (run.path / CHECKPOINT).exists():
        raise SettingError(
            f"{run.path} already holds a run; continue it ({{resume}}) or choose another {{out}}",
            "resume",
            "out",
        )
    elif trained := [name for name in (WEIGHTS, METRICS) if (run.path / name).exists()]:
        raise SettingError(
            f"{run.path} already holds a trained run ({', '.join(trained)}) with no checkpoint "
            "to continue from; choose another {out} or delete it first",
            "out",
        )
    if group.is_main:
        Run.create(out, config)
    return run


CHANGEABLE_ON_RESUME = (
    "epochs", "device", "threads", "precision", "compile", "lr", "lr_milestones", "lr_decay",
)  # fmt: skip
"""`TrainConfig` fields a resumed run may set afresh (the learning rate's for the epochs it
has not begun only)."""


def _check_resumable(run: Run, config: RunConfig) -> None:
    """Refuse to resume with settings that would not continue the run as it was trained.

    The epochs, device, threads, precision, compiling, processes and the data folder may
    change, and so may the learning-rate schedule of the epochs not yet begun: a run of 800
    epochs resumed to 1,000 with milestones at 800 and 900 is the run that schedule would
    have trained from the start.
    """
    if not (run.path / CHECKPOINT).exists():
        raise RunError(f"nothing to resume in {run.path}: it holds no checkpoint")
    # a run saved with relative paths (before they were made absolute) resumes from here
    saved = dataclasses.replace(run.config, data=absolute_paths(run.config.data)).to_dict()
    wanted = config.to_dict()
    for key in CHANGEABLE_ON_RESUME:
        saved["train"].pop(key, None)
        wanted["train"].pop(key, None)
    for settings in (saved, wanted):  # where the processes and the files are, not what trains
        settings.pop("distributed")
        settings["data"].pop("data_dir")
    if changed := changed_settings(saved, wanted):
        raise SettingError(
            f"cannot resume {run.path} with different settings ({', '.join(changed)} differ); "
            "only {epochs}, {device}, {threads}, {precision}, {compile}, {data_dir}, the "
            "number of processes and the learning rate of epochs not yet begun may change "
            "(start a new run in another {out} instead)",
            "epochs", "device", "threads", "precision", "compile", "data_dir", "out",
        )  # fmt: skip
    meta = load_tensors(run.path / CHECKPOINT)[1]
    if config.train.epochs < meta["epoch"]:
        raise SettingError(
            f"{run.path} has already trained {meta['epoch']} epochs; give {{epochs}} above "
            f"{meta['epoch']} to train it further",
            "epochs",
        )
    begun = meta["epoch"] + (meta["step"] > 0)
    for epoch in range(1, begun + 1):
        if learning_rate(run.config.train, epoch) != learning_rate(config.train, epoch):
            raise RunError(
                f"cannot resume {run.path} with another learning rate for epoch {epoch}, "
                f"which it has trained; only epochs after {begun} may change theirs"
            )


def evaluate_run(run: Run, data_dir: str | None = None) -> dict[str, float]:
    """A run's mean test loss and its parts, on the test split of its classes; for a VAE also
    its active latent units there (`vaelab.latent_usage`), for a VQ-VAE the codebook vectors
    its test codes use and their perplexity."""
    from vaelab.data import prepare
    from vaelab.latent_usage import usage

    config = run.config
    if data_dir is not None:
        config.data.data_dir = data_dir
    config.data.validation = "test"
    _, test = prepare(config.data)
    model, images = run.load_model(), test.float()
    result = evaluate(model, images, seed=config.train.seed, labels=test.labels)
    if model.capabilities.posterior:
        labels = test.labels if model.capabilities.conditional else None
        active = usage(model, images, labels).active_units
        result |= {"active_units": active, "latent_dim": model.latent_dim}
    if isinstance(model, VQVAE):
        counts = model.code_counts(images)
        used, size = int((counts > 0).sum()), len(counts)
        result |= {"codes_used": used, "code_perplexity": perplexity(counts), "codebook_size": size}
    return result
