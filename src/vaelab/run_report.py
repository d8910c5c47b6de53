"""One run on one page: every figure its model can draw, its test numbers and its settings.

    write_report("runs/vae")                 # -> runs/vae/report.html, figures in runs/vae/figures/
    write_report("runs/vae", out="pages/")   # -> pages/report.html beside its figures

`vaelab demo` writes such a page for the article's runs; this writes one for any run,
so what a learner trains with `vaelab train` is seen the same way. The figures are the
`vaelab plot` kinds (`PAGE` says which apply to which model), drawn with their defaults,
and the page embeds them, so it opens from disk with no network.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vaelab import plotting
from vaelab.anomaly import analyze_run
from vaelab.config import NO_DATASET
from vaelab.data import prepare
from vaelab.errors import RunError
from vaelab.figures.anomaly import measured_facts, numbered_names
from vaelab.figures.report import Figure, Report, Section
from vaelab.models import Model, loss_unit
from vaelab.run import Run
from vaelab.train import evaluate_run
from vaelab.wording import count

REPORT_FILE = "report.html"


@dataclass(frozen=True)
class Shown:
    """A figure of the page: the `vaelab plot` kind, its section, what it shows, and which
    models can draw it (`applies(model, has_test_images)`)."""

    kind: str
    title: str
    text: str
    applies: Callable[[Model, bool], bool]


def _prior(model: Model, _: bool) -> bool:
    return model.capabilities.sampling


def _plane(model: Model, _: bool) -> bool:
    return model.capabilities.sampling and model.latent_dim == 2


def _wide_prior(model: Model, _: bool) -> bool:
    return model.capabilities.sampling and model.latent_dim > 2


def _tested(_: Model, has_test_images: bool) -> bool:
    return has_test_images


def _walk(model: Model, has_test_images: bool) -> bool:
    """Between the article's two points on a 2-D plane, else between two test images."""
    return _plane(model, has_test_images) or has_test_images


PAGE = (
    Shown("loss", "Training", "The loss per epoch on the training and validation images.",
          lambda model, tested: True),
    Shown("reconstructions", "Reconstructions",
          "Test images, one per class in turn, over what the model makes of them.", _tested),
    Shown("scatter", "The latent space",
          "Where each test image's code lands, coloured by its class (PCA beyond two "
          "dimensions).", _tested),
    Shown("manifold", "The latent space",
          "The decoder's image at each point of a grid over the plane.", _plane),
    Shown("traverse", "Each latent dimension",
          "Each dimension varied alone, the rest at the prior's mean; rows by the KL each "
          "carries over the test images, most first.", _wide_prior),
    Shown("samples", "Samples", "Images decoded from codes drawn from the prior.", _prior),
    Shown("interpolate", "A walk",
          "The decoder's images along a straight line in latent space.", _walk),
)  # fmt: skip
"""The page's figures in reading order; consecutive ones with one title share a section."""


def write_report(
    run: Run | str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    data_dir: str | None = None,
) -> Path:
    """Draw every figure of `PAGE` that the run's model can draw into RUN/figures/ (or the
    folder `out`) and write `report.html` with them into RUN/ (or `out`); returns the page."""
    run = run if isinstance(run, Run) else Run(run)
    _ = run.config  # first: names a missing folder, or a file given as one, as such
    if not run.metrics():
        raise RunError(f"{run.path} has no finished epoch yet: train it before reporting on it")
    figures = Path(out) if out is not None else run.figures
    page = figures / REPORT_FILE if out is not None else run.path / REPORT_FILE
    figures.mkdir(parents=True, exist_ok=True)
    model, tested = run.load_model(), run.config.data.dataset != NO_DATASET
    chosen = [shown for shown in PAGE if shown.applies(model, tested)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        files = [_draw(run, shown, figures, model, data_dir) for shown in chosen]
        anomalies = anomaly_section(run, model, page.parent, data_dir) if tested else None
    report = Report(
        plotting.describe(run),
        "\n\n".join([_intro(run, model, chosen), *_once(caught)]),
        facts={"run": str(run.path), **run_facts(run, data_dir)},
    )
    for shown, file in zip(chosen, files, strict=True):
        figure = Figure(os.path.relpath(file, page.parent), shown.text)
        if report.sections and report.sections[-1].title == shown.title:
            report.sections[-1].figures.append(figure)
        else:
            report.add(Section(shown.title, "", [figure]))
    if tested:
        report.add(Section("On the test set", _test_text(model), facts=test_facts(run, data_dir)))
    if anomalies:
        report.add(anomalies)
    return report.write(page)


def anomaly_section(run: Run, model: Model, folder: Path, data_dir: str | None) -> Section | None:
    """For a run trained on some classes, how well its default anomaly score tells the other
    test classes from them: `vaelab anomaly RUN` into `folder`/anomaly/, beside the page, and
    its figures on the page. None where there is nothing to tell apart, or where the score
    cannot see the model's label (a conditional model) or would draw every image pixel by
    pixel (an autoregressive decoder)."""
    trained = run.config.data.classes
    if not trained or model.capabilities.conditional or model.capabilities.autoregressive:
        return None
    test = plotting.test_set(run, data_dir)
    if set(test.classes) <= set(trained):
        return None
    out = folder / "anomaly"
    scored = analyze_run(run, out=out, data_dir=data_dir)
    facts = {
        "score": f"`{scored.score}`",
        **measured_facts(scored, numbered_names(scored, test.class_names)),
    }
    files = {
        "roc.png": "ROC curves, one per other class and one for all.",
        "score_histograms.png": "Each class's scores over those of the trained classes.",
        "anomaly_maps.png": "For each class, the image the score gets most right and most "
        "wrong: input, reconstruction and where it fails.",
    }
    learned = ("class " if len(trained) == 1 else "classes ") + ", ".join(map(str, trained))
    return Section(
        "Anomalies",
        f"The run learned {learned} only; every other test class is scored as "
        f"anomalous, as `vaelab anomaly RUN` does (AUROC 0.5 is chance); `anomaly/` beside this "
        "page holds the scores (`scores.csv`), the metrics and a page of its own.",
        [Figure(f"anomaly/{name}", text) for name, text in files.items()],
        facts=facts,
    )


def _draw(run: Run, shown: Shown, folder: Path, model: Model, data_dir: str | None) -> Path:
    """One figure with `vaelab plot`'s defaults, under its own name in `folder`; a walk
    without the article's plane runs between the first two test images, and a conditional
    model draws `drawn_class`."""
    images = None if shown.kind != "interpolate" or _plane(model, True) else (0, 1)
    draws_a_class = model.capabilities.conditional and "label" in plotting.KINDS[shown.kind].reads
    label = drawn_class(run) if draws_a_class else None
    return plotting.plot(run, shown.kind, folder, images=images, label=label, data_dir=data_dir)


def drawn_class(run: Run) -> int:
    """The class a conditional model's figures draw: the first it was trained on."""
    return (run.config.data.classes or [0])[0]


def _once(caught: list[warnings.WarningMessage]) -> list[str]:
    """The warnings the figures raised, each once and in order, raised again for the caller
    and returned for the page (several figures check the same model)."""
    messages = list(dict.fromkeys(str(w.message) for w in caught))
    categories = {str(w.message): w.category for w in caught}
    for message in messages:
        warnings.warn(message, categories[message], stacklevel=3)
    return [f"Warning: {message}" for message in messages]


def _intro(run: Run, model: Model, chosen: list[Shown]) -> str:
    kind = "a VAE" if model.capabilities.sampling else "an autoencoder"
    drawn = (
        f" This model sees the label: the figures that decode a code draw class "
        f"{drawn_class(run)} (`vaelab plot RUN KIND --label N` draws another)."
        if model.capabilities.conditional
        else ""
    )
    untested = (
        ""
        if run.config.data.dataset != NO_DATASET
        else " It is a detector fitted on arrays or image files and names no test images, so "
        "the figures and numbers that need them are left out (`vaelab detector evaluate` "
        "measures it on images of yours)."
    )
    return (
        f"This page shows {count(len(chosen), 'figure')} of a trained run ({kind}, with a "
        f"{model.latent_dim}-D code), drawn as `vaelab plot RUN KIND` draws them; each file "
        f"lies beside the page.{drawn}{untested}"
    )


def _test_text(model: Model) -> str:
    text = "The mean loss per test image of the run's classes, and its parts."
    if model.capabilities.posterior:
        text += (
            " A latent unit is active when its posterior mean varies over the test images "
            "(Burda et al. 2016): the dimensions the code really uses."
        )
    return text


def run_facts(run: Run, data_dir: str | None = None) -> dict[str, str]:
    """What produced a run: its model, data, schedule, seed and final loss."""
    config, last = run.config, run.metrics()[-1]
    facts = {"model": plotting.describe(run)}
    if config.data.dataset != NO_DATASET:
        if data_dir is not None:
            config.data.data_dir = data_dir
        train, val = prepare(config.data)
        held = "test" if config.data.validation == "test" else "held-out training"
        facts["data"] = f"{len(train):,} training images, validated on {len(val):,} {held} images"
    facts["training"] = (
        f"{count(config.train.epochs, 'epoch')}, batch {config.train.batch_size}, "
        f"{config.train.optimizer}, seed {config.train.seed}"
    )
    facts["final loss"] = f"train {last['train_loss']:.4f}, validation {last['val_loss']:.4f}"
    return facts


def test_facts(run: Run, data_dir: str | None = None) -> dict[str, str]:
    """`vaelab eval RUN`'s numbers, as the page shows them: the loss and its parts in the
    model's unit."""
    measured = evaluate_run(run, data_dir)
    code_perplexity = measured.pop("code_perplexity", None)
    unit = loss_unit(run.config.model)
    facts = {
        f"{name} ({unit})": f"{value:.4f}"
        for name, value in measured.items()
        if isinstance(value, float)
    }
    if "active_units" in measured:
        facts["active latent units"] = f"{measured['active_units']} of {measured['latent_dim']}"
    if "codes_used" in measured:
        used, size = measured["codes_used"], measured["codebook_size"]
        facts["codebook vectors used"] = f"{used:,} of {size:,} (perplexity {code_perplexity:.1f})"
    return facts
