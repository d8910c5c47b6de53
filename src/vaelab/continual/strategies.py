"""What the model sees at each stage: the new digit, plus whatever the strategy keeps of the past.

    naive              the new digit only (the article's question: does it forget?)
    cumulative         every digit seen so far (the upper bound: nothing is lost)
    replay             the new digit + a fixed buffer of `replay_size` real past images,
                       balanced over the past digits
    generative-replay  the new digit + `n_new * k_past` images dreamed by a frozen copy
                       of the model as it was before the stage, with no past data at
                       all: the past gets the share it would have in a cumulative set
                       (as many dreams per past digit as there are new images, if the
                       teacher dreams its digits evenly)

`stage_training_set` is a pure function of its arguments, so the mix is
checked directly. Dreams are the teacher's decoded probabilities quantised
to uint8 (round(p * 255)), not binary samples: the student learns the
teacher's expected image, with no extra sampling noise; they carry the
label `DREAM` since nobody knows which digit they show.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from vaelab.data import Dataset
from vaelab.errors import SettingError, VaelabError
from vaelab.models import Model
from vaelab.wording import count

STRATEGIES = ("naive", "cumulative", "replay", "generative-replay")
DREAM = -1
"""Label of generated images."""
DREAM_BATCH = 1000


def check_strategy(name: str) -> None:
    if name not in STRATEGIES:
        raise SettingError(
            f"unknown {{strategy}} {name!r}; choose {', '.join(STRATEGIES)} or all", "strategy"
        )


def stage_training_set(
    strategy: str,
    train: Dataset,
    order: Sequence[int],
    stage: int,
    *,
    replay_size: int = 1000,
    teacher: Model | None = None,
    seed: int = 0,
) -> Dataset:
    """The images the model trains on at `stage` (0-based) of `order` under `strategy`.

    `train` holds the training images of every digit; `teacher` (generative
    replay only, from stage 1) is the frozen model of the previous stage.
    """
    check_strategy(strategy)
    if not 0 <= stage < len(order):
        raise VaelabError(f"stage {stage} is outside the {len(order)} stages of order {order}")
    new, past = order[stage], list(order[:stage])
    current = train.with_classes([new])
    if not past or strategy == "naive":
        return current
    if strategy == "cumulative":
        return train.with_classes(past + [new])
    if strategy == "replay":
        return concat([replay_buffer(train, past, replay_size, seed), current])
    if teacher is None:
        raise VaelabError("generative replay needs the previous stage's model as its teacher")
    generator = torch.Generator().manual_seed(seed * 1000 + stage)
    return concat([dreams(teacher, len(current) * len(past), generator, train, past), current])


def replay_buffer(train: Dataset, past: Sequence[int], size: int, seed: int) -> Dataset:
    """`size` real images balanced over `past` digits (earlier digits take any remainder).

    Each digit's images come in one fixed random order per seed, and the
    buffer keeps a prefix of it: as digits arrive, each one's share shrinks
    to a subset of what was kept before, as a real memory buffer would.
    """
    parts = [
        train.with_classes([digit]).stratified(quota, seed * 1000 + digit)
        for digit, quota in zip(past, replay_quotas(past, size), strict=True)
    ]
    return concat(parts)


def replay_quotas(past: Sequence[int], size: int) -> list[int]:
    """How many buffer images each past digit keeps: `size` split evenly, earlier digits first."""
    if size < len(past):
        raise SettingError(
            f"a replay buffer of {count(size, 'image')} cannot hold all {len(past)} past digits; "
            "raise {replay_size}",
            "replay_size",
        )
    return [size // len(past) + (i < size % len(past)) for i in range(len(past))]


def frozen_copy(model: Model) -> Model:
    """An independent CPU copy of `model` in eval mode that no optimiser can change."""
    teacher = copy.deepcopy(model).cpu().eval()
    teacher.requires_grad_(False)
    return teacher


@torch.inference_mode()
def dreams(
    teacher: Model, n: int, generator: torch.Generator, like: Dataset, past: Sequence[int]
) -> Dataset:
    """`n` images sampled from the teacher's prior, quantised to uint8.

    An unconditional teacher's dreams are labelled `DREAM` (nobody knows their digit); a
    conditional one is asked for the `past` digits in turn, and its dreams carry them.
    """
    teacher.eval()
    labels = (
        torch.tensor(list(past)).repeat(-(-n // len(past)))[:n]
        if teacher.capabilities.conditional
        else torch.full((n,), DREAM)
    )
    batches = [
        teacher.sample(
            min(DREAM_BATCH, n - start), generator, labels[start : start + DREAM_BATCH]
        ).cpu()
        for start in range(0, n, DREAM_BATCH)
    ]
    images = torch.cat(batches).mul_(255).round_().to(torch.uint8)
    return Dataset(images, labels, like.name, like.class_names)


def concat(parts: Sequence[Dataset]) -> Dataset:
    """One dataset holding every image of `parts`, in order."""
    first = parts[0]
    images = torch.cat([p.images for p in parts])
    labels = torch.cat([p.labels for p in parts])
    return Dataset(images, labels, first.name, first.class_names)
