"""ONNX export of a trained run: its encoder, decoder and anomaly score, checked against PyTorch.

    card = export_run("runs/vae7", score="recon-mse")  # writes runs/vae7/onnx/
    check = check_export("runs/vae7")                   # onnxruntime against PyTorch
    check.max_abs_diff                                  # {"encoder": 1.6e-07, ...}

The folder holds `encoder.onnx`, `decoder.onnx`, `score.onnx` (for a detector saved by
`AnomalyDetector.save`, or a run given a score) and `card.json`, which says what each
graph takes and returns. Every graph takes any batch size.

The graphs are traced by `torch.export` under `torch.no_grad`, where the fast layers of
`vaelab.models.blocks` compute what they compute in PyTorch: `InputConv` is a plain
convolution (its custom backward is not traced), `Pool` rounds as the image size fixes
it, and each `UpConv` keeps its method. `check_export` measures the difference.

Needs the `onnx` extra: pip install 'vaelab[onnx]'.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vaelab import __version__
from vaelab.anomaly import (
    DETECTOR_FILE,
    anomaly_metrics,
    check_normal_classes,
    load_detector,
)
from vaelab.batching import CPU_ROWS as BATCH
from vaelab.data import Dataset
from vaelab.errors import NoTestSplitError, SettingError, VaelabError
from vaelab.jsonfiles import read_json
from vaelab.models import Model
from vaelab.run import Run
from vaelab.scores import SCORES, require_posterior

OPSET = 18
"""The ONNX operator set written: read by onnxruntime 1.14 and later."""
CARD = "card.json"
CARD_FORMAT = 1  # raise it when the card's fields change meaning
FOLDER = "onnx"
EXTRA = ("onnx", "onnxruntime", "onnxscript")
INSTALL = "pip install 'vaelab[onnx]'"
IMAGES_MEANING = "images (N, C, H, W), float32 in [0, 1]: uint8 pixels divided by 255"


@dataclass(frozen=True)
class Graph:
    """One exported graph: its input, its outputs with what they mean, and the PyTorch
    function of one batch that it is traced from."""

    name: str
    input: str
    input_meaning: str
    outputs: dict[str, str]
    function: Callable[[Tensor], tuple[Tensor, ...]]

    @property
    def file(self) -> str:
        return f"{self.name}.onnx"


@dataclass(frozen=True)
class Exportable:
    """What a run folder exports: its model and, with a score, the score's threshold (a
    detector's) and the share of the held-out normal images that score above it."""

    run: Run
    model: Model
    score: str | None = None
    threshold: float | None = None
    fpr: float | None = None

    @property
    def is_detector(self) -> bool:
        return self.threshold is not None


@dataclass
class Check:
    """How the exported graphs compare with PyTorch on the same test images.

    `auroc` is (PyTorch's, ONNX's) when the normal classes are known; `decisions_differ`
    counts the images that the two scores put on opposite sides of a detector's threshold.
    """

    dataset: str
    images: int
    max_abs_diff: dict[str, float]
    normal: list[int] | None = None
    auroc: tuple[float, float] | None = None
    decisions_differ: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def require_onnx() -> None:
    """Fail before any work, in one line, when the optional ONNX packages are missing."""
    for module in EXTRA:
        try:
            importlib.import_module(module)
        except ImportError:
            raise VaelabError(
                f"ONNX export needs the package {module}, which is not installed: {INSTALL}"
            ) from None


def exportable_scores() -> list[str]:
    """The registered scores that are one fixed function of the image."""
    return [name for name, entry in SCORES.items() if entry.per_batch is not None]


def open_run(run_dir: str | os.PathLike[str], score: str | None = None) -> Exportable:
    """The run's model, and for a detector its score and threshold.

    A detector's threshold holds for its own score only, so another `score` is refused."""
    run = Run(run_dir)
    if not (run.path / DETECTOR_FILE).exists():
        return Exportable(run, _exportable(run.load_model()), score)
    detector = load_detector(run.path, score)
    model = _exportable(detector.model_)
    return Exportable(
        run, model, detector.score_name(), detector.threshold_, detector.held_out_flagged_
    )


def _exportable(model: Model) -> Model:
    """`model` as its graphs compute it (`Model.for_export`), unless they would need labels
    or a loop over the pixels."""
    if model.capabilities.conditional:
        raise VaelabError(
            f"{model.describe()} is conditional (its encoder and decoder take each image's "
            "label); ONNX export takes unconditional models, e.g. vae or resnet-vae"
        )
    if model.capabilities.autoregressive:
        raise VaelabError(
            f"{model.describe()} decodes one pixel at a time (an autoregressive likelihood); "
            "ONNX export takes decoders that draw the whole image at once, e.g. vae or resnet-vae"
        )
    return model.for_export()


def graphs(model: Model, score: str | None = None) -> list[Graph]:
    """The encoder and decoder of `model`, and the graph of `score` if one is given."""
    found = [encoder_graph(model), decoder_graph(model)]
    if score is not None:
        found.append(score_graph(model, score))
    return found


def encoder_graph(model: Model) -> Graph:
    if model.capabilities.posterior:
        outputs = {
            "z_mean": "mean of q(z|x): the code that figures and scores use",
            "z_log_var": "log-variance of q(z|x); z = z_mean + exp(z_log_var / 2) * noise",
        }
        return Graph("encoder", "images", IMAGES_MEANING, outputs, model.posterior)
    outputs = {"code": "the autoencoder's code, flattened"}
    return Graph("encoder", "images", IMAGES_MEANING, outputs, lambda x: (model.encode(x),))


def decoder_graph(model: Model) -> Graph:
    def decode(z: Tensor) -> tuple[Tensor, Tensor]:
        logits = model.decode(z)
        return logits, torch.sigmoid(logits)

    source = "z_mean, or draws of N(0, I)" if model.capabilities.posterior else "code"
    outputs = {
        "logits": "pixel logits (N, C, H, W)",
        "pixels": "the decoded images: the logits' sigmoid, in [0, 1]",
    }
    meaning = f"latent codes (N, latent_dim): the encoder's {source}"
    return Graph("decoder", "z", meaning, outputs, decode)


def score_graph(model: Model, name: str) -> Graph:
    """The anomaly score `name` of each image, refused unless it is one fixed function of it."""
    per_batch = _per_batch(model, name)
    meaning = f"{name}, {SCORES[name].summary}, per image; higher = more anomalous"
    outputs = {"score": meaning}
    return Graph("score", "images", IMAGES_MEANING, outputs, lambda x: (per_batch(model, x),))


def _per_batch(model: Model, name: str) -> Callable[[Model, Tensor], Tensor]:
    exportable = ", ".join(exportable_scores())
    if name not in SCORES:
        raise SettingError(
            f"unknown {{score}} {name!r}; the exportable scores are {exportable}", "score"
        )
    entry = SCORES[name]
    if entry.per_batch is None:
        why = "gives no function of one batch (Score.per_batch)"
        if entry.sampled:
            why = "draws posterior samples, so it is no fixed function of the image"
        raise VaelabError(
            f"score {name!r} {why}, and cannot be exported to ONNX; the exportable scores "
            f"are {exportable}"
        )
    if entry.needs_posterior:
        require_posterior(model, name)
    return entry.per_batch


class _Traced(nn.Module):
    """A graph's function as the module `torch.onnx.export` takes; holding the model makes
    its weights the graph's initialisers."""

    def __init__(self, model: Model, function: Callable[[Tensor], tuple[Tensor, ...]]) -> None:
        super().__init__()
        self.model = model
        self.function = function

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return self.function(x)


def export_run(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    score: str | None = None,
    opset: int = OPSET,
) -> dict[str, Any]:
    """Write the run's graphs and `card.json` into `out` (default RUN/onnx); return the card.

    A detector exports its own score and threshold; for another run, `score` adds the
    score's graph (without a threshold). `opset` is the ONNX operator set to write.
    """
    require_onnx()
    source = open_run(run_dir, score)
    found = graphs(source.model, source.score)  # refuses a score that cannot be exported
    folder = Path(out) if out is not None else source.run.path / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    entries = {graph.name: _export(graph, source.model, folder, opset) for graph in found}
    if source.score is None:  # a score graph from an earlier export would contradict the card
        (folder / "score.onnx").unlink(missing_ok=True)
    card = _card(source, entries)
    (folder / CARD).write_text(json.dumps(card, indent=2) + "\n")
    return card


def _example(graph: Graph, model: Model) -> Tensor:
    """An input to trace with: two images or codes, so that the batch size stays a variable."""
    if graph.input == "images":
        return torch.full((2, *model.shape), 0.5)
    return torch.zeros(2, model.latent_dim)


def _export(graph: Graph, model: Model, folder: Path, opset: int) -> dict[str, Any]:
    import onnx

    example = _example(graph, model)
    path = folder / graph.file
    try:
        with torch.no_grad(), _quiet_exporter():
            torch.onnx.export(
                _Traced(model, graph.function).eval(), (example,), path, dynamo=True,
                input_names=[graph.input], output_names=list(graph.outputs),
                dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=opset,
                external_data=False, verbose=False,
            )  # fmt: skip
    except torch.onnx.OnnxExporterError as err:
        cause = str(err.__cause__ or err).strip().splitlines()[0]
        raise VaelabError(
            f"cannot export the {graph.name} of {model.describe()} to ONNX: {cause}"
        ) from None
    onnx.checker.check_model(str(path))
    with torch.no_grad():
        outputs = graph.function(example)
    return {
        "file": graph.file,
        "opset": _opset(onnx.load(str(path))),
        "input": _tensor_entry(graph.input, example, graph.input_meaning),
        "outputs": [
            _tensor_entry(name, value, meaning)
            for (name, meaning), value in zip(graph.outputs.items(), outputs, strict=True)
        ],
    }


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Keep the exporter's own notices off the terminal: it logs the optional packages
    it skips (torchvision) and warns of its internal deprecations, none about the model."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logger.setLevel(level)


def _opset(proto: Any) -> int:
    return next(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))


def _tensor_entry(name: str, value: Tensor, meaning: str) -> dict[str, Any]:
    return {
        "name": name,
        "shape": ["batch", *value.shape[1:]],
        "dtype": str(value.dtype).removeprefix("torch."),
        "meaning": meaning,
    }


def _card(source: Exportable, entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    model, config = source.model, source.run.config
    return {
        "format": CARD_FORMAT,
        "written_by": f"vaelab {__version__}, torch {torch.__version__}",
        "run": str(source.run.path),
        "model": model.describe(),
        "latent_dim": model.latent_dim,
        "opset": min(entry["opset"] for entry in entries.values()),
        "images": {
            "shape": ["batch", *model.shape],
            "dtype": "float32",
            "range": [0.0, 1.0],
            "trained_on": None if source.is_detector else config.data.dataset,
        },
        "graphs": entries,
        "score": _score_entry(source),
    }


def _score_entry(source: Exportable) -> dict[str, Any] | None:
    if source.score is None:
        return None
    entry: dict[str, Any] = {
        "name": source.score,
        "meaning": f"{SCORES[source.score].summary}; higher = more anomalous",
        "threshold": source.threshold,
    }
    if source.threshold is not None:
        entry["decision"] = "an image is an anomaly where its score exceeds the threshold"
        entry["threshold_fpr"] = source.fpr
    return entry


def read_card(folder: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(folder) / CARD
    try:
        card = read_json(path, "export the run again")
    except FileNotFoundError:
        raise VaelabError(f"{path} not found: export the run first (vaelab export RUN)") from None
    if not isinstance(card.get("format"), int) or card["format"] > CARD_FORMAT:
        raise VaelabError(f"{path} was written by a newer vaelab; upgrade vaelab to read it")
    return card


def test_set(
    run_dir: str | os.PathLike[str],
    dataset: str | None = None,
    data_dir: str | None = None,
    *,
    normal: Sequence[int] | None = None,
    score: str | None = None,
) -> Dataset:
    """The test split to check a run's export on: of the run's dataset, or of `dataset`
    (which a detector, fitted on arrays or files, must be given). `normal` classes, for
    the AUROC check of the score graph (`score`, or a detector's own), are checked
    against it, so that a mistake is refused before anything is exported."""
    from vaelab.data import load

    source = open_run(run_dir, score)
    config = source.run.config
    if dataset is None and source.is_detector:
        raise SettingError(
            f"{source.run.path} is a detector fitted on arrays or image files, so it names no "
            "test set: give one with {dataset} (e.g. mnist, or a folder of class subfolders)",
            "dataset",
        )
    name = dataset if dataset is not None else config.data.dataset
    try:
        test = load(name, "test", data_dir or config.data.data_dir, config.data.image_size)
    except NoTestSplitError:
        raise SettingError(
            f"{name} has no test split to check the export on: give a dataset with one with "
            "{dataset}, or unlabelled image files and folders with {images}",
            "dataset",
            "images",
        ) from None
    if tuple(test.images.shape[1:]) != tuple(source.model.shape):
        raise VaelabError(
            f"the test images of {name} are {tuple(test.images.shape[1:])} (C, H, W) but "
            f"{source.model.describe()} takes {tuple(source.model.shape)}"
        )
    if normal:
        _check_normal(normal, source.score, sorted(set(test.labels.tolist())), name)
    return test


def check_export(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    test: Dataset | None = None,
    normal: Sequence[int] | None = None,
) -> Check:
    """Run the exported graphs with onnxruntime and the run's model with PyTorch on every
    image of `test` (default: `test_set(run_dir)`), and record the result in the card.

    The decoder is given the codes PyTorch's encoder makes of those images. With normal
    classes (`normal`, else the run's), the score's AUROC is measured both ways.
    """
    require_onnx()
    source = open_run(run_dir)
    folder = Path(out) if out is not None else source.run.path / FOLDER
    card = read_card(folder)
    score = (card.get("score") or {}).get("name")
    if test is None:
        test = test_set(run_dir, normal=normal, score=score)
    elif normal:
        _check_normal(normal, score, sorted(set(test.labels.tolist())), test.name)
    images = test.float()
    outputs = _compare(graphs(source.model, score), folder, images)
    differences = {name: _max_abs_diff(*pair) for name, pair in outputs.items()}
    check = Check(test.name, len(images), differences)
    if score is not None:
        _check_score(check, source, test.labels.numpy(), outputs["score"], normal)
    card["check"] = check.to_dict()
    (folder / CARD).write_text(json.dumps(card, indent=2) + "\n")
    return check


Outputs = tuple[list[np.ndarray], list[np.ndarray]]
"""A graph's outputs computed by PyTorch and by onnxruntime, in the graph's order."""


def _compare(found: list[Graph], folder: Path, images: Tensor) -> dict[str, Outputs]:
    """Every graph's outputs both ways; the decoder decodes PyTorch's codes of the images."""
    results: dict[str, Outputs] = {}
    for graph in found:
        x = images if graph.input == "images" else torch.from_numpy(results["encoder"][0][0])
        results[graph.name] = (_in_torch(graph, x), _in_onnxruntime(folder / graph.file, x))
    return results


@torch.inference_mode()
def _in_torch(graph: Graph, x: Tensor) -> list[np.ndarray]:
    parts = [graph.function(x[i : i + BATCH]) for i in range(0, len(x), BATCH)]
    return [torch.cat(outputs).numpy() for outputs in zip(*parts, strict=True)]


def _in_onnxruntime(path: Path, x: Tensor) -> list[np.ndarray]:
    import onnxruntime

    if not path.exists():
        raise VaelabError(f"{path} not found: export the run again")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    array = x.numpy()
    parts = [session.run(None, {name: array[i : i + BATCH]}) for i in range(0, len(x), BATCH)]
    return [np.concatenate(outputs) for outputs in zip(*parts, strict=True)]


def _max_abs_diff(in_torch: list[np.ndarray], in_onnx: list[np.ndarray]) -> float:
    return max(float(np.abs(a - b).max()) for a, b in zip(in_torch, in_onnx, strict=True))


def image_files_set(
    run_dir: str | os.PathLike[str],
    paths: Sequence[str | os.PathLike[str]],
    *,
    normal: Sequence[int] | None = None,
) -> Dataset:
    """Unlabelled images to check an export on (files, and every image under folders), read
    at the run's image size and channels: a detector fitted on a user's files has no test
    set, but more of those files. Without labels there is no AUROC to compare, so `normal`
    is refused; the decisions at a detector's threshold are still compared."""
    from vaelab.data import Dataset, read_images_as

    if normal:
        raise SettingError(
            "{normal} needs labelled test images ({dataset}); image files carry no labels",
            "normal",
            "dataset",
        )
    images, _ = read_images_as(paths, open_run(run_dir).model.shape)
    unlabelled = torch.full((len(images),), -1, dtype=torch.int64)
    return Dataset(images, unlabelled, ", ".join(map(str, paths)), [])


def _check_normal(normal: Sequence[int], score: str | None, classes: list[int], name: str) -> None:
    """Refuse normal classes that leave the AUROC check with nothing to measure, before
    any graph runs."""
    if score is None:
        raise SettingError(
            "{normal} names the classes of the score's AUROC check, but the export has no "
            "score graph: add {score} NAME or leave {normal} out",
            "normal",
            "score",
        )
    check_normal_classes(normal, classes, name)


def _check_score(
    check: Check,
    source: Exportable,
    labels: np.ndarray,
    outputs: Outputs,
    normal: Sequence[int] | None,
) -> None:
    """The AUROC both ways (when the normal classes are known and the test set has others)
    and the decisions at a detector's threshold."""
    (in_torch,), (in_onnx,) = outputs
    chosen = list(normal or source.run.config.data.classes or [])
    is_anomaly = ~np.isin(labels, chosen)
    if chosen and is_anomaly.any() and not is_anomaly.all():
        check.normal = sorted(chosen)
        check.auroc = (
            anomaly_metrics(is_anomaly, in_torch)["auroc"],
            anomaly_metrics(is_anomaly, in_onnx)["auroc"],
        )
    if source.threshold is not None:
        flagged = (in_torch > source.threshold) != (in_onnx > source.threshold)
        check.decisions_differ = int(flagged.sum())
