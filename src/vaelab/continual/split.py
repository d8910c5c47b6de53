"""Split-MNIST, class-incremental: one classifier learns digits two at a time, and must
still tell all ten apart at the end, without ever being told which task an image is from.

The protocol is van de Ven and Tolias, "Three scenarios for continual learning"
(2019), as in their code (GMvandeVen/continual-learning):

- five tasks, digits (0, 1), (2, 3), (4, 5), (6, 7), (8, 9), in that order;
- a 784-400-400-10 ReLU MLP, Adam (lr 0.001, one optimiser kept across the
  tasks), `iterations` = 2,000 batches of 128 per task, each task's images
  reshuffled every pass (the last incomplete batch dropped);
- at task t the softmax covers the digits seen so far; a replayed batch as
  large as the current one is weighted 1 - 1/t against the current batch's
  1/t; distillation targets are the previous classifier's softmax at
  temperature 2 over the digits it knew, zero for the new ones, the loss times T²;
- the generator of generative replay is a symmetric MLP VAE (400-400, latent
  100, Bernoulli pixels) trained beside the classifier on the same current
  and replayed images, with the same weights;
- the score is the mean of the five tasks' test accuracies after the last task,
  predicting among the digits seen so far (within 0.2 points of the accuracy on the
  whole test set, whose tasks hold about as many images each).

Two differences: the reference code averages the VAE's loss over pixels, vaelab's
ELBO sums it (784 times larger; Adam's steps hardly depend on the scale); and for
every seed but 0 it permutes the digits at random before pairing them, where vaelab
keeps the standard pairs (docs/split-mnist.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaelab import plugins
from vaelab.checkpoints import optimizer_tensors, restore_optimizer
from vaelab.config import ModelConfig, NetworkConfig, check_types
from vaelab.continual.strategies import concat, frozen_copy, replay_buffer, replay_quotas
from vaelab.data import Dataset
from vaelab.diagnostics import recorded_spread
from vaelab.errors import SettingError
from vaelab.models import Model, build
from vaelab.models.networks import mlp_encoder
from vaelab.scores import iwae

TASKS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))
SAMPLES_SHOWN = 10
"""Images each generator draws per digit it knows, kept after every task for the figures."""


def mlp_vae(conditional: bool = False, hidden: int = 400, latent: int = 100) -> ModelConfig:
    """The reference code's generator: 784-400-400-latent-400-400-784, ReLU."""
    net = NetworkConfig("mlp", [hidden, hidden], activation="relu")
    return ModelConfig(
        "vae", latent_dim=latent, encoder=net, decoder=net, conditional=conditional
    ).resolved()


@dataclass
class SplitConfig:
    """The protocol's settings, shared by every strategy. `train_size` caps each digit's
    training images (first N), for quick runs; the benchmark's numbers use them all.

    `replay_size` is the real-image buffer of `replay`, split evenly over the digits
    seen before each task. The generative classifier trains one `class_model` per digit
    for `class_iterations` batches (half a task's budget: the two digits of a task share
    it) and classifies by the bound on log p(x | digit) with `importance_samples` draws.
    """

    iterations: int = 2000
    batch_size: int = 128
    lr: float = 1e-3
    hidden: list[int] = field(default_factory=lambda: [400, 400])
    temperature: float = 2.0
    replay_size: int = 1000
    generator: ModelConfig = field(default_factory=mlp_vae)
    conditional_generator: ModelConfig = field(default_factory=lambda: mlp_vae(True))
    class_model: ModelConfig = field(default_factory=lambda: mlp_vae(hidden=400, latent=20))
    class_iterations: int = 1000
    importance_samples: int = 50
    dataset: str = "mnist"
    data_dir: str | None = None
    train_size: int | None = None
    device: str = "cpu"

    def check(self) -> None:
        check_types(self)
        for name in ("iterations", "batch_size", "class_iterations", "importance_samples"):
            if getattr(self, name) < 1:
                raise SettingError(
                    f"{{{name}}} must be at least 1, got {getattr(self, name)}", name
                )
        if self.train_size is not None and self.train_size < 1:
            raise SettingError(f"{{train_size}} must be at least 1, got {self.train_size}",
                               "train_size")  # fmt: skip
        replay_quotas([d for task in TASKS[:-1] for d in task], self.replay_size)


def seen(task: int) -> int:
    """How many digits the classifier knows after task `task` (0-based)."""
    return sum(len(t) for t in TASKS[: task + 1])


def class_il_accuracy(
    predict: Callable[[Tensor, int], Tensor], images: Tensor, labels: Tensor, task: int
) -> list[float]:
    """Accuracy on each task's test images after `task`, predicting among the digits seen
    so far (the whole test set is predicted at once, then split by task)."""
    correct = predict(images, seen(task)) == labels
    return [float(correct[torch.isin(labels, torch.tensor(d))].double().mean()) for d in TASKS]


def shuffled_batches(
    data: Dataset, size: int, generator: torch.Generator
) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches of float images and labels, reshuffled every pass, the last short batch
    dropped (as the reference code's loader); a set smaller than a batch is one batch."""
    images, labels = data.float(), data.labels
    size = min(size, len(images))
    while True:
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(order) - size + 1, size):
            index = order[start : start + size]
            yield images[index], labels[index]


class MLPClassifier(nn.Module):
    """784-400-400-10 ReLU: vaelab's MLP encoder body and one 10-way linear layer."""

    def __init__(self, hidden: list[int], classes: int = 10) -> None:
        super().__init__()
        self.body, (width,) = mlp_encoder(
            NetworkConfig("mlp", hidden, activation="relu"), (1, 28, 28)
        )
        self.head = nn.Linear(width, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))

    @torch.inference_mode()
    def predict(self, images: Tensor, classes: int) -> Tensor:
        self.eval()
        return torch.cat([self(x)[:, :classes].argmax(1) for x in images.split(1000)])


def distillation_loss(logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Cross-entropy to the teacher's softened softmax, times T² (Hinton et al. 2015) so
    its gradients keep their size whatever the temperature; the teacher gives the digits
    it never saw probability zero. As `loss_fn_kd` in the reference code of the paper's
    time (April 2019; later versions leave the T² out by default)."""
    targets = F.softmax(teacher_logits / temperature, dim=1)
    targets = F.pad(targets, (0, logits.shape[1] - targets.shape[1]))
    cross_entropy = -(targets * F.log_softmax(logits / temperature, dim=1)).sum(1).mean()
    return cross_entropy * temperature**2


@dataclass(frozen=True)
class Replay:
    """A batch replayed from the past: images, and the classifier's targets for them (hard
    labels, or a teacher's logits to distil), plus the labels a conditional generator
    learns them under."""

    images: Tensor
    labels: Tensor | None
    teacher_logits: Tensor | None = None


class Learner:
    """What a strategy trains through the tasks. Subclasses say how a task is learned and
    how an image is classified; the state round-trips through safetensors."""

    def __init__(self, config: SplitConfig, strategy: Strategy) -> None:
        self.config, self.strategy = config, strategy

    def modules(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def train_task(self, task: int, train: Dataset, rng: torch.Generator) -> None:
        raise NotImplementedError

    def predict(self, images: Tensor, classes: int) -> Tensor:
        raise NotImplementedError

    def samples(self, task: int, rng: torch.Generator) -> Tensor | None:
        """What the learner's generator dreams after `task`, for the figures (uint8)."""
        return None

    def reconstruction_spreads(self, images: Tensor, labels: Tensor) -> dict[str, float | None]:
        """After the last task, each generative model's `recorded_spread` on the test
        `images` it models, by name: a model that reconstructs them all alike has learned
        no digit, so what it replays or scores carries none. A classifier alone
        reconstructs nothing (its accuracy says whether it learned): nothing to check."""
        return {}

    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        tensors = {
            f"{name}/{key}": value
            for name, module in self.modules().items()
            for key, value in module.state_dict().items()
        }
        return tensors, {}

    def load(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        for name, module in self.modules().items():
            prefix = f"{name}/"
            module.load_state_dict(
                {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            )


class ReplayClassifier(Learner):
    """The MLP classifier, with the strategy's replay: none, a buffer of real images, or
    dreams of a VAE trained beside it (labelled by the previous classifier, or asked for
    a digit when the VAE is conditional)."""

    def __init__(self, config: SplitConfig, strategy: Strategy) -> None:
        super().__init__(config, strategy)
        self.classifier = MLPClassifier(config.hidden)
        self.optimizer = torch.optim.Adam(self.classifier.parameters(), lr=config.lr)
        generator = {"dreams": config.generator, "labelled-dreams": config.conditional_generator}
        self.generator: Model | None = None
        if strategy.replay in generator:
            self.generator = build(generator[strategy.replay], (1, 28, 28))
            self.generator_optimizer = torch.optim.Adam(self.generator.parameters(), lr=config.lr)

    def modules(self) -> dict[str, nn.Module]:
        return {"classifier": self.classifier} | (
            {"generator": self.generator} if self.generator is not None else {}
        )

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"classifier": self.optimizer} | (
            {"generator": self.generator_optimizer} if self.generator is not None else {}
        )

    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        tensors, meta = super().state()
        for name, optimizer in self.optimizers().items():
            optim, optim_meta = optimizer_tensors(optimizer)
            tensors |= {f"{name}-{k}": v for k, v in optim.items()}
            meta[f"{name}-optimizer"] = optim_meta
        return tensors, meta

    def load(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        super().load(tensors, meta)
        for name, optimizer in self.optimizers().items():
            prefix = f"{name}-"
            own = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            restore_optimizer(optimizer, own, meta[f"{name}-optimizer"])

    def predict(self, images: Tensor, classes: int) -> Tensor:
        return self.classifier.predict(images, classes)

    def train_task(self, task: int, train: Dataset, rng: torch.Generator) -> None:
        tasks = TASKS if self.strategy.joint else TASKS[task : task + 1]
        current = train.with_classes([d for t in tasks for d in t])
        known = seen(task)
        past = self._teachers(task)
        memory = self._memory(task, train, rng)
        weight = 1.0 if self.strategy.joint else 1.0 / (task + 1)
        batches = shuffled_batches(current, self.config.batch_size, rng)
        for _ in range(self.config.iterations):
            x, y = next(batches)
            replay = (
                self._replay(task, past, memory, rng) if task and not self.strategy.joint else None
            )
            self._classifier_step(x, y, replay, known, weight)
            if self.generator is not None:
                self._generator_step(x, y, replay, weight)

    def _teachers(self, task: int) -> tuple[MLPClassifier, Model | None] | None:
        """Frozen copies of the classifier and generator as they were before `task`."""
        if task == 0:
            return None
        classifier = frozen_copy(self.classifier)  # type: ignore[arg-type]
        return classifier, None if self.generator is None else frozen_copy(self.generator)

    def _memory(self, task: int, train: Dataset, rng: torch.Generator) -> Dataset | None:
        if self.strategy.replay != "buffer" or task == 0:
            return None
        past = [d for t in TASKS[:task] for d in t]
        seed = int(torch.randint(2**31, (1,), generator=rng))
        return replay_buffer(train, past, self.config.replay_size, seed)

    @torch.no_grad()
    def _replay(
        self,
        task: int,
        past: tuple[MLPClassifier, Model | None] | None,
        memory: Dataset | None,
        rng: torch.Generator,
    ) -> Replay | None:
        n, known = self.config.batch_size, seen(task - 1)
        if self.strategy.replay == "buffer":
            assert memory is not None
            index = torch.randint(len(memory), (n,), generator=rng)
            return Replay(memory.float()[index], memory.labels[index])
        if self.strategy.replay is None or past is None:
            return None
        teacher, generator = past
        assert generator is not None
        asked = (
            torch.randint(known, (n,), generator=rng)
            if generator.capabilities.conditional
            else None
        )
        images = generator.sample(n, rng, asked)
        logits = teacher(images)[:, :known]
        labels = asked if asked is not None else logits.argmax(1)
        return Replay(images, labels, logits if self.strategy.targets == "soft" else None)

    def _classifier_step(
        self, x: Tensor, y: Tensor, replay: Replay | None, known: int, weight: float
    ) -> None:
        self.classifier.train()
        loss = F.cross_entropy(self.classifier(x)[:, :known], y)
        if replay is not None:
            logits = self.classifier(replay.images)[:, :known]
            past = (
                distillation_loss(logits, replay.teacher_logits, self.config.temperature)
                if replay.teacher_logits is not None
                else F.cross_entropy(logits, replay.labels)
            )
            loss = weight * loss + (1 - weight) * past
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def _generator_step(self, x: Tensor, y: Tensor, replay: Replay | None, weight: float) -> None:
        assert self.generator is not None
        self.generator.train()
        labels = y if self.generator.capabilities.conditional else None
        loss = self.generator(x, labels).per_image_loss.mean()
        if replay is not None:
            asked = replay.labels if self.generator.capabilities.conditional else None
            past = self.generator(replay.images, asked).per_image_loss.mean()
            loss = weight * loss + (1 - weight) * past
        self.generator_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.generator_optimizer.step()

    def reconstruction_spreads(self, images: Tensor, labels: Tensor) -> dict[str, float | None]:
        """The generator's, on the whole test set: it learns every digit it replays, and by
        the last task all ten are learned (asked for each image's digit if conditional)."""
        if self.generator is None:
            return {}
        asked = labels if self.generator.capabilities.conditional else None
        return {"generator": recorded_spread(self.generator, images, asked)}

    @torch.no_grad()
    def samples(self, task: int, rng: torch.Generator) -> Tensor | None:
        if self.generator is None:
            return None
        self.generator.eval()
        known = seen(task)
        asked = (
            torch.arange(known).repeat_interleave(SAMPLES_SHOWN)
            if self.generator.capabilities.conditional
            else None
        )
        images = self.generator.sample(known * SAMPLES_SHOWN, rng, asked)
        return images.mul(255).round().to(torch.uint8)


class GenerativeClassifier(Learner):
    """One VAE per digit, each trained on its own digit alone, so no task can overwrite
    another's; an image is given the digit whose VAE finds it most likely (the
    importance-weighted bound on log p(x | digit), equal priors). van de Ven, Li and
    Tolias, "Class-incremental learning with generative classifiers", CVPR-W 2021."""

    def __init__(self, config: SplitConfig, strategy: Strategy) -> None:
        super().__init__(config, strategy)
        self.models = nn.ModuleDict(
            {str(d): build(config.class_model, (1, 28, 28)) for t in TASKS for d in t}
        )
        self.trained: list[str] = []
        self._scored: Tensor | None = None
        self._bounds: dict[str, Tensor] = {}

    def modules(self) -> dict[str, nn.Module]:
        return {"models": self.models}

    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The VAEs of the digits learned so far (the others are still untrained)."""
        tensors = {
            f"models/{digit}/{key}": value
            for digit in self.trained
            for key, value in self.models[digit].state_dict().items()
        }
        return tensors, {"trained": self.trained}

    def load(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        self.trained = list(meta["trained"])
        for digit in self.trained:
            prefix = f"models/{digit}/"
            self.models[digit].load_state_dict(
                {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            )

    def train_task(self, task: int, train: Dataset, rng: torch.Generator) -> None:
        for digit in TASKS[task]:
            model = self.models[str(digit)]
            optimizer = torch.optim.Adam(model.parameters(), lr=self.config.lr)
            batches = shuffled_batches(train.with_classes([digit]), self.config.batch_size, rng)
            model.train()
            for _ in range(self.config.class_iterations):
                x, _ = next(batches)
                loss = model(x).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            self.trained.append(str(digit))

    def predict(self, images: Tensor, classes: int) -> Tensor:
        nll = torch.stack([self._bound(str(d), images) for d in range(classes)])
        return nll.argmin(0)

    def _bound(self, digit: str, images: Tensor) -> Tensor:
        """-log p(images | digit), bounded with K samples. A digit's VAE never changes once
        its task is over, so its bounds on one set of images are computed once."""
        if self._scored is not images:
            self._scored, self._bounds = images, {}
        if digit not in self._bounds:
            model = self.models[digit]
            self._bounds[digit] = iwae(model, images, self.config.importance_samples)
        return self._bounds[digit]

    def reconstruction_spreads(self, images: Tensor, labels: Tensor) -> dict[str, float | None]:
        """Each trained digit's VAE on that digit's test images alone, all it ever learns."""
        return {
            f"digit {digit}": recorded_spread(self.models[digit], images[labels == int(digit)])
            for digit in self.trained
        }

    @torch.no_grad()
    def samples(self, task: int, rng: torch.Generator) -> Tensor | None:
        parts = []
        for digit in range(seen(task)):
            model = self.models[str(digit)].eval()
            parts.append(model.sample(SAMPLES_SHOWN, rng))
        return torch.cat(parts).mul(255).round().to(torch.uint8)


@dataclass(frozen=True)
class Strategy:
    """How a strategy keeps the past. `replay`: None, "buffer" (real images), "dreams" (an
    unconditional VAE's samples, labelled by the previous classifier) or "labelled-dreams"
    (a conditional VAE asked for each past digit); `targets`: "hard" labels or "soft"
    distillation from the previous classifier; `joint`: all tasks at once (upper bound)."""

    summary: str
    learner: type[Learner] = ReplayClassifier
    replay: str | None = None
    targets: str = "hard"
    joint: bool = False
    published: str | None = None
    """The row of the published table this strategy reproduces, if any."""


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(name: str, strategy: Strategy) -> None:
    """Make `name` a Split-MNIST strategy (`vaelab bench split-mnist --strategy NAME`), here
    and in the benchmark's workers (`vaelab.plugins`)."""
    plugins.add(STRATEGIES, name, strategy, Strategy, "Split-MNIST strategy")


for _name, _strategy in {
    "none": Strategy("fine-tune on each task in turn", published="None"),
    "offline": Strategy(
        "all five tasks at once, one task's budget (the upper bound)", joint=True,
        published="Offline",
    ),
    "replay": Strategy("plus a batch from a buffer of real past images", replay="buffer"),
    "dgr": Strategy(
        "plus a batch of the previous VAE's dreams, labelled by the previous classifier",
        replay="dreams", published="DGR",
    ),
    "dgr-distill": Strategy(
        "as dgr, with the previous classifier's soft targets (temperature 2)",
        replay="dreams", targets="soft", published="DGR+distill",
    ),
    "cvae-replay": Strategy(
        "plus a batch from a conditional VAE asked for the past digits evenly",
        replay="labelled-dreams",
    ),
    "cvae-distill": Strategy(
        "as cvae-replay, with the previous classifier's soft targets",
        replay="labelled-dreams", targets="soft",
    ),
    "generative-classifier": Strategy(
        "one VAE per digit, classify by the highest likelihood", learner=GenerativeClassifier
    ),
}.items():  # fmt: skip
    register_strategy(_name, _strategy)


def check_strategies(names: list[str]) -> None:
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise SettingError(
            f"unknown {{strategy}} {unknown[0]!r}; choose {', '.join(STRATEGIES)} or all",
            "strategy",
        )


def train_and_measure(
    learner: Learner, task: int, train: Dataset, test: tuple[Tensor, Tensor], seed: int
) -> tuple[dict[str, Any], Tensor | None]:
    """Train `learner` on `task` (torch and the data seeded by `seed` and the task, so a
    resumed run repeats it exactly); the task's record and the generator's samples.
    `test` is (float images, labels), the same tensors for every task."""
    torch.manual_seed(seed * 100 + task)
    rng = torch.Generator().manual_seed(seed * 100 + task)
    started = time.perf_counter()
    trained = not learner.strategy.joint or task == len(TASKS) - 1
    if trained:
        learner.train_task(task, train, rng)
    seconds = time.perf_counter() - started
    row = class_il_accuracy(learner.predict, *test, task) if trained else [None] * len(TASKS)
    record = {
        "task": task,
        "digits": list(TASKS[task]),
        "accuracy": row,
        "train_seconds": round(seconds, 2),
        "eval_seconds": round(time.perf_counter() - started - seconds, 2),
    }
    return record, learner.samples(task, rng) if trained else None


def task_data(config: SplitConfig, train: Dataset) -> Dataset:
    """The training images, capped at `train_size` per digit."""
    if config.train_size is None:
        return train
    parts = [train.with_classes([d]) for t in TASKS for d in t]
    return concat([p.first(min(config.train_size, len(p))) for p in parts])
