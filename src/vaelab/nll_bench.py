"""`vaelab bench nll`: a model's test -log p(x) on MNIST under the log-likelihood protocol,
beside the published rows kept, with their citations, in `vaelab/published/nll.json`.

The protocol is the IWAE paper's: dynamically binarised MNIST (60,000 training images
re-drawn as bits every time they are used, 10,000 test images binarised once with a fixed
seed) and the K = 5000 importance-weighted estimate.

    out/
      settings.json                the protocol (a rerun must match it)
      runs/seed<k>/                a run folder per seed, trained by `vaelab.train.fit`
      runs/seed<k>/nll-k<K>.json   its estimate, budget, curve over K and reconstruction spread
      results.json, table.md       every seed, their mean, and the table
      figure-<model>.png           samples from the prior and the estimate against K

A seed whose estimate is written is neither retrained nor estimated again; an interrupted
one resumes from its checkpoint, and another K reuses the trained runs.

A seed whose model reconstructs every test image nearly alike (`vaelab.diagnostics`: a run
too short to learn) is listed in `untrained_runs`, warned of and noted in the table, since
its estimate would otherwise sit beside the published rows as if it measured the model.

    results = run_nll(NllConfig(train=TrainConfig(epochs=20)), "bench/nll")
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean, stdev
from typing import TYPE_CHECKING, Any

from vaelab.config import DataConfig, ModelConfig, RunConfig, TrainConfig, check_types
from vaelab.errors import SettingError
from vaelab.jsonfiles import REDO, read_json
from vaelab.wording import count

if TYPE_CHECKING:
    from vaelab.executors import Executor

PUBLISHED = Path(__file__).with_name("published") / "nll.json"
DATASETS = ("mnist", "mnist-sample")
CURVE_KS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
CURVE_IMAGES = 4
PRIOR_SAMPLES = 64


@dataclass
class NllConfig:
    """Benchmark settings: the IWAE paper's one-stochastic-layer MLP trained on the ELBO for
    `train.epochs` epochs of Adam (vaelab's defaults: batch 128, lr 1e-3), far fewer than the
    paper's 3,280 passes. `train.seed` is replaced by each run's seed (0 to `seeds` - 1)
    and `train.threads` by each job's share of the cores;
    `test_images` and `train_size` shorten a trial run, `batch` only sets the memory."""

    model: ModelConfig = field(default_factory=lambda: ModelConfig("mlp-vae-iwae"))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=20))
    iw_samples: int = 5000
    seeds: int = 1
    dataset: str = "mnist"
    train_size: int | None = None
    test_images: int | None = None
    batch: int | None = None
    data_dir: str | None = None

    def run_config(self, seed: int, threads: int | None = None) -> RunConfig:
        """The `RunConfig` of one seed's training, on `threads` torch threads (a job's share
        of the cores; None lets the run choose)."""
        data = DataConfig(self.dataset, self.data_dir, train_size=self.train_size,
                          binarize="dynamic")  # fmt: skip
        schedule = dataclasses.replace(self.train, seed=seed, threads=threads)
        return RunConfig(data, self.model.resolved(), schedule)

    def check(self) -> None:
        """Refuse settings that cannot give an estimate, before anything trains."""
        from vaelab.devices import resolve_device
        from vaelab.likelihood import check_positive_count, check_samples
        from vaelab.models import build
        from vaelab.train import check_training

        check_types(self)
        check_samples(self.iw_samples, "iw_samples")
        for name in ("seeds", "test_images", "train_size", "batch"):
            if getattr(self, name) is not None:
                check_positive_count(getattr(self, name), name)
        check_training(self.train)
        if self.dataset not in DATASETS:
            raise SettingError(
                f"{{dataset}} must be one of {', '.join(DATASETS)} (the protocol is "
                f"MNIST's), got {self.dataset!r}",
                "dataset",
            )
        resolve_device(self.train.device)
        model = build(self.model)
        if not model.capabilities.posterior or model.capabilities.conditional:
            raise SettingError(
                f"{{model}} {self.model.name} has no q(z|x) to sample -log p(x) from, or "
                "needs labels: choose an unconditional VAE such as mlp-vae-iwae",
                "model",
            )

    def protocol(self) -> dict[str, Any]:
        """The settings every result in one folder shares (not the data's folder, the seeds'
        count, the memory per pass, the device or the threads)."""
        settings = dataclasses.asdict(self)
        for name in ("data_dir", "seeds", "batch"):
            settings.pop(name)
        settings["model"] = self.model.resolved().to_dict()
        settings["train"] = self.train.protocol()
        return settings

    def curve_ks(self) -> list[int]:
        """The K of the figure's curves: the standard steps up to `iw_samples`, and it."""
        return [k for k in CURVE_KS if k < self.iw_samples] + [self.iw_samples]


def run_seed(
    config: NllConfig, seed: int, out: str, *, threads: int, modules: list[str]
) -> dict[str, Any]:
    """Train one seed (or resume it) on `threads` torch threads, estimate its test -log p(x)
    with as many, check that its model learned (`recorded_spread`), store the result."""
    from vaelab.diagnostics import CHECKED_IMAGES, recorded_spread
    from vaelab.likelihood import estimate_nll, evaluation_set, nll_curve
    from vaelab.plugins import import_registered
    from vaelab.run import CHECKPOINT
    from vaelab.train import fit

    import_registered(modules)
    folder = Path(out) / "runs" / f"seed{seed}"
    done = folder / f"nll-k{config.iw_samples}.json"
    if done.exists():
        return read_json(done, REDO)
    run = fit(config.run_config(seed, threads), folder, resume=(folder / CHECKPOINT).exists(),
              progress=False)  # fmt: skip
    estimate = estimate_nll(run, config.iw_samples, batch=config.batch, seed=seed,
                            data_dir=config.data_dir, test_images=config.test_images,
                            threads=threads)  # fmt: skip
    checked = evaluation_set(run, config.data_dir, CHECKED_IMAGES).float()
    model = run.load_model()
    curve = nll_curve(model, checked[:CURVE_IMAGES], config.curve_ks(), seed, config.batch)
    metrics = run.metrics()
    result = {
        "seed": seed,
        "nll": estimate["mean"],
        "sem": estimate["sem"],
        "K": estimate["K"],
        "images": estimate["images"],
        "eval_seconds": estimate["seconds"],
        "epochs": len(metrics),
        "train_seconds": round(sum(m["seconds"] for m in metrics), 1),
        "final_val_loss": metrics[-1].get("val_loss"),
        "curve": {"ks": config.curve_ks(), "nll": curve.tolist()},
        "reconstruction_spread": recorded_spread(model, checked),
        "active_units": estimate["active_units"],
    }
    done.write_text(json.dumps(result, indent=2) + "\n")
    return result


def run_nll(
    config: NllConfig,
    out: str | os.PathLike[str],
    *,
    jobs: int = 1,
    executor: str | Executor = "local",
    ray_address: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or finish) every seed into `out`, `jobs` at a time on a machine, where `executor`
    says (as in `vaelab.bench.run_oneclass`); write `results.json`, `table.md` and the
    figure; return what `results.json` holds."""
    from vaelab.devices import resolve_device
    from vaelab.diagnostics import warn_of_untrained
    from vaelab.executors import claim_settings, get_executor, run_with_progress

    runner = get_executor(executor, ray_address)
    config.check()
    folder = Path(out)
    claim_settings(folder, config.protocol())
    calls = [(config, seed, str(folder)) for seed in range(config.seeds)]
    gpu = resolve_device(config.train.device).type == "cuda"
    started = time.perf_counter()
    done = run_with_progress(
        runner, run_seed, calls, jobs=jobs, gpu=gpu, desc="nll", progress=progress,
        describe=lambda r: f"seed {r['seed']}: {r['nll']:.2f} nats",
    )  # fmt: skip
    results = summarize(config, done, time.perf_counter() - started, jobs, runner.name)
    (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    warn_of_untrained(
        [f"seed {r['seed']}" for r in results["untrained_runs"]],
        "run",
        folder,
        images="test image",
        consequence="their -log p(x) is that of a model that has not learned yet, not one to "
        "set beside the published rows",
    )
    (folder / "table.md").write_text(markdown_table(results) + "\n")
    draw(folder, results)
    return results


def summarize(
    config: NllConfig, done: list[dict[str, Any]], seconds: float, jobs: int, executor: str
) -> dict[str, Any]:
    """The seeds' mean estimate with its standard error (over the seeds, or over the test
    images for one seed), vaelab's budget and the published rows."""
    from vaelab.data import protocol
    from vaelab.train import OPTIMIZERS

    runs = sorted(done, key=lambda r: r["seed"])
    values = [r["nll"] for r in runs]
    over_seeds = len(runs) > 1
    return {
        "benchmark": "nll",
        "model": config.model.name,
        "protocol": config.protocol(),
        "binarization": protocol(config.run_config(0).data),
        "K": config.iw_samples,
        "images": runs[0]["images"],
        "seeds": [r["seed"] for r in runs],
        "nll_mean": fmean(values),
        "nll_sem": stdev(values) / len(values) ** 0.5 if over_seeds else runs[0]["sem"],
        "sem_over": "seeds" if over_seeds else "test images",
        "budget": {
            "epochs": config.train.epochs,
            "batch_size": config.train.batch_size,
            "optimizer": config.train.optimizer,
            "lr": config.train.lr or OPTIMIZERS[config.train.optimizer][1]["lr"],
            "lr_milestones": config.train.lr_milestones,
            "lr_decay": config.train.lr_decay,
            "precision": config.train.precision,
            "train_minutes_mean": round(fmean(r["train_seconds"] for r in runs) / 60, 1),
            "eval_minutes_mean": round(fmean(r["eval_seconds"] for r in runs) / 60, 1),
        },
        "untrained_runs": untrained_runs(runs),
        "latent_dim": config.model.resolved().latent_dim,
        "active_units_mean": mean_active_units(runs),
        "runs": runs,
        "published": published_rows(),
        "wall_seconds": round(seconds, 1),
        "jobs": jobs,
        "executor": executor,
    }


def untrained_runs(runs: list[dict[str, Any]]) -> list[dict[str, int]]:
    """The seeds whose model reconstructs every checked test image nearly alike
    (`vaelab.diagnostics`): their estimate is that of a model that has not learned. Results
    written before the check, and pixel decoders (`recorded_spread`), record no spread and
    are not listed."""
    from vaelab.diagnostics import is_untrained

    return [{"seed": r["seed"]} for r in runs if is_untrained(r.get("reconstruction_spread"))]


def mean_active_units(runs: list[dict[str, Any]]) -> float | None:
    """The seeds' mean count of active latent units (`vaelab.latent_usage`), which Burda et al.
    report beside each -log p(x); None for results written before it was counted."""
    counts = [r.get("active_units") for r in runs]
    return None if None in counts else fmean(counts)


def active_text(results: dict[str, Any]) -> str:
    """`, 21 of 50 latent units active` for a results file that counted them, else nothing."""
    active = results.get("active_units_mean")
    if active is None:
        return ""
    return f", {active:g} of {results['latent_dim']} latent units active"


def notes_text(results: dict[str, Any]) -> str:
    """What a table row says beside a results file's estimate: its active latent units, and
    how many seeds did not learn (`untrained_runs`), if any."""
    from vaelab.diagnostics import untrained_note

    untrained = results.get("untrained_runs")
    note = f", {untrained_note(len(untrained), 'seed')}" if untrained else ""
    return active_text(results) + note


def published_rows() -> list[dict[str, Any]]:
    """The published MNIST -log p(x) rows, each with its source's citation and protocol."""
    table = json.loads(PUBLISHED.read_text())
    return [{**row, **table["sources"][row["source"]]} for row in table["rows"]]


def markdown_table(results: dict[str, Any]) -> str:
    """vaelab's row above the published rows: -log p(x) in nats, how it was estimated and
    trained, and where it comes from (with how many seeds did not learn, if any)."""
    lines = [
        "| model | test -log p(x) (nats) | K | binarisation | training | source |",
        "|---|---:|---:|---|---|---|",
    ]
    b = results["budget"]
    lines.append(
        f"| vaelab {results['model']} | {results['nll_mean']:.2f} ± {results['nll_sem']:.2f} | "
        f"{results['K']} | dynamic | {count(b['epochs'], 'epoch')} "
        f"({b['train_minutes_mean']:g} min), batch {b['batch_size']}, {b['optimizer']} lr "
        f"{schedule_text(b)}{precision_text(b)} | measured: {results['images']:,} test images, "
        f"{count(len(results['seeds']), 'seed')} (± over the {results['sem_over']})"
        f"{notes_text(results)} |"
    )
    for row in results["published"]:
        lines.append(
            f"| {row['method']} | {row['nll']:.2f} | {row['iw_samples']} | {row['binarization']} "
            f"| {row['budget_short']} | {row['short']} |"
        )
    return "\n".join(lines)


def schedule_text(budget: dict[str, Any]) -> str:
    """A results file's learning rate as read in a table: `0.001`, or with its decays
    `0.001, x0.316 after epochs 800, 900`."""
    milestones = budget.get("lr_milestones") or []
    text = f"{budget['lr']:g}"
    if milestones:
        text += f", x{budget['lr_decay']:g} after epochs {', '.join(map(str, milestones))}"
    return text


def precision_text(budget: dict[str, Any]) -> str:
    """`, bf16` for a budget trained in bfloat16; nothing for float32 (and for results
    written before the precision was recorded, which were float32)."""
    precision = budget.get("precision", "fp32")
    return "" if precision == "fp32" else f", {precision}"


def draw(folder: Path, results: dict[str, Any]) -> Path:
    """Seed 0's figure: samples from its prior and its estimate against K."""
    import torch

    from vaelab.figures.likelihood import nll_figure
    from vaelab.run import Run

    model = Run(folder / "runs" / "seed0").load_model()
    with torch.inference_mode():
        samples = model.sample(PRIOR_SAMPLES, torch.Generator().manual_seed(0))
    run = results["runs"][0]
    title = (
        f"{results['model']}, {count(run['epochs'], 'epoch')}: -log p(x) = {run['nll']:.2f} nats "
        f"at K = {run['K']} on {run['images']:,} test images"
    )
    path = folder / f"figure-{results['model']}.png"
    return nll_figure(samples, run["curve"]["ks"], run["curve"]["nll"], title, path)
