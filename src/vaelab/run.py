"""A run is a folder: config, weights, resumable checkpoint, metrics, figures.

    runs/vae/
      config.json            RunConfig: everything needed to rebuild the run
      weights.safetensors    the model's current weights
      checkpoint.safetensors weights + optimiser + RNG state, for --resume
      metrics.jsonl          one JSON line per finished epoch
      figures/

Everything is stored as JSON or safetensors: loading a run never unpickles.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from vaelab.config import RunConfig
from vaelab.errors import RunError, SettingError
from vaelab.jsonfiles import read_json_lines
from vaelab.models import Model, build

CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.jsonl"
FORMAT = 1  # of the safetensors files vaelab writes: raise it when their contents change


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, meta: dict[str, Any]) -> None:
    """Write a safetensors file atomically: a crash leaves the old file or the new, never half.

    The metadata records `FORMAT`, so a later vaelab that changes what it stores can
    tell old files apart, and this one can refuse files it does not understand.
    """
    tmp = path.with_name(path.name + ".tmp")
    contiguous = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    save_file(contiguous, str(tmp), metadata={"vaelab": json.dumps({**meta, "format": FORMAT})})
    os.replace(tmp, path)


def _mismatch(model: Model, tensors: dict[str, torch.Tensor]) -> str:
    """What differs between a model's tensors and a file's, in a few words."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in tensors.items()}
    missing, unexpected = expected.keys() - found.keys(), found.keys() - expected.keys()
    resized = sorted(n for n in expected.keys() & found.keys() if expected[n] != found[n])
    parts = []
    if missing or unexpected:
        parts.append(f"{len(missing)} tensors missing, {len(unexpected)} unexpected")
    if resized:
        name = resized[0]
        parts.append(f"{name} is {list(found[name])}, not {list(expected[name])}")
    return "; ".join(parts)


def refuse_a_run_folder(folder: str | os.PathLike[str], setting: str = "out") -> None:
    """Refuse to write into a folder that holds a run or a detector (its `config.json`),
    naming `setting`: an experiment's report, figures and results would mix with the run's
    own, and `vaelab report` writes there too."""
    if (Path(folder) / CONFIG).exists():
        raise SettingError(
            f"{{{setting}}} {folder} already holds a run or a detector; choose another "
            f"{{{setting}}} or delete it first",
            setting,
        )


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("vaelab", "{}"))
            names = f.keys()
            tensors = {key: f.get_tensor(key) for key in names}
    except FileNotFoundError:
        raise RunError(f"{path} not found: the run has no saved state yet") from None
    except (SafetensorError, ValueError, OSError) as err:
        raise RunError(f"{path} is damaged ({err}); train again into another folder") from None
    written_as = meta.pop("format", 1)  # files from before the field existed are format 1
    if not isinstance(written_as, int) or written_as > FORMAT:
        raise RunError(
            f"{path} was written by a newer vaelab (file format {written_as}; this one reads "
            f"format {FORMAT}); upgrade vaelab to load it"
        )
    return tensors, meta


class Run:
    """A handle on a run folder. Cheap to create; reads files when asked."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @classmethod
    def create(cls, path: str | os.PathLike[str], config: RunConfig) -> Run:
        run = cls(path)
        run.path.mkdir(parents=True, exist_ok=True)
        run.figures.mkdir(exist_ok=True)
        config.save(run.path / CONFIG)
        return run

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    @property
    def config(self) -> RunConfig:
        if not self.path.is_dir():
            what = "is a file, not a run folder" if self.path.exists() else "does not exist"
            raise RunError(f"run folder {self.path} {what}")
        config = RunConfig.load(self.path / CONFIG)
        if config.data.data_dir and not Path(config.data.data_dir).expanduser().is_dir():
            config.data.data_dir = None  # moved, or another machine's: look where data is found
        return config

    def load_model(self, device: str | torch.device = "cpu") -> Model:
        """The trained model, in eval mode."""
        config = self.config  # first, so a missing folder is named as such
        tensors, meta = load_tensors(self.path / WEIGHTS)
        shape = meta.get("shape", [meta.get("channels", 1), 28, 28])  # older files: channels
        model = build(config.model, shape=tuple(shape))
        if broken := [
            k for k, v in tensors.items() if v.is_floating_point() and not v.isfinite().all()
        ]:
            raise RunError(
                f"{self.path / WEIGHTS} holds weights that are not finite numbers (NaN or "
                f"infinity, in {broken[0]}): the file is damaged or its training diverged; "
                "train it again into another folder (with a lower learning rate if it diverged)"
            )
        try:
            model.load_state_dict(tensors)
        except RuntimeError:
            raise RunError(
                f"{self.path / WEIGHTS} holds the weights of another model than its "
                f"config.json describes ({config.model.name}, latent {config.model.latent_dim}: "
                f"{_mismatch(model, tensors)}); the run folder is damaged: train it again "
                "into another folder"
            ) from None
        return model.to(device).eval()

    def save_weights(self, model: Model, epoch: int) -> None:
        meta = {"epoch": epoch, "shape": list(model.shape)}
        save_tensors(model.state_dict(), self.path / WEIGHTS, meta)

    def metrics(self) -> list[dict[str, Any]]:
        """One dict per finished epoch, in order."""
        path = self.path / METRICS
        if not path.exists():
            return []
        return read_json_lines(path)

    def append_metrics(self, row: dict[str, Any]) -> None:
        with open(self.path / METRICS, "a") as f:
            f.write(json.dumps(row) + "\n")

    def truncate_metrics(self, epochs: int) -> None:
        """Forget metric lines past `epochs` (written after the last checkpoint)."""
        self.write_metrics([row for row in self.metrics() if row["epoch"] <= epochs])

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Replace the metrics with `rows`, one per epoch."""
        (self.path / METRICS).write_text("".join(json.dumps(r) + "\n" for r in rows))
