"""Every figure kind for a trained run, written into its `figures/` folder by default.

This module loads the run (its model and test images) and hands them to `vaelab.figures`.

    plot("runs/vae", "manifold", size=20, limit=4)    # -> runs/vae/figures/manifold.png
    plot("runs/vae", "interpolate", images=(0, 1))    # walk between two test images
    plot("runs/beta-vae", "traverse", image=3)        # each dimension, from test image 3

Images come from the run's dataset's test split (all classes, so a 7-only
model's scatter shows where the other digits land too).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from vaelab import diagnostics, latent_usage
from vaelab.config import NO_DATASET, RunConfig
from vaelab.data import Dataset, load
from vaelab.errors import RunError, SettingError, VaelabError
from vaelab.figures import gifs, latent, plots
from vaelab.models import Model, loss_unit
from vaelab.run import Run
from vaelab.scores import pixel_errors, recon_bce, reconstruct
from vaelab.seeding import check_seed
from vaelab.wording import listing

ARTICLE_START = (-0.7, -3.0)
ARTICLE_END = (-0.7, 2.0)
MAX_SIZE = 100
"""Images per side of a manifold or samples grid: 100 x 100 decodes 10,000 images in a few
seconds, far past the 30 per side a figure can show; 1,000 ran out of memory."""
MAX_STEPS = 1000
"""Frames of a walk: 1,000 take about 5 s and 2 MB, far past the explorer's 64."""
MAX_COUNT = 100
"""Test images a reconstructions figure shows in one row, 8,000 pixels wide at 100."""
MAX_LATENT = 1e6
"""The largest coordinate a figure spans or a walk visits: a VAE's codes lie within a few
units of 0 and an autoencoder's within tens; at 1e308 the figure's extent overflows."""
USAGE_IMAGES = 2000
"""Test images a traversal measures each dimension's KL and activity on: stable to a few
hundredths of a nat, and a second's work for the article's VAE."""


@dataclass
class PlotOptions:
    """Settings of the figure kinds; each kind reads the ones it needs. Values no figure can
    use are refused here, before any work, naming the parameter (`vaelab plot` its flag)."""

    size: int = 15
    limit: float = 3.0
    dims: tuple[int, int] = (0, 1)
    steps: int = 8
    start: Sequence[float] | None = None
    end: Sequence[float] | None = None
    images: tuple[int, int] | None = None
    image: int | None = None
    count: int = 10
    seed: int = 0
    label: int | None = None
    data_dir: str | None = None

    def __post_init__(self) -> None:
        check_count("size", self.size, 1, MAX_SIZE, "images per side of the grid")
        check_count("steps", self.steps, 2, MAX_STEPS, "frames of the walk")
        check_count("count", self.count, 1, MAX_COUNT, "test images to reconstruct")
        check_range(self.limit)
        check_point("start", self.start)
        check_point("end", self.end)
        if self.images is not None and (self.start is not None or self.end is not None):
            raise SettingError(
                "a walk runs between two test images ({images}) or two latent points "
                "({start}, {end}), not both; give one pair",
                "images",
                "start",
                "end",
            )
        check_seed(self.seed)


def check_count(name: str, value: int, low: int, high: int, what: str) -> None:
    """A count far past any readable figure runs for minutes or out of memory: refuse it."""
    if not low <= value <= high:
        raise SettingError(
            f"{{{name}}} {value} is out of range: choose {low} to {high} {what}", name
        )


def check_range(limit: float) -> None:
    """NaN, infinity or a number near the float limit would reach matplotlib's axis limits
    as a traceback."""
    if not 0 < limit <= MAX_LATENT:
        raise SettingError(
            f"{{limit}} {limit:g} is not a positive number up to {MAX_LATENT:g}: the figure "
            "spans z in [-R, R]; choose e.g. 3",
            "limit",
        )


def check_point(name: str, point: Sequence[float] | None) -> None:
    """A latent point with NaN, infinity or a huge coordinate would decode into a walk of
    blank frames."""
    if point is not None and not all(abs(v) <= MAX_LATENT for v in point):
        numbers = " ".join(f"{v:g}" for v in point)
        raise SettingError(
            f"{{{name}}} {numbers} is not a latent point: give numbers up to {MAX_LATENT:g} in "
            "size, one per latent dimension",
            name,
        )


def check_label(model: Model, label: int | None) -> None:
    """A conditional model's `label` must be one of its classes; the model's own check speaks
    of label tensors, which the caller never made."""
    classes = getattr(model, "num_classes", 0)
    if model.capabilities.conditional and label is not None and not 0 <= label < classes:
        raise SettingError(
            f"{{label}} {label} is not a class of this model: choose 0 to {classes - 1}", "label"
        )


def describe(run: Run) -> str:
    """A short name for titles: model, latent size, dataset and classes."""
    return describe_config(run.config)


def describe_config(config: RunConfig) -> str:
    classes = f", digits {','.join(map(str, config.data.classes))}" if config.data.classes else ""
    latent_size = f" (latent {config.model.latent_dim})" if config.model.name != "ae" else ""
    data = (
        "fitted as a detector" if config.data.dataset == NO_DATASET else f"on {config.data.dataset}"
    )
    return f"{config.model.name.upper()}{latent_size} {data}{classes}"


def test_set(run: Run, data_dir: str | None = None) -> Dataset:
    """The test split of the run's dataset, every class."""
    data = run.config.data
    if data.dataset == NO_DATASET:
        raise VaelabError(
            f"{run.path} is a detector fitted on arrays or image files, so it names no test "
            "images to show; of its figures, samples, manifold, loss and traverse (without an "
            "image) need none, and interpolate none between two latent points"
        )
    return load(data.dataset, "test", data_dir or data.data_dir, data.image_size)


def one_per_class(data: Dataset, count: int) -> tuple[Tensor, Tensor]:
    """`count` float images cycling through the classes in order (first of each class first)."""
    by_class = [(data.labels == c).nonzero()[:, 0] for c in data.classes]
    picks = [
        found[k // len(by_class)]
        for k in range(count)
        if k // len(by_class) < len(found := by_class[k % len(by_class)])
    ]
    index = torch.stack(picks)
    return data.images[index].float() / 255, data.labels[index]


def checked_title(run: Run, model: Model, title: str, data_dir: str | None) -> str:
    """`title`, with a warning line (also raised as an `UntrainedModelWarning`) when the model
    reconstructs its test images nearly identically, so a figure of grey squares says why
    (a detector names no test images to check on)."""
    if run.config.data.dataset == NO_DATASET:
        return title
    classes = run.config.data.classes
    test = test_set(run, data_dir)
    shown = test.with_classes(classes) if classes else test
    warning = diagnostics.untrained_warning(model, shown.float(), labels_for(model, shown.labels))
    if warning is None:
        return title
    warnings.warn(f"{run.path}: {warning}", diagnostics.UntrainedModelWarning, stacklevel=3)
    return f"{title}\n{diagnostics.TITLE_NOTE}"


def reconstructions(run: Run, path: Path, options: PlotOptions) -> Path:
    images, labels = one_per_class(test_set(run, options.data_dir), options.count)
    model = run.load_model()
    recons = torch.sigmoid(reconstruct(model, images, labels_for(model, labels)))
    title = checked_title(run, model, f"{describe(run)}: test reconstructions", options.data_dir)
    return plots.reconstructions(images, recons, path, title)


def scatter(run: Run, path: Path, options: PlotOptions) -> Path:
    test = test_set(run, options.data_dir)
    model = run.load_model()
    view = latent.plane(latent.codes(model, test.float(), labels_for(model, test.labels)))
    title = f"{describe(run)}: codes of {len(test):,} test images"
    prior = options.limit if model.capabilities.sampling and model.latent_dim == 2 else None
    return plots.latent_scatter(view, test.labels.numpy(), test.class_names, path, title, prior)


def labels_for(model: Model, labels: Tensor) -> Tensor | None:
    """The images' labels where the model reads them (a conditional model), else None."""
    return labels if model.capabilities.conditional else None


def manifold(run: Run, path: Path, options: PlotOptions) -> Path:
    model = run.load_model()
    check_label(model, options.label)
    images, values = latent.manifold(
        model, options.size, options.limit, options.dims, options.label
    )
    title = f"{describe(run)}: decoded latent grid"
    if (others := model.latent_dim - 2) > 0:
        first, second = options.dims
        title += f" over z[{first}] and z[{second}], the other {others} at 0"
    title = checked_title(run, model, title, options.data_dir)
    return plots.manifold(images, values, path, title, options.dims)


def interpolate(run: Run, path: Path, options: PlotOptions) -> Path:
    model = run.load_model()
    check_label(model, options.label)
    start, end = endpoints(run, model, options)
    points = latent.line(start, end, options.steps)
    steps = [f"step {i + 1}/{options.steps}" for i in range(options.steps)]
    if options.images is None:
        where = [f"z = {_point(z)}" for z in points.tolist()]
    else:
        first, last = options.images
        fractions = [i / (options.steps - 1) for i in range(options.steps)]
        where = [f"{t:.0%} from test #{first} to #{last}" for t in fractions]
    captions = list(zip(steps, where, strict=True))
    return gifs.walk(latent.decode(model, points, options.label), captions, path)


def _point(z: Sequence[float], shown: int = 4) -> str:
    values = ", ".join(f"{v:.2f}" for v in z[:shown])
    return f"[{values}, ...]" if len(z) > shown else f"[{values}]"


def endpoints(run: Run, model: Model, options: PlotOptions) -> tuple[Tensor, Tensor]:
    """The walk's ends: codes of two test images, or two latent points (the article's by
    default for a 2-D VAE)."""
    if options.images is not None:
        test = test_set(run, options.data_dir)
        for i in options.images:
            if not 0 <= i < len(test):
                raise VaelabError(f"test image {i} does not exist; choose 0..{len(test) - 1}")
        chosen = list(options.images)
        z = latent.codes(model, test.float()[chosen], labels_for(model, test.labels[chosen]))
        return z[0], z[1]
    latent.require_prior(
        model,
        "walk between latent points",
        "Walk between two test images instead (images; --images I J on the command line)",
    )
    if options.start is None and options.end is None and model.latent_dim == 2:
        return torch.tensor(ARTICLE_START), torch.tensor(ARTICLE_END)
    if options.start is None or options.end is None:
        raise SettingError(
            f"give both ends of the walk as {model.latent_dim} numbers each ({{start}}, "
            "{end}), or two test images ({images})",
            "start",
            "end",
            "images",
        )
    for point in (options.start, options.end):
        if len(point) != model.latent_dim:
            raise VaelabError(
                f"latent point {list(point)} has {len(point)} numbers; "
                f"this model's latent space has {model.latent_dim}"
            )
    return torch.tensor(options.start, dtype=torch.float32), torch.tensor(
        options.end, dtype=torch.float32
    )


def traverse(run: Run, path: Path, options: PlotOptions) -> Path:
    """Each latent dimension varied alone over [-limit, limit], the others held at the prior's
    mean or at a test image's code: a row per dimension, the `count` carrying the most KL
    first, each labelled with its KL and whether it is active (Burda et al. 2016)."""
    model = run.load_model()
    latent.require_prior(model, "latent traversal")
    check_label(model, options.label)
    test = None if run.config.data.dataset == NO_DATASET else test_set(run, options.data_dir)
    base, start = torch.zeros(model.latent_dim), "at 0, the prior's mean"
    if options.image is not None:  # a detector has no test set: test_set says so
        base = image_code(model, test if test is not None else test_set(run), options.image)
        start = f"at test image #{options.image}'s code"
    dims, rows, note = ranked_dimensions(model, test, options.count)
    images, values = latent.traversal(model, base, dims, options.size, options.limit, options.label)
    shown = "" if len(dims) == model.latent_dim else f" ({len(dims)} of {model.latent_dim})"
    title = f"{describe(run)}: each latent dimension{shown} varied alone, the rest {start}"
    return plots.traversal(images, values, rows, path, title + note)


def ranked_dimensions(
    model: Model, test: Dataset | None, count: int
) -> tuple[list[int], list[str], str]:
    """The `count` latent dimensions carrying the most KL over the test images, a row label
    for each and a title line saying how many are active; without test images, the first
    `count` and no line."""
    if test is None:
        dims = list(range(min(count, model.latent_dim)))
        return dims, [f"z[{d}]" for d in dims], ""
    chosen = test.first(min(USAGE_IMAGES, len(test)))
    used = latent_usage.usage(model, chosen.float(), labels_for(model, chosen.labels))
    dims = used.kl.argsort(descending=True, stable=True).tolist()[:count]
    rows = [
        f"z[{d}] {used.kl[d]:.2f} nats" + ("" if used.active[d] else ", inactive") for d in dims
    ]
    note = (
        f"\n{used.active_units} of {model.latent_dim} dimensions active (variance of the "
        f"posterior mean over {used.images:,} test images above {latent_usage.ACTIVE}); rows "
        "by KL, most first"
    )
    return dims, rows, note


def image_code(model: Model, test: Dataset, index: int) -> Tensor:
    """The code of test image `index`, named when it does not exist."""
    if not 0 <= index < len(test):
        raise SettingError(
            f"{{image}} {index}: there is no such test image; choose 0 to {len(test) - 1}",
            "image",
        )
    labels = labels_for(model, test.labels[index : index + 1])
    return latent.codes(model, test.float()[index : index + 1], labels)[0]


def loss(run: Run, path: Path, options: PlotOptions) -> Path:
    metrics = run.metrics()
    if not metrics:
        raise RunError(f"{run.path} has no finished epoch yet: nothing to plot")
    unit = loss_unit(run.config.model)
    return plots.loss_curves(metrics, path, f"{describe(run)}: loss per epoch", unit)


def samples(run: Run, path: Path, options: PlotOptions) -> Path:
    model = run.load_model()
    latent.require_prior(model, "set of samples")
    check_label(model, options.label)
    generator = torch.Generator().manual_seed(options.seed)
    with torch.inference_mode():
        n = options.size**2
        images = model.sample(n, generator, latent.conditioning(model, n, options.label))
    drawn = "" if options.label is None else f" of class {options.label}"
    title = f"{describe(run)}: {options.size**2} samples{drawn} from the prior"
    return plots.samples(images, path, checked_title(run, model, title, options.data_dir))


def anomaly_maps(run: Run, path: Path, options: PlotOptions) -> Path:
    """One test image per class through the model: input, reconstruction, per-pixel BCE and
    the image's score (recon-bce, nats)."""
    test = test_set(run, options.data_dir)
    images, labels = one_per_class(test, options.count)
    model = run.load_model()
    recons = torch.sigmoid(reconstruct(model, images))
    names = [test.class_names[label] for label in labels.tolist()]
    title = f"{describe(run)}: where reconstruction fails (score = recon-bce, nats)"
    title = checked_title(run, model, title, options.data_dir)
    return plots.anomaly_maps(
        images,
        recons,
        pixel_errors(model, images),
        recon_bce(model, images).tolist(),
        names,
        path,
        title,
    )


@dataclass(frozen=True)
class FigureKind:
    """A figure `plot` draws: its function, its default file name, and the `PlotOptions` it
    reads beyond `data_dir`; another one given is refused, since it would change nothing."""

    draw: Callable[[Run, Path, PlotOptions], Path]
    file: str
    reads: tuple[str, ...] = ()


KINDS: dict[str, FigureKind] = {
    "reconstructions": FigureKind(reconstructions, "reconstructions.png", ("count",)),
    "scatter": FigureKind(scatter, "scatter.png", ("limit",)),
    "manifold": FigureKind(manifold, "manifold.png", ("size", "limit", "dims", "label")),
    "interpolate": FigureKind(
        interpolate, "interpolation.gif", ("steps", "start", "end", "images", "label")
    ),
    "loss": FigureKind(loss, "loss.png"),
    "samples": FigureKind(samples, "samples.png", ("size", "seed", "label")),
    "traverse": FigureKind(traverse, "traversal.png", ("size", "limit", "image", "count", "label")),
}


def plot(
    run: Run | str | os.PathLike[str],
    kind: str,
    out: str | os.PathLike[str] | None = None,
    **options: object,
) -> Path:
    """Draw figure `kind` (see `KINDS`) for `run` into `out` (see `figure_path`); returns the
    file written. An option left None takes its `PlotOptions` default."""
    run = run if isinstance(run, Run) else Run(run)
    _ = run.config  # first: names a missing folder, or a file given as one, as such
    if kind not in KINDS:
        raise VaelabError(f"unknown figure {kind!r}; choose one of {', '.join(KINDS)}")
    known = {f.name for f in dataclasses.fields(PlotOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise VaelabError(f"unknown plot option {', '.join(unknown)}; known: {', '.join(known)}")
    given = {name: value for name, value in options.items() if value is not None}
    refuse_unread(kind, given)
    settings = PlotOptions(**given)  # type: ignore[arg-type]
    return KINDS[kind].draw(run, figure_path(run, kind, out), settings)


def refuse_unread(kind: str, given: dict[str, object]) -> None:
    """Refuse the options given that figure `kind` does not read, naming those it does."""
    reads = KINDS[kind].reads
    unread = [name for name in given if name not in (*reads, "data_dir")]
    if not unread:
        return
    read = listing([f"{{{name}}}" for name in reads]) or "no option"
    raise SettingError(
        f"the {kind} figure does not read {listing([f'{{{name}}}' for name in unread])} (it "
        f"reads {read}): leave {'it' if len(unread) == 1 else 'them'} out",
        *unread,
        *reads,
    )


def figure_path(run: Run, kind: str, out: str | os.PathLike[str] | None) -> Path:
    """Where `kind` goes: its default file name in RUN/figures/, else as
    `plots.figure_file` places it in `out`. So the path printed is always the file written."""
    name = KINDS[kind].file
    return run.figures / name if out is None else plots.figure_file(out, name, f"the {kind} figure")
