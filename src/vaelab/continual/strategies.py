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

Each is a `Strategy` in `STRATEGIES` (`register_strategy` adds one), and
`stage_training_set` is a pure function of its arguments, so the mix is
checked directly. Dreams are the teacher's decoded probabilities quantised
to uint8 (round(p * 255)), not binary samples: the student learns the
teacher's expected image, with no extra sampling noise; they carry the
label `DREAM` since nobody knows which digit they show.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from vaelab import plugins
from vaelab.data import Dataset
from vaelab.errors import SettingError, VaelabError
from vaelab.models import Model
from vaelab.wording import count

DREAM = -1
"""Label of generated images."""
DREAM_BATCH = 1000


@dataclass(frozen=True)
class Stage:
    """A stage after the first, as a strategy sees it: `train` holds the training images of
    every digit, `teacher` is the frozen model of the previous stage (for strategies that
    ask for one)."""

    train: Dataset
    index: int
    new: int
    past: list[int]
    replay_size: int
    teacher: Model | None
    seed: int

    def current(self) -> Dataset:
        """The training images of the new digit."""
        return self.train.with_classes([self.new])


@dataclass(frozen=True)
class Strategy:
    """How a strategy keeps the past: `training_set(stage)` is what a stage after the first
    trains on (the first trains on its digit alone). `teacher`: it reads the previous
    stage's model; `buffer`: it keeps `replay_size` real past images, which every stage's
    past digits must be able to fill (checked before the first stage trains)."""

    summary: str
    training_set: Callable[[Stage], Dataset]
    teacher: bool = False
    buffer: bool = False


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(name: str, strategy: Strategy) -> None:
    """Make `name` a continual strategy (`ContinualConfig(strategy=NAME)`), here and in the
    workers that train strategies at once (`vaelab.plugins`)."""
    plugins.add(STRATEGIES, name, strategy, Strategy, "continual strategy")


def check_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise SettingError(
            f"unknown {{strategy}} {name!r}; choose {', '.join(STRATEGIES)} or all", "strategy"
        )
    return STRATEGIES[name]


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

    `train` holds the training images of every digit; `teacher` (from stage 1, for a
    strategy registered with `teacher=True`) is the frozen model of the previous stage.
    """
    chosen = check_strategy(strategy)
    if not 0 <= stage < len(order):
        raise VaelabError(f"stage {stage} is outside the {len(order)} stages of order {order}")
    if stage == 0:
        return train.with_classes([order[0]])
    if chosen.teacher and teacher is None:
        raise VaelabError(f"{strategy} needs the previous stage's model as its teacher")
    past = list(order[:stage])
    return chosen.training_set(Stage(train, stage, order[stage], past, replay_size, teacher, seed))


def naive(stage: Stage) -> Dataset:
    return stage.current()


def cumulative(stage: Stage) -> Dataset:
    return stage.train.with_classes([*stage.past, stage.new])


def replay(stage: Stage) -> Dataset:
    buffer = replay_buffer(stage.train, stage.past, stage.replay_size, stage.seed)
    return concat([buffer, stage.current()])


def generative_replay(stage: Stage) -> Dataset:
    assert stage.teacher is not None  # stage_training_set checks it
    current, past = stage.current(), stage.past
    generator = torch.Generator().manual_seed(stage.seed * 1000 + stage.index)
    dreamed = dreams(stage.teacher, len(current) * len(past), generator, stage.train, past)
    return concat([dreamed, current])


register_strategy("naive", Strategy("the new digit only", naive))
register_strategy("cumulative", Strategy("every digit seen so far", cumulative))
register_strategy(
    "replay", Strategy("the new digit and a buffer of real past images", replay, buffer=True)
)
register_strategy(
    "generative-replay",
    Strategy("the new digit and the previous model's dreams", generative_replay, teacher=True),
)


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
