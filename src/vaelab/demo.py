"""The article, end to end: three trained runs, every figure, the article's closing
question (continual learning on the sample), and one HTML report.

    demo("vaelab-demo")              # bundled MNIST sample, shortened schedules
    demo("vaelab-demo", full=True)   # full MNIST, the article's schedules

The pipeline is a list of stages (`STAGES`); each trains what it needs as a
real run folder under `out/runs/`, draws its figures into `out/` and returns
a report `Section`. A new experiment joins the demo by appending a stage.

Default schedule (bundled sample: 8,000 training and 2,000 test digits),
sized in images processed, about 450,000 for the four runs:

    AE       first 1,000 images, 10 epochs, Adadelta        (as the article)    10,000
    AE       all 8,000 images, 15 epochs, Adam              (until it works)   120,000
    VAE      all 8,000 images, 30 epochs, Adam, latent 2                       240,000
    VAE (7)  the 800 sevens, 100 epochs, Adam, latent 2                         80,000

`full=True` uses full MNIST and the article's schedules: the article's AE as
above, the working AE 2 epochs on 60,000 images (as many steps as 15 on the
sample), the VAE 100 epochs on 60,000 images, and the 7-only VAE 100 epochs
on the 6,265 sevens (the article does not give its epochs; 100 matches its
VAE). docs/demo.md records the measured wall times.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import torch

from vaelab import __version__, plotting
from vaelab.anomaly import analyze_run
from vaelab.config import DEFAULT_SCORE, DataConfig, ModelConfig, RunConfig, TrainConfig
from vaelab.continual import ContinualConfig
from vaelab.continual.loop import load_digits
from vaelab.data import Dataset, load
from vaelab.devices import resolve_device
from vaelab.errors import SettingError
from vaelab.figures.gifs import ReconstructionFrames
from vaelab.figures.report import Figure, Report, Section
from vaelab.run import Run
from vaelab.run_report import run_facts
from vaelab.scores import recon_bce
from vaelab.train import fit
from vaelab.wording import count, duration

DEFAULT_OUT = "vaelab-demo"
Drawing = Callable[[Run, Path, plotting.PlotOptions], Path]


CONTINUAL = ContinualConfig(
    dataset="mnist-sample",
    order=[7, 0, 1, 2, 3],
    first_stage_epochs=20,
    train=TrainConfig(epochs=4, batch_size=32),
)
"""The continual section's settings (its strategy, seed and device are the demo's)."""


@dataclass(frozen=True)
class Schedule:
    """How much data and how many epochs each of the demo's models gets.

    The continual section learns digits one at a time on the bundled sample in
    either mode: 800 images a digit, so batches of 32 give each stage 100 steps,
    and five digits keep it to about 64,000 training images in all.
    """

    dataset: str
    ae_epochs: int = 10
    ae_train_size: int = 1000
    ae_adam_epochs: int = 15
    ae_adam_train_size: int | None = None
    vae_epochs: int = 100
    vae_train_size: int | None = None
    vae7_epochs: int = 100
    vae7_train_size: int | None = None
    continual: ContinualConfig = field(default_factory=lambda: dataclasses.replace(CONTINUAL))


SAMPLE = Schedule("mnist-sample", vae_epochs=30, vae7_epochs=100)
FULL = Schedule("mnist", ae_adam_epochs=2)


@dataclass
class Demo:
    """Where the demo writes, what it trains on, and the report it is building."""

    out: Path
    schedule: Schedule
    data_dir: str | None = None
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    report: Report = field(default_factory=lambda: Report("", ""))

    @cached_property
    def test(self) -> Dataset:
        """The test split every figure draws its images from."""
        return load(self.schedule.dataset, "test", self.data_dir)

    def config(
        self, model: str, epochs: int, optimizer: str = "adam", **selection: object
    ) -> RunConfig:
        """A run of `model` (latent 2 for a VAE) on the schedule's dataset, `selection` of it."""
        data = DataConfig(self.schedule.dataset, self.data_dir, **selection)  # type: ignore[arg-type]
        train = TrainConfig(epochs, optimizer=optimizer, seed=self.seed, device=self.device)
        return RunConfig(data, ModelConfig(model, latent_dim=2), train)

    def fit(self, name: str, config: RunConfig, callbacks: tuple = ()) -> tuple[Run, Section]:
        """Train `config` into `out/runs/<name>`; returns the run and a section of its facts."""
        self.say(
            f"training {name}: {plotting.describe_config(config)}, "
            f"{count(config.train.epochs, 'epoch')}"
        )
        started = time.perf_counter()
        run = fit(config, self.runs / name, callbacks=callbacks, progress=self.progress)
        seconds = time.perf_counter() - started
        section = Section("", "", facts=self.facts(run, seconds))
        section.links[f"runs/{name}"] = f"runs/{name}/"
        return run, section

    def facts(self, run: Run, seconds: float) -> dict[str, str]:
        """What produced a run's figures: data, schedule, seed, final loss and wall time."""
        last = run.metrics()[-1]
        return run_facts(run) | {
            "wall time": f"{duration(seconds)} ({last['images_per_s']:,.0f} images/s "
            "in the last epoch)",
        }

    def continual_config(self) -> ContinualConfig:
        """The settings of the continual section (its strategy is set per run)."""
        continual = self.schedule.continual
        train = dataclasses.replace(continual.train, seed=self.seed, device=self.device)
        return dataclasses.replace(continual, data_dir=self.data_dir, train=train)

    def check(self) -> None:
        """Refuse a schedule that its data cannot serve before the first model trains, so a
        bad setting does not surface minutes later in the last section."""
        for split in ("train", "test"):
            load(self.schedule.dataset, split, self.data_dir)
        continual = self.continual_config()
        continual.check()
        continual.check_data(*load_digits(continual))

    def plot(self, run: Run, draw: Drawing, file: str) -> str:
        """Draw a figure of `run` (a `vaelab.plotting` function) into `out/file`; returns `file`."""
        draw(run, self.out / file, plotting.PlotOptions(data_dir=self.data_dir))
        return file

    @property
    def runs(self) -> Path:
        return self.out / "runs"

    def say(self, message: str) -> None:
        if self.progress:
            print(f"vaelab demo: {message}", file=sys.stderr, flush=True)


Stage = Callable[[Demo], Section]


def autoencoder(demo: Demo) -> Section:
    """Section 1: the article's autoencoder, trained as the article trains it."""
    s = demo.schedule
    section, gif, png = _watched_autoencoder(demo, "ae", s.ae_epochs, "adadelta", s.ae_train_size)
    section.title = "1. An autoencoder learns, as in the article"
    section.text = (
        "The article's convolutional autoencoder (a 4x4x8 code, 4,385 weights) trains on only "
        f"the first {s.ae_train_size:,} training images with Adadelta for "
        f"{count(s.ae_epochs, 'epoch')}, as in the article. Faithful, but short: at these "
        "settings the model has only begun to learn, and it draws every digit as a blurred "
        "grey blob. Section 2 trains the same model long enough to work."
    )
    section.figures = [
        Figure(
            gif,
            "The article's autoencoder (Adadelta, the first "
            f"{s.ae_train_size:,} images), one frame per epoch: a fixed row of test digits "
            "(top) over their reconstructions (bottom), with the epoch and the validation loss "
            "(mean pixel BCE).",
        ),
        Figure(
            png,
            "The article's autoencoder after its last epoch: grey blobs where the digits will be.",
        ),
    ]
    return section


def working_autoencoder(demo: Demo) -> Section:
    """Section 2: the same autoencoder trained long enough to reconstruct digits."""
    s = demo.schedule
    section, gif, png = _watched_autoencoder(
        demo, "ae-adam", s.ae_adam_epochs, "adam", s.ae_adam_train_size
    )
    section.title = "2. The same autoencoder, trained until it works"
    section.text = (
        "The same model, started from the same kind of weights, trained with Adam on "
        f"{_size(s.ae_adam_train_size)} training images for {count(s.ae_adam_epochs, 'epoch')}: "
        "more images, more steps and a faster optimiser. Now the 4x4x8 code holds enough of "
        "each image for the decoder to draw the digit back."
    )
    section.figures = [
        Figure(
            gif,
            "The same autoencoder trained with Adam, one frame per epoch: the blobs sharpen "
            "into digits.",
        ),
        Figure(png, f"The Adam-trained autoencoder after {count(s.ae_adam_epochs, 'epoch')}."),
    ]
    return section


def _watched_autoencoder(
    demo: Demo, name: str, epochs: int, optimizer: str, train_size: int | None
) -> tuple[Section, str, str]:
    """Train an autoencoder while filming its reconstructions; (section, GIF, PNG)."""
    images, _ = plotting.one_per_class(demo.test, 10)
    frames = ReconstructionFrames(images, epochs)
    config = demo.config("ae", epochs, optimizer, train_size=train_size)
    run, section = demo.fit(name, config, callbacks=(frames,))
    prefix = name.replace("-", "_")
    gif = f"{prefix}_training.gif"
    frames.save(demo.out / gif)
    png = demo.plot(run, plotting.reconstructions, f"{prefix}_reconstructions.png")
    return section, gif, png


def vae(demo: Demo) -> Section:
    """Section 2: a VAE with a 2-D latent plane, its map of digits and a walk across it."""
    s = demo.schedule
    config = demo.config("vae", s.vae_epochs, train_size=s.vae_train_size)
    run, section = demo.fit("vae", config)
    start, end = plotting.ARTICLE_START, plotting.ARTICLE_END
    section.title = "3. A VAE maps the digits onto a plane"
    section.text = (
        "The same convolutional stacks with Dense `z_mean` / `z_log_var` heads and a 2-D latent "
        f"space, trained with Adam on {_size(s.vae_train_size)} training images. Loss per "
        "image: 784 x mean pixel BCE + KL to the standard normal prior. To decode any point "
        f"of the plane live in the browser: `vaelab explore {demo.runs / 'vae'}`"
    )
    section.figures = [
        Figure(
            demo.plot(run, plotting.scatter, "vae_latent_scatter.png"),
            "`z_mean` of every test image, coloured by its digit: similar digits land together; "
            "dashed, the square the manifold below decodes.",
        ),
        Figure(
            demo.plot(run, plotting.manifold, "vae_manifold.png"),
            "Decoded digits over a regular 15 x 15 grid of the latent plane, z in [-3, 3]².",
        ),
        Figure(
            demo.plot(run, plotting.interpolate, "vae_interpolation.gif"),
            f"A straight walk across the plane from {list(start)} (step 1) to {list(end)} "
            "(step 8), decoding each of the 8 steps: one digit morphs into another.",
        ),
        Figure(
            demo.plot(run, plotting.loss, "loss_curves.png"),
            "Train and validation loss per epoch, with its reconstruction and KL parts.",
        ),
    ]
    return section


def sevens(demo: Demo) -> Section:
    """Section 3: a VAE that has only seen sevens, and what it makes of other digits."""
    s = demo.schedule
    config = demo.config("vae", s.vae7_epochs, classes=[7], train_size=s.vae7_train_size)
    run, section = demo.fit("vae7", config)
    section.title = "4. A VAE trained on sevens spots the other digits"
    section.text = (
        "The same VAE trained on the digit 7 alone (train and validation filtered to 7). Its "
        "latent plane holds only sevens, so other digits are reconstructed as sevens, and the "
        "per-pixel error shows where each image is not one. " + _auroc(demo, run)
    )
    section.figures = [
        Figure(
            demo.plot(run, plotting.manifold, "vae7_manifold.png"),
            "The decoded latent grid of the 7-only model: sevens where its training images' "
            "codes lie, fragments where none landed.",
        ),
        Figure(
            demo.plot(run, plotting.anomaly_maps, "anomaly_maps.png"),
            "A test image of each digit (top), its reconstruction by the 7-only model (middle) "
            "and the per-pixel BCE (bottom). The score is -log p(x | `z_mean`) summed over pixels "
            f"(recon-bce, nats; higher = more anomalous). {_ranking(demo, run)}",
        ),
    ]
    return section


def _auroc(demo: Demo, run: Run) -> str:
    """How well the article's score, and `vaelab anomaly`'s default, tell the test set's
    sevens from its other digits."""
    test = demo.test
    auroc = {
        score: analyze_run(run, score=score, data_dir=demo.data_dir).metrics["overall"]["auroc"]
        for score in ("recon-bce", DEFAULT_SCORE)
    }
    sevens = int((test.labels == 7).sum())
    return (
        f"Over all {len(test):,} test images ({sevens:,} sevens, the rest anomalies), the "
        f"article's score, recon-bce, tells sevens from the other digits with AUROC "
        f"{auroc['recon-bce']:.3f} (0.5 is chance, 1 perfect), and {DEFAULT_SCORE}, the default "
        f"of `vaelab anomaly`, with {auroc[DEFAULT_SCORE]:.3f}: `vaelab report {run.path}` draws "
        "its ROC curves and score histograms."
    )


def _ranking(demo: Demo, run: Run) -> str:
    """Where the seven's score falls among the ten digits shown."""
    images, labels = plotting.one_per_class(demo.test, 10)
    scores = recon_bce(run.load_model(), images)
    others = scores[labels != 7]
    seven = scores[labels == 7][0].item()
    rank = 1 + int((others < seven).sum())
    return (
        f"Here the seven scores {seven:.0f}, the other digits {others.min():.0f} to "
        f"{others.max():.0f}: the seven ranks {rank} of {len(scores)} from least anomalous."
    )


def remembers(demo: Demo) -> Section:
    """The article's closing question: naive sequential training versus generative replay."""
    from vaelab.continual import run_continual
    from vaelab.figures.continual import describe_protocol, strategy_facts

    config = demo.continual_config()
    out = demo.out / "continual"
    metrics: dict = {}
    for strategy in ("naive", "generative-replay"):
        demo.say(f"continual learning, {strategy}: digits {config.order} one at a time")
        config.strategy = strategy
        metrics = run_continual(config, out, progress=demo.progress)
    naive, dreaming = (metrics["strategies"][s] for s in ("naive", "generative-replay"))
    first = str(config.order[0])
    ratio = dreaming["avg_forgetting"] / naive["avg_forgetting"]
    return Section(
        "5. Does the VAE remember?",
        f"The article stops at this question. Here the same VAE learns the digits "
        f"{', '.join(map(str, config.order))} one stage at a time. Trained on each new digit "
        f"alone (naive), it forgets: the test loss of the earlier digits rises by "
        f"{naive['avg_forgetting']:.1f} nats on average, and the first digit makes up "
        f"{naive['final_dream_share'][first]:.0%} of its final dreams. With generative replay "
        "it also rehearses images dreamed by a frozen copy of itself from before each stage, "
        f"with no past data at all: average forgetting {dreaming['avg_forgetting']:.1f} nats "
        f"({ratio:.2f} times naive's), and the first digit makes up "
        f"{dreaming['final_dream_share'][first]:.0%} of its final dreams."
        "\n\n" + describe_protocol(metrics),
        [
            Figure("continual/comparison.png", "Forgetting and final dreams, side by side."),
            Figure(
                "continual/naive/dream_composition.png", "What the naive model dreams per stage."
            ),
            Figure(
                "continual/generative-replay/dream_composition.png",
                "What the model trained with generative replay dreams per stage.",
            ),
            Figure(
                "continual/naive/memory_manifold.gif",
                "The naive model's latent grid after each stage: old digits fade.",
            ),
        ],
        facts=strategy_facts(metrics),
        links={"continual": "continual/", "continual/report.html": "continual/report.html"},
    )


STAGES: list[Stage] = [autoencoder, working_autoencoder, vae, sevens, remembers]


def demo(
    out: str | os.PathLike[str] = DEFAULT_OUT,
    full: bool = False,
    data_dir: str | None = None,
    progress: bool = True,
    *,
    schedule: Schedule | None = None,
    seed: int = 0,
    device: str = "auto",
) -> Path:
    """Run every stage into `out` and write `out/report.html`; returns the report's path.

    `schedule` overrides the default one (tests shorten it; the code path stays the same).
    """
    schedule = schedule or (FULL if full else SAMPLE)
    out = Path(out)
    _check_empty(out)
    state = Demo(out, schedule, data_dir, seed, device, progress)
    state.check()
    started = time.perf_counter()
    state.report = Report(
        "vaelab demo: the article, reproduced",
        "A small convolutional autoencoder watched while it learns, first as the article "
        "trains it and then until it works, a VAE whose 2-D latent "
        "plane is mapped and walked, and a VAE trained on sevens alone that spots the other "
        "digits; then the article's open question: does a VAE that learns one digit at a time "
        "remember the earlier ones? Every figure is a file beside this page; every model is a "
        "run folder under runs/ (config, weights, per-epoch metrics) that `vaelab plot` can "
        "draw again.",
    )
    for stage in STAGES:
        state.report.add(stage(state))
    seconds = time.perf_counter() - started
    state.report.facts = {
        "dataset": schedule.dataset,
        "schedule": _describe(schedule),
        "seed": str(seed),
        "device": str(resolve_device(device)),
        "total wall time": f"{duration(seconds)} ({torch.get_num_threads()} CPU threads)",
        "made": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC with vaelab {__version__}",
    }
    return state.report.write(out / "report.html")


def _check_empty(out: Path) -> None:
    """The demo writes a whole folder of its own, so it starts from an empty one."""
    if out.is_file() or (out.is_dir() and any(out.iterdir())):
        what = "is a file" if out.is_file() else "is not empty (the demo fills one of its own)"
        raise SettingError(f"{out} {what}; choose a new {{out}} or delete {out} first", "out")


def _describe(schedule: Schedule) -> str:
    vae7 = count(schedule.vae7_epochs, "epoch")
    sizes = [
        f"AE {count(schedule.ae_epochs, 'epoch')} on the first {schedule.ae_train_size:,} images",
        f"AE with Adam {count(schedule.ae_adam_epochs, 'epoch')} on "
        f"{_size(schedule.ae_adam_train_size)} images",
        f"VAE {count(schedule.vae_epochs, 'epoch')} on {_size(schedule.vae_train_size)} images",
        f"7-only VAE {vae7} on {_size(schedule.vae7_train_size)} sevens",
    ]
    return "; ".join(sizes)


def _size(train_size: int | None) -> str:
    return "all" if train_size is None else f"the first {train_size:,}"
