"""The one-class anomaly benchmark (Ruff et al. 2018, Deep SVDD protocol).

For each class c: train only on the training images of c, then score the
whole test set with c normal and every other class anomalous; report AUROC
per class, averaged over seeds, beside the published results kept in
`vaelab/published/oneclass.json`.

Each (class, seed) is a run folder under `OUT/runs/`, trained by
`vaelab.train.fit`; its `result-SCORE.json` is written once it is scored, so
a second call skips it, an interrupted one resumes from its checkpoint, and
another score reuses the trained models.

    results = run_oneclass(OneClassConfig(classes=[3], seeds=1), "bench/mnist")
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean, pstdev
from typing import TYPE_CHECKING, Any

from vaelab.config import DataConfig, ModelConfig, RunConfig, TrainConfig, check_types
from vaelab.errors import SettingError
from vaelab.jsonfiles import REDO, read_json
from vaelab.recipes import RECIPES, default_recipe, get_recipe
from vaelab.wording import count

if TYPE_CHECKING:
    from vaelab.executors import Executor

PUBLISHED = Path(__file__).with_name("published") / "oneclass.json"


@dataclass
class OneClassConfig:
    """Benchmark settings. The detector (`model`, `train`, `score`, `samples`) is the
    dataset's recipe (`vaelab.recipes.default_recipe`) where not given (`from_recipe` takes
    another; `vaelab.recipes` says how each was chosen); `train.seed` is replaced by each
    run's seed (0 to `seeds` - 1) and `train.threads` by each job's share of the cores
    (`vaelab.executors`)."""

    dataset: str = "mnist"
    classes: list[int] = field(default_factory=lambda: list(range(10)))
    seeds: int = 3
    model: ModelConfig = None  # type: ignore[assignment]
    train: TrainConfig = None  # type: ignore[assignment]
    score: str = None  # type: ignore[assignment]
    samples: int = None  # type: ignore[assignment]
    train_size: int | None = None
    data_dir: str | None = None

    def __post_init__(self) -> None:
        recipe = get_recipe(default_recipe(self.dataset))
        for part in ("model", "train", "score", "samples"):
            if getattr(self, part) is None:
                setattr(self, part, getattr(recipe, part))

    @classmethod
    def from_recipe(cls, name: str, **settings: Any) -> OneClassConfig:
        """The benchmark of the recipe `name`; `settings` are the other fields, or replace
        the recipe's."""
        recipe = get_recipe(name)
        detector = {"model": recipe.model, "train": recipe.train, "score": recipe.score}
        return cls(**{**detector, "samples": recipe.samples, **settings})

    def recipe(self) -> str | None:
        """The name of the registered recipe these settings are, or None if they are no
        recipe's (the seed, device and thread count aside)."""
        for name in RECIPES:
            if self.detector() == OneClassConfig.from_recipe(name).detector():
                return name
        return None

    def detector(self) -> dict[str, Any]:
        """The settings that make the detector: model, training and score."""
        protocol = self.protocol()
        score = {"score": self.score, "samples": self.samples if self._sampled() else None}
        return {"model": protocol["model"], "train": protocol["train"], **score}

    def _sampled(self) -> bool:
        return self.score in ("elbo", "iwae")

    def run_config(self, normal: int, seed: int, threads: int | None = None) -> RunConfig:
        """The `RunConfig` of one (class, seed) training, on `threads` torch threads (a job's
        share of the cores; None lets the run choose)."""
        return RunConfig(
            DataConfig(self.dataset, self.data_dir, [normal], self.train_size),
            self.model.resolved(),
            dataclasses.replace(self.train, seed=seed, threads=threads),
        )

    def check(self) -> None:
        """Refuse settings that would stop the benchmark part-way, before any class trains:
        every class needs training and test images, enough for `train_size`, and the model
        must be able to give the score (one test image is scored by an untrained model)."""
        from vaelab.anomaly import compute_score
        from vaelab.data import load
        from vaelab.devices import resolve_device
        from vaelab.likelihood import check_positive_count
        from vaelab.models import build
        from vaelab.train import check_training

        check_types(self)
        for name in ("seeds", "train_size"):
            if getattr(self, name) is not None:
                check_positive_count(getattr(self, name), name)
        check_training(self.train)
        resolve_device(self.train.device)
        train = load(self.dataset, "train", self.data_dir)
        test = load(self.dataset, "test", self.data_dir)
        for normal in self.classes:
            test.with_classes([normal])
            available = len(train.with_classes([normal]))
            if self.train_size is not None and self.train_size > available:
                raise SettingError(
                    f"{{train_size}} {self.train_size} is more than the {available:,} training "
                    f"images of class {normal} in {self.dataset}; lower {{train_size}}",
                    "train_size",
                )
        model = build(self.model, tuple(train.images.shape[1:]))
        one = test.with_classes([self.classes[0]])
        compute_score(model.eval(), one.float()[:1], self.score, self.samples)

    def protocol(self) -> dict[str, Any]:
        """The settings that change the trained models (not the data's folder, the score,
        the seeds' count or the device)."""
        settings = dataclasses.asdict(self)
        for name in ("data_dir", "classes", "seeds", "score", "samples"):
            settings.pop(name)
        settings["model"] = self.model.resolved().to_dict()
        settings["train"] = self.train.protocol()
        return settings

    def result_file(self) -> str:
        samples = f"-k{self.samples}" if self._sampled() else ""
        return f"result-{self.score}{samples}.json"


def task_dir(out: Path, normal: int, seed: int) -> Path:
    return out / "runs" / f"class{normal}-seed{seed}"


def run_task(
    config: OneClassConfig,
    normal: int,
    seed: int,
    out: str,
    *,
    threads: int,
    modules: list[str],
) -> dict:
    """Train on class `normal` with `seed` (or resume), score the test set, store the result.

    `modules` are imported first: in a spawned worker they make the user's registrations."""

    from vaelab.anomaly import anomaly_metrics, compute_score
    from vaelab.data import load
    from vaelab.diagnostics import recorded_spread
    from vaelab.plugins import import_registered
    from vaelab.run import CHECKPOINT
    from vaelab.train import fit

    import_registered(modules)
    folder = task_dir(Path(out), normal, seed)
    result_path = folder / config.result_file()
    if result_path.exists():
        return read_json(result_path, REDO)
    started = time.perf_counter()
    run = fit(
        config.run_config(normal, seed, threads),
        folder,
        resume=(folder / CHECKPOINT).exists(),
        progress=False,
    )
    trained = time.perf_counter()
    test = load(config.dataset, "test", config.data_dir)
    model = run.load_model()
    values = compute_score(model, test.float(), config.score, config.samples, seed).numpy()
    result = {
        "class": normal,
        "seed": seed,
        **anomaly_metrics(test.labels.numpy() != normal, values),
        "reconstruction_spread": recorded_spread(model, test.with_classes([normal]).float()),
        "train_seconds": round(trained - started, 2),
        "score_seconds": round(time.perf_counter() - trained, 2),
    }
    result_path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def run_oneclass(
    config: OneClassConfig,
    out: str | os.PathLike[str],
    *,
    jobs: int = 1,
    executor: str | Executor = "local",
    ray_address: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or finish) the benchmark into `out`; returns what `results.json` holds.

    Up to `jobs` trainings run at once on a machine, each with `cores // jobs`
    torch threads. `executor` says where: "local" (this machine; spawned processes
    for two or more jobs) or "ray" (the Ray cluster at `ray_address`, which must
    reach `out` too), or an `Executor`; see `vaelab.executors`.
    """
    from vaelab.devices import resolve_device
    from vaelab.diagnostics import warn_of_untrained
    from vaelab.executors import claim_settings, get_executor, run_with_progress

    runner = get_executor(executor, ray_address)
    out = Path(out)
    config.check()
    claim_settings(out, config.protocol())
    calls = [(config, c, seed, str(out)) for c in config.classes for seed in range(config.seeds)]
    gpu = resolve_device(config.train.device).type == "cuda"
    started = time.perf_counter()
    done = run_with_progress(
        runner, run_task, calls, jobs=jobs, gpu=gpu, desc="one-class", progress=progress,
        describe=lambda r: f"class {r['class']} seed {r['seed']}: {r['auroc']:.3f}",
    )  # fmt: skip
    results = summarize(config, done, time.perf_counter() - started, jobs, runner.name)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    warn_of_untrained(
        [f"class {r['class']} seed {r['seed']}" for r in results["untrained_runs"]],
        "run",
        out,
        images="normal test image",
        consequence="their AUROC measures distance from one average picture, not what the "
        "model learned",
    )
    rows = [vaelab_row(results), *published_rows(config.dataset)]
    (out / "table.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "table.md").write_text(markdown_table(rows, config.classes) + "\n")
    return results


def summarize(
    config: OneClassConfig, done: list[dict], seconds: float, jobs: int, executor: str
) -> dict:
    """Per-class AUROC averaged over seeds, the mean over classes, and the spread over seeds."""
    per_class = {
        c: [r["auroc"] for r in done if r["class"] == c] for c in sorted({r["class"] for r in done})
    }
    seed_means = [
        fmean(r["auroc"] for r in done if r["seed"] == seed) for seed in range(config.seeds)
    ]
    return {
        "settings": {
            **dataclasses.asdict(config),
            "model": config.model.resolved().to_dict(),
            "recipe": config.recipe(),
            "jobs": jobs,
            "executor": executor,
        },
        "per_class_auroc": {str(c): fmean(v) for c, v in per_class.items()},
        "per_class_std": {str(c): pstdev(v) for c, v in per_class.items()},
        "mean_auroc": fmean(fmean(v) for v in per_class.values()),
        "mean_auroc_std_over_seeds": pstdev(seed_means),
        "untrained_runs": untrained_runs(done),
        "runs": sorted(done, key=lambda r: (r["class"], r["seed"])),
        "wall_seconds": round(seconds, 1),
        "train_seconds": round(sum(r["train_seconds"] for r in done), 1),
    }


def untrained_runs(done: list[dict]) -> list[dict[str, int]]:
    """The (class, seed) runs whose model reconstructs every normal test image nearly alike
    (`vaelab.diagnostics`): their AUROC measures distance from one average picture. Results
    written before the check have no spread and are not listed."""
    from vaelab.diagnostics import is_untrained

    return [
        {"class": r["class"], "seed": r["seed"]}
        for r in sorted(done, key=lambda r: (r["class"], r["seed"]))
        if is_untrained(r.get("reconstruction_spread"))
    ]


def vaelab_row(results: dict, name: str | None = None) -> dict[str, Any]:
    """A table row (AUROC in %) from `results.json`."""
    from vaelab.diagnostics import untrained_note

    s = results["settings"]
    model, schedule = s["model"], count(s["train"]["epochs"], "epoch")
    if s["train"].get("precision", "fp32") != "fp32":
        schedule += f" in {s['train']['precision']}"
    label = f"vaelab {model['name']} (latent {model['latent_dim']}, {schedule}, {s['score']})"
    if s.get("recipe"):
        label = f"vaelab {s['recipe']}: {label[len('vaelab ') :]}"
    citation = f"measured: {len(s['classes'])} classes x {s['seeds']} seeds"
    if untrained := results.get("untrained_runs"):
        citation += f", {untrained_note(len(untrained))}"
    return {
        "method": name or label,
        "citation": citation,
        "auroc": {c: round(100 * v, 1) for c, v in results["per_class_auroc"].items()},
        "mean": round(100 * results["mean_auroc"], 1),
    }


def published_rows(dataset: str) -> list[dict[str, Any]]:
    """The published one-class AUROC rows (%) for `dataset`, with their citations; rows whose
    source could not be checked say so (`unverified`)."""
    table = json.loads(PUBLISHED.read_text())
    return [
        {
            "method": row["method"],
            "citation": row["citation"],
            "auroc": row["auroc"][dataset],
            "mean": row["mean"][dataset],
            "unverified": row.get("notes", "").startswith("UNVERIFIED"),
        }
        for row in table["rows"]
        if dataset in row["auroc"]
    ]


def markdown_table(rows: list[dict[str, Any]], classes: list[int]) -> str:
    """AUROC (%) per class and mean, one row per method."""
    classes = sorted(classes)
    header = ["method", *map(str, classes), "mean"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["auroc"].get(str(c)) for c in classes]
        text = ["" if v is None else f"{v:.1f}" for v in cells]
        lines.append(f"| {row['method']} | " + " | ".join(text) + f" | {row['mean']:.1f} |")
    return "\n".join(lines)
