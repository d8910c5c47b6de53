"""The stage loop: one VAE learns one digit after another, measured after every stage.

    out/
      continual.json                the settings (a rerun must match them)
      <strategy>/stage_00.safetensors  model state after each stage, with that
                                       stage's measurements in its metadata
      matrix.csv, metrics.json      every strategy run into `out` so far

Stage k continues training the same model with `vaelab.train.train` (a fresh
optimiser, torch seeded with `train.seed + k`) on the set `stage_training_set`
returns. A stage's file is written only once it is trained and measured, so
rerunning skips finished stages and gives the same numbers as one unbroken run.

Each stage's model is also checked on the test images of the digits seen so far
(`vaelab.diagnostics`): a stage too short to learn leaves a model that reconstructs
them all alike, whose losses measure one average picture, so its forgetting says
nothing of memory. Such stages are listed per strategy (`untrained_stages`), warned
of and noted in the report.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from vaelab.classifier import DigitClassifier, cached_classifier
from vaelab.config import ModelConfig, TrainConfig, check_types
from vaelab.continual.metrics import dream_shares, evaluate_stage, summarize
from vaelab.continual.strategies import (
    STRATEGIES,
    check_strategy,
    concat,
    frozen_copy,
    replay_quotas,
    stage_training_set,
)
from vaelab.data import Dataset, load
from vaelab.devices import resolve_device
from vaelab.diagnostics import recorded_spread, warn_of_untrained
from vaelab.errors import SettingError
from vaelab.executors import Executor, claim_settings, get_executor
from vaelab.jsonfiles import read_json
from vaelab.models import Model, build
from vaelab.plugins import import_registered
from vaelab.run import load_tensors, save_tensors
from vaelab.train import check_training
from vaelab.train import train as train_model

DATASETS = ("mnist", "mnist-sample")
SETTINGS = "continual.json"
METRICS = "metrics.json"
MATRIX = "matrix.csv"


@dataclass
class ContinualConfig:
    """One sequential experiment. `strategy` is one strategy, several separated by commas,
    or all; `train_size` caps each digit's training images (first N).

    `train` trains every stage with a fresh optimiser: each stage after the first for
    `train.epochs`, stage k with torch seeded by `train.seed + k` (the seed also draws
    the initial weights, the replay buffers, the evaluation noise and the dreams), on
    each job's share of the cores whatever `train.threads` says (`vaelab.executors`).
    Stage 0 is the article's 7-model and trains for `first_stage_epochs`: a first
    digit learned only half-way has little to forget, and its model dreams few
    recognisable digits, so forgetting could not be seen.
    """

    dataset: str = "mnist"
    data_dir: str | None = None
    order: list[int] = field(default_factory=lambda: [7, 0, 1, 2, 3, 4, 5, 6, 8, 9])
    strategy: str = "naive"
    first_stage_epochs: int = 20
    replay_size: int = 1000
    model: ModelConfig = field(default_factory=lambda: ModelConfig("vae"))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=2))
    dream_samples: int = 1000
    train_size: int | None = None

    @property
    def strategies(self) -> tuple[str, ...]:
        """The strategies `strategy` names: one, several separated by commas, or all."""
        if self.strategy == "all":
            return tuple(STRATEGIES)
        return tuple(name.strip() for name in self.strategy.split(","))

    def _keeps_a_buffer(self) -> bool:
        return any(check_strategy(name).buffer for name in self.strategies)

    def check(self) -> None:
        """Refuse settings that cannot work, whatever the data; `check_data` does the rest."""
        check_types(self)
        names = self.strategies
        for name in names:
            check_strategy(name)
            if names.count(name) > 1:
                raise SettingError(f"{{strategy}} names {name!r} twice", "strategy")
        if self.dataset not in DATASETS:
            raise SettingError(
                "continual learning reads dreams with an MNIST digit classifier, so {dataset} "
                f"must be {' or '.join(DATASETS)}, not {self.dataset!r}",
                "dataset",
            )
        if not set(self.order) <= set(range(10)):
            raise SettingError(f"{{order}} holds digits 0-9 only, got {self.order}", "order")
        if len(self.order) < 2 or len(set(self.order)) != len(self.order):
            raise SettingError(
                f"{{order}} needs two or more different digits, got {self.order}; e.g. 7,0,1,2",
                "order",
            )
        for name in POSITIVE:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SettingError(f"{{{name}}} must be at least 1, got {value}", name)
        if self.train.epochs < 1:
            raise SettingError(
                f"{{epochs}} of each stage after the first must be at least 1, got "
                f"{self.train.epochs}",
                "epochs",
            )
        check_training(self.train)
        if self._keeps_a_buffer():
            replay_quotas(self.order[:-1], self.replay_size)
        resolve_device(self.train.device)

    def check_data(self, train: Dataset, test: Dataset) -> None:
        """Refuse settings the loaded digits cannot serve, before the first stage trains:
        the model must dream (every stage is measured by its samples), every digit needs
        test images, and every stage's replay buffer real images."""
        model = build(self.model, tuple(train.images.shape[1:]))
        if not model.capabilities.sampling:
            raise SettingError(
                f"{{model}} {self.model.name!r} has no prior to sample from, and every stage "
                "is measured by what the model dreams; choose a VAE (vaelab models lists them)",
                "model",
            )
        missing = [d for d in self.order if not (test.labels == d).any()]
        if missing:
            raise SettingError(
                f"{self.dataset} has no test images of digit {missing[0]} in {{order}}", "order"
            )
        if not self._keeps_a_buffer():
            return
        for stage in range(1, len(self.order)):
            past = self.order[:stage]
            for digit, quota in zip(past, replay_quotas(past, self.replay_size), strict=True):
                available = int((train.labels == digit).sum())
                if quota > available:
                    raise SettingError(
                        f"the replay buffer of stage {stage} keeps {quota} images of digit "
                        f"{digit}, but there are only {available} training images of it; lower "
                        f"{{replay_size}} to {self._largest_replay(train)} or less",
                        "replay_size",
                    )

    def _largest_replay(self, train: Dataset) -> int:
        """The largest buffer every stage can fill: stage k splits it over k past digits."""
        counts = [int((train.labels == d).sum()) for d in self.order[:-1]]
        return min(min(counts[:stage]) * stage for stage in range(1, len(self.order)))


POSITIVE = ("first_stage_epochs", "replay_size", "dream_samples", "train_size")
"""Settings that count something, so must be 1 or more (`train_size` may also be None);
`check_training` checks those of `train`."""


def run_continual(
    config: ContinualConfig,
    out: str | os.PathLike[str],
    *,
    classifier: tuple[DigitClassifier, dict[str, Any]] | None = None,
    jobs: int = 1,
    executor: str | Executor = "local",
    ray_address: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every strategy of `config` into `out`, with its figures and, for two or more
    strategies in `out`, the comparison report; returns the contents of `metrics.json`.

    The strategies are independent, so they run `jobs` at a time on a machine, where
    `executor` says (as in `vaelab.bench.run_oneclass`). `classifier` (model, record)
    defaults to the cached classifier of the dataset (full MNIST, or the bundled sample
    for `mnist-sample`), trained on first use.
    """
    runner = get_executor(executor, ray_address)
    config.check()
    config.check_data(*load_digits(config))
    folder = Path(out)
    _upgrade_settings(folder)
    claim_settings(folder, _settings(config), SETTINGS)
    run_strategies(config, folder, runner, jobs, progress)
    if classifier is None:
        every_digit = (
            load(config.dataset, "train", config.data_dir),
            load(config.dataset, "test", config.data_dir),
        )
        classifier = cached_classifier(data=every_digit, progress=progress)
    metrics = collect(folder, config, classifier)
    write_outputs(folder, metrics)
    warn_of_untrained(
        [
            f"{name} stage {stage['stage']} on digit {stage['digit']}"
            for name, summary in metrics["strategies"].items()
            for stage in summary["untrained_stages"]
        ],
        "stage",
        folder,
        images="test image of the digits learned so far",
        consequence="their losses, forgetting and dreams are those of a model that draws one "
        "average picture, not of what it remembers",
        remedy="train for more epochs on the first digit, or on each later one",
        listed=f"untrained_stages of each strategy in {METRICS}",
    )
    from vaelab.figures.continual import continual_figures  # matplotlib only when drawing

    models = {
        strategy: load_stage_models(folder / strategy, config.order, config.model)
        for strategy in metrics["strategies"]
    }
    continual_figures(folder, metrics, models)
    return metrics


def load_digits(config: ContinualConfig) -> tuple[Dataset, Dataset]:
    """Training and test images of the digits in `config.order`."""
    train = load(config.dataset, "train", config.data_dir).with_classes(config.order)
    test = load(config.dataset, "test", config.data_dir).with_classes(config.order)
    if config.train_size is not None:
        parts = [train.with_classes([d]) for d in config.order]
        train = concat([p.first(min(config.train_size, len(p))) for p in parts])
    return train, test


def run_strategies(
    config: ContinualConfig, folder: Path, runner: Executor, jobs: int, progress: bool
) -> None:
    """Every strategy of `config` as one call of `runner`, each into `folder/<strategy>`.
    Progress bars are drawn by the calls when they run in this process, else one bar
    counts the finished strategies."""
    here = runner.runs_here(jobs)
    calls = [(config, strategy, str(folder), progress and here) for strategy in config.strategies]
    gpu = resolve_device(config.train.device).type == "cuda"
    counted = progress and not here
    with tqdm(total=len(calls), desc="continual", unit="strategy", disable=not counted) as bar:
        for _ in runner.run(strategy_task, calls, jobs=jobs, gpu=gpu):
            bar.update(1)


def strategy_task(
    config: ContinualConfig,
    strategy: str,
    out: str,
    progress: bool,
    *,
    threads: int,
    modules: list[str],
) -> str:
    """Train `strategy` through every stage into `out/<strategy>` wherever the executor runs
    it (resuming after the last saved stage); `modules` make the user's registrations first."""
    import_registered(modules)
    torch.set_num_threads(threads)
    train, test = load_digits(config)
    run_strategy(strategy, config, train, test, Path(out) / strategy, progress)
    return strategy


def run_strategy(
    strategy: str,
    config: ContinualConfig,
    train: Dataset,
    test: Dataset,
    folder: Path,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train one model through every stage (skipping stages already saved); the stage records."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.train.seed)
    model = build(config.model, tuple(train.images.shape[1:]))
    records = []
    stages = tqdm(config.order, desc=strategy, unit="stage", disable=not progress)
    for stage, digit in enumerate(stages):
        stages.set_postfix(digit=digit)
        path = stage_path(folder, stage)
        if path.exists():
            tensors, meta = load_tensors(path)
            model.load_state_dict(tensors)
            records.append(meta["record"])
            continue
        record = train_stage(model, strategy, config, train, test, stage, progress)
        save_tensors(model.state_dict(), path, {"record": record, "shape": list(model.shape)})
        records.append(record)
    return records


def train_stage(
    model: Model,
    strategy: str,
    config: ContinualConfig,
    train: Dataset,
    test: Dataset,
    stage: int,
    progress: bool,
) -> dict[str, Any]:
    """Train `model` for one stage in place; that stage's record (data mix, time, measurements,
    and the reconstruction spread on the test images of the digits seen so far)."""
    teacher = frozen_copy(model) if STRATEGIES[strategy].teacher and stage > 0 else None
    data = stage_training_set(
        strategy,
        train,
        config.order,
        stage,
        replay_size=config.replay_size,
        teacher=teacher,
        seed=config.train.seed,
    )
    schedule = replace(
        config.train,
        epochs=config.first_stage_epochs if stage == 0 else config.train.epochs,
        seed=config.train.seed + stage,
    )
    seen = config.order[: stage + 1]
    learned = test.with_classes(seen)
    started = time.perf_counter()
    # Only for the progress bar: the test loss of the digits seen so far, instead of none.
    # Evaluation keeps its own random state, so training is the same with or without it.
    shown = learned if progress else None
    history = train_model(model, data, schedule, val=shown, progress=progress)
    seconds = time.perf_counter() - started
    dreamed = len(data) - len(train.with_classes([config.order[stage]])) if teacher else 0
    return {
        "stage": stage,
        "digit": config.order[stage],
        "seen": seen,
        "epochs": schedule.epochs,
        "train_images": len(data),
        "real_images": len(data) - dreamed,
        "dreamed_images": dreamed,
        "train_loss": history[-1]["train_loss"],
        "train_seconds": seconds,
        **evaluate_stage(model, test, config.order, config.train.seed),
        "reconstruction_spread": recorded_spread(
            model, learned.float(), learned.labels if model.capabilities.conditional else None
        ),
    }


def stage_path(folder: Path, stage: int) -> Path:
    return folder / f"stage_{stage:02d}.safetensors"


def load_stage_models(folder: Path, order: Sequence[int], config: ModelConfig) -> list[Model]:
    """The model after each saved stage of one strategy, in eval mode on the CPU."""
    models = []
    for stage in range(len(order)):
        tensors, meta = load_tensors(stage_path(folder, stage))
        shape = meta.get("shape", [meta.get("channels", 1), 28, 28])  # older files: channels
        model = build(config, tuple(shape))
        model.load_state_dict(tensors)
        models.append(model.eval())
    return models


def _settings(config: ContinualConfig) -> dict[str, Any]:
    """What every strategy in one out dir must share: not the strategy, nor where the data
    is, nor how training runs (the model in full, the training protocol and its seed)."""
    settings = asdict(config)
    for key in ("strategy", "data_dir"):
        settings.pop(key)
    settings["model"] = config.model.resolved().to_dict()
    settings["train"] = _train_settings(config.train)
    return settings


def _train_settings(train: TrainConfig) -> dict[str, Any]:
    return {**train.protocol(), "seed": train.seed}


def _upgrade_settings(folder: Path) -> None:
    """Rewrite a `continual.json` of the settings' first form (`batch_size`, `seed` and
    `epochs_per_stage` beside the others, trained with `TrainConfig`'s defaults, the model
    as given) in the present one, so that its folder resumes."""
    path = folder / SETTINGS
    if not path.exists():
        return
    settings = read_json(path, "restore it, or write into another folder")
    if "train" in settings:
        return
    train = TrainConfig(
        epochs=settings.pop("epochs_per_stage"),
        batch_size=settings.pop("batch_size"),
        seed=settings.pop("seed"),
    )
    settings["model"] = ModelConfig.from_dict(settings["model"]).resolved().to_dict()
    path.write_text(json.dumps({**settings, "train": _train_settings(train)}, indent=2) + "\n")


def collect(
    folder: Path, config: ContinualConfig, classifier: tuple[DigitClassifier, dict[str, Any]]
) -> dict[str, Any]:
    """`metrics.json`: the protocol and every strategy finished in `folder`, with the share
    of each digit among each stage model's dreams."""
    strategies = {}
    for strategy in STRATEGIES:
        paths = [stage_path(folder / strategy, s) for s in range(len(config.order))]
        if not all(p.exists() for p in paths):
            continue
        records = [load_tensors(p)[1]["record"] for p in paths]
        models = load_stage_models(folder / strategy, config.order, config.model)
        for record, model in zip(records, models, strict=True):
            record["dream_share"] = dream_shares(
                model, classifier[0], config.order, config.dream_samples, config.train.seed
            )
        summary = STRATEGIES[strategy].summary
        strategies[strategy] = {"summary": summary, **summarize(records, config.order)}
    return {"protocol": _settings(config), "classifier": classifier[1], "strategies": strategies}


def write_outputs(folder: Path, metrics: dict[str, Any]) -> None:
    """`metrics.json` and the long-format `matrix.csv` (one row per strategy, stage, digit)."""
    (folder / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    with open(folder / MATRIX, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["strategy", "stage", "learned", "digit", "loss", "recon", "dream_share"])
        for strategy, summary in metrics["strategies"].items():
            for record in summary["stages"]:
                for digit in record["loss"]:
                    writer.writerow(
                        [
                            strategy,
                            record["stage"],
                            record["digit"],
                            digit,
                            f"{record['loss'][digit]:.4f}",
                            f"{record['recon'][digit]:.4f}",
                            f"{record['dream_share'][digit]:.4f}",
                        ]
                    )
