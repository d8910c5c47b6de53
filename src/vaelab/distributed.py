"""One model trained by several processes: PyTorch's DistributedDataParallel under torchrun.

`torchrun --nproc-per-node N -m vaelab train ...` starts N copies of the command, on
one machine or several; each finds its place in torchrun's environment (`WORLD_SIZE`,
`RANK`, `LOCAL_RANK`). Every process holds the whole model and data, draws the same
global order from the seeded shuffle, and trains on its own slice of each global
batch; DDP averages the gradients, so every process applies the same update to the same
weights. Only the main process (rank 0) writes files; the others wait at barriers.

Without torchrun, or with one process, the group is `LOCAL`: no process group, no
communication, and every helper below is the identity, so training is exactly the
one-process loop.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import Tensor, nn

from vaelab.config import DistributedConfig
from vaelab.errors import SettingError, VaelabError

if TYPE_CHECKING:
    from vaelab.models import Output


def shard(batch: Tensor, rank: int, world: int) -> Tensor:
    """Rank `rank`'s slice of a global batch of image indices: contiguous, in rank order.

    When the batch does not split evenly, its first `len(batch) % world` ranks take one
    image more, so the slices of all ranks, in rank order, are the global batch itself.
    """
    if world == 1:
        return batch
    return torch.tensor_split(batch, world)[rank]


def is_main_process() -> bool:
    """Whether this process is the one that writes and reports (rank 0, or no torchrun)."""
    return os.environ.get("RANK", "0") == "0"


@dataclass(frozen=True)
class Group:
    """The processes that train one model, seen from one of them (`rank` of `world`)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    """Where this process's collectives run: its GPU for NCCL, the CPU for Gloo."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def record(self) -> DistributedConfig:
        return DistributedConfig(self.world, self.backend)

    def place(self, device: torch.device) -> torch.device:
        """This process's training device: on CUDA in a group, its own GPU by local rank."""
        return self.device if device.type == "cuda" and self.world > 1 else device

    def wrap(self, model: nn.Module) -> nn.Module:
        """What runs the training forward pass: the model itself, or its DDP wrapper.

        DDP calls the model's own `forward` (so its `Output` and losses are unchanged)
        and averages the gradients over the group during `backward`.
        """
        if self.world == 1:
            return model
        # A conv with one output channel (the decoders' last) gets its gradient with
        # another stride along that size-1 dimension: the same memory order, so DDP's
        # copy into its bucket is right, and its warning about speed has no cause here.
        warnings.filterwarnings("ignore", "Grad strides do not match bucket view strides")
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def shard(self, batch: Tensor) -> Tensor:
        return shard(batch, self.rank, self.world)

    def batch_loss(self, out: Output, batch_images: int) -> Tensor:
        """The loss to back-propagate so that DDP's average gives the global batch's mean.

        One process uses the model's own mean loss. In a group each slice's per-image
        losses are summed and scaled by world / batch, because slices may differ by one
        image and the mean of slice means would weigh those images unevenly.
        """
        if self.world == 1:
            return out.loss
        return out.per_image_loss.sum() * (self.world / batch_images)

    def agree(self, loss: Tensor, stop: bool) -> tuple[float, bool]:
        """The global batch's mean loss and whether any process asked to stop.

        Every process reaches the same answer, so a NaN on one process or a Ctrl-C seen
        by one stops all of them at the same step, and none waits for the others forever.
        """
        if self.world == 1:
            return loss.item(), stop
        flags = torch.stack([loss.detach().double() / self.world, _flag(stop, self.device)])
        dist.all_reduce(flags)
        mean, stops = flags.tolist()
        return mean, stops > 0

    def any(self, flag: bool) -> bool:
        """Whether `flag` holds on any process."""
        if self.world == 1:
            return flag
        value = _flag(flag, self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return value.item() > 0

    def sum(self, values: Tensor) -> Tensor:
        """`values` summed over the processes (on the CPU, where metrics are kept)."""
        if self.world == 1:
            return values
        total = values.to(self.device)
        dist.all_reduce(total)
        return total.cpu()

    def barrier(self) -> None:
        """Wait here until every process arrives (while the main one writes files)."""
        if self.world > 1:
            dist.barrier()

    def noise_seed(self, seed: int, steps: int = 0) -> int:
        """The seed of this process's noise stream (the draws of sampling models) from
        global step `steps` on.

        Rank 0 starts the run's own stream, `seed`, so one process draws exactly what it
        always did. Every other rank needs a stream of its own, or its slices would get
        the noise rank 0's get: its seed is hashed from the run's seed, its rank and the
        step, into the 32 bits that torch's CPU generator reads. Checkpoints hold rank 0's
        stream only, so after a resume the others start new ones at the resumed step.
        """
        if self.rank == 0:
            return seed
        key = f"{seed} {self.rank} {steps}".encode()
        return int.from_bytes(hashlib.sha256(key).digest()[:4], "little")

    def check_batches(self, n_images: int, batch_size: int) -> None:
        """Refuse, before training, batches that would leave a process without images."""
        if self.world == 1:
            return
        if batch_size < self.world:
            raise SettingError(
                f"{self.world} processes cannot share batches of {batch_size} images: each "
                f"needs at least one image of every batch; use a {{batch_size}} of at least "
                f"{self.world} or start fewer processes",
                "batch_size",
            )
        left = n_images % batch_size
        if 0 < left < self.world:
            raise SettingError(
                f"the last batch of each epoch holds {left} of the {n_images} images, fewer "
                f"than the {self.world} processes; choose a {{batch_size}} or {{train_size}} "
                f"that leaves none or at least {self.world} images over, or start fewer processes",
                "batch_size",
                "train_size",
            )


GLOO_SETTLE_S = 0.05
"""How long a Gloo process waits after leaving its group, before Python may shut down.

Gloo's worker threads let go of a finished collective a moment after the caller's wait
returns. A tensor freed on such a thread takes the GIL, and if Python is shutting down by
then, that aborts the process ("terminate called without an active exception", SIGABRT;
caught in gdb on a worker in `ProcessGroupGloo::runLoop`, as in PyTorch's pytorch#179291).
Measured with two processes training the AE for one epoch: 1 run in 80 aborted without
the wait (1 in 91 with a barrier before leaving instead), none of 200 with it."""


LOCAL = Group()
"""One process on its own: training without torchrun."""


def _flag(value: bool, device: torch.device) -> Tensor:
    return torch.tensor(float(value), dtype=torch.float64, device=device)


@contextmanager
def setup(device: torch.device) -> Iterator[Group]:
    """Join the process group torchrun started this process in, for training on `device`;
    leave it on exit. Without torchrun, or with one process, yields `LOCAL`."""
    world = _environment_int("WORLD_SIZE", "1")
    if world == 1:
        yield LOCAL
        return
    rank, local_rank = _environment_int("RANK"), _environment_int("LOCAL_RANK")
    if device.type == "cuda":
        group = Group(rank, world, local_rank, "nccl", _own_gpu(local_rank))
        torch.cuda.set_device(group.device)
        dist.init_process_group("nccl", device_id=group.device)
    elif device.type == "cpu":
        group = Group(rank, world, local_rank, "gloo")
        dist.init_process_group("gloo")
    else:
        raise SettingError(
            f"training on several processes runs on cpu or cuda, not {device.type}; "
            "use {device} cpu or cuda, or train in one process",
            "device",
        )
    try:
        yield group
    finally:
        dist.destroy_process_group()
        if group.backend == "gloo":
            time.sleep(GLOO_SETTLE_S)


def _own_gpu(local_rank: int) -> torch.device:
    gpus = torch.cuda.device_count()
    if local_rank >= gpus:
        raise VaelabError(
            f"process {local_rank} on this machine has no GPU of its own ({gpus} visible); "
            f"start at most {gpus} processes per machine (--nproc-per-node {gpus})"
        )
    return torch.device("cuda", local_rank)


def _environment_int(name: str, default: str | None = None) -> int:
    text = os.environ.get(name, default)
    if text is None or not text.isdigit():
        found = "unset" if text is None else f"{text!r}, not a whole number"
        raise VaelabError(
            f"{name} is {found} in the environment; start several processes with "
            "torchrun, or unset WORLD_SIZE to train in one"
        )
    return int(text)
