"""`vaelab bench split-mnist`: every strategy over seeds, beside the published table.

    out/
      settings.json                  the protocol (a rerun must match it)
      <strategy>/seed<k>/task<t>.safetensors
                                     the learner after task t, with that task's accuracy
                                     row and its generator's samples
      <strategy>/seed<k>/result.json the accuracy matrix of one (strategy, seed), and
                                     the reconstruction spread of its generative models
      results.json, table.md         every strategy finished so far, and the table
      accuracy_matrix.png, samples-<strategy>.png

A task's file is written once it is trained and measured, so an interrupted
benchmark resumes at the next task of each (strategy, seed) and gives the same
numbers as an unbroken one.

A (strategy, seed) whose generator or per-digit VAEs reconstruct every test image nearly
alike (`vaelab.diagnostics`: too few iterations to learn) is listed in its strategy's
`untrained_runs`, warned of and noted in the table: its accuracy is that of replay or
likelihoods from models that have learned no digit.

    results = run_split_mnist(SplitConfig(), "bench/split-mnist", ["dgr-distill"], seeds=5)
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from statistics import fmean, stdev
from typing import TYPE_CHECKING, Any

from vaelab.continual.split import STRATEGIES, TASKS, SplitConfig, check_strategies
from vaelab.errors import VaelabError
from vaelab.jsonfiles import REDO, read_json

if TYPE_CHECKING:
    from vaelab.executors import Executor

PUBLISHED = Path(__file__).parents[1] / "published" / "split_mnist.json"
DATASETS = ("mnist", "mnist-sample")


def protocol(config: SplitConfig) -> dict[str, Any]:
    """The settings every result in one folder shares (not where the data is, nor the device)."""
    settings = dataclasses.asdict(config)
    for name in ("data_dir", "device"):
        settings.pop(name)
    return settings


def run_seed(
    config: SplitConfig, strategy: str, seed: int, out: str, *, threads: int, modules: list[str]
) -> dict[str, Any]:
    """Train one strategy with one seed through the five tasks (resuming after the last saved
    task); its result: the tasks x tasks accuracy matrix, the final accuracy and the
    final generative models' reconstruction spreads (`Learner.reconstruction_spreads`)."""
    import torch

    from vaelab.continual.split import task_data, train_and_measure
    from vaelab.data import load
    from vaelab.plugins import import_registered
    from vaelab.run import load_tensors, save_tensors

    import_registered(modules)
    torch.set_num_threads(threads)
    folder = Path(out) / strategy / f"seed{seed}"
    done = folder / "result.json"
    if done.exists():
        return read_json(done, REDO)
    folder.mkdir(parents=True, exist_ok=True)
    train = task_data(config, load(config.dataset, "train", config.data_dir))
    test_set = load(config.dataset, "test", config.data_dir)
    test = (test_set.float(), test_set.labels)
    torch.manual_seed(seed)  # the initial weights
    learner = STRATEGIES[strategy].learner(config, STRATEGIES[strategy])
    records = []
    for task in range(len(TASKS)):
        path = folder / f"task{task}.safetensors"
        if path.exists():
            tensors, meta = load_tensors(path)
            learner.load(tensors, meta["learner"])
            records.append(meta["record"])
            continue
        record, samples = train_and_measure(learner, task, train, test, seed)
        tensors, meta = learner.state()
        if samples is not None:
            tensors["samples"] = samples
        save_tensors(tensors, path, {"record": record, "learner": meta})
        records.append(record)
    final = records[-1]["accuracy"]
    result = {
        "strategy": strategy,
        "seed": seed,
        "accuracy_matrix": [r["accuracy"] for r in records],
        "final_accuracy": fmean(final),
        "final_test_set_accuracy": whole_test_set(final, test[1]),
        "reconstruction_spread": learner.reconstruction_spreads(*test),
        "train_seconds": round(sum(r["train_seconds"] for r in records), 1),
        "eval_seconds": round(sum(r["eval_seconds"] for r in records), 1),
    }
    done.write_text(json.dumps(result, indent=2) + "\n")
    return result


def whole_test_set(row: list[float], labels: Any) -> float:
    """The accuracy over every test image, from the per-task accuracies of `row`."""
    sizes = [int(sum((labels == d).sum() for d in digits)) for digits in TASKS]
    return sum(a * n for a, n in zip(row, sizes, strict=True)) / sum(sizes)


def run_split_mnist(
    config: SplitConfig,
    out: str | os.PathLike[str],
    strategies: list[str],
    *,
    seeds: int = 5,
    jobs: int = 1,
    executor: str | Executor = "local",
    ray_address: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or finish) `strategies` x seeds 0..`seeds`-1 into `out`, `jobs` at a time on a
    machine, where `executor` says (as in `vaelab.bench.run_oneclass`); write `results.json`,
    `table.md` and the figures; return what `results.json` holds."""
    from vaelab.devices import resolve_device
    from vaelab.diagnostics import warn_of_untrained
    from vaelab.executors import claim_settings, get_executor, run_with_progress

    runner = get_executor(executor, ray_address)
    check_strategies(strategies)
    config.check()
    if config.dataset not in DATASETS:
        raise VaelabError(
            f"Split-MNIST is defined on MNIST digits; choose a dataset of {', '.join(DATASETS)}"
        )
    folder = Path(out)
    claim_settings(folder, protocol(config))
    calls = [(config, s, seed, str(folder)) for s in strategies for seed in range(seeds)]
    gpu = resolve_device(config.device).type == "cuda"
    started = time.perf_counter()
    run_with_progress(
        runner, run_seed, calls, jobs=jobs, gpu=gpu, desc="split-mnist", progress=progress,
        describe=lambda r: f"{r['strategy']} seed {r['seed']}: {r['final_accuracy']:.3f}",
    )  # fmt: skip
    results = collect(folder, config, time.perf_counter() - started, jobs, runner.name)
    (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    warn_of_untrained(
        [
            f"{name} seed {run['seed']} ({', '.join(run['models'])})"
            for name, s in results["strategies"].items()
            for run in s["untrained_runs"]
        ],
        "run",
        folder,
        images="test image",
        consequence="the dreams they replay, or the likelihoods they classify by, come from "
        "models that have learned no digit, and their accuracy is not the strategy's",
        remedy="raise iterations for a replay generator, class_iterations for the generative "
        "classifier's VAEs",
        listed="untrained_runs of each strategy in results.json",
    )
    (folder / "table.md").write_text(markdown_table(results) + "\n")
    draw(folder, results)
    return results


def collect(
    folder: Path, config: SplitConfig, seconds: float, jobs: int, executor: str
) -> dict[str, Any]:
    """Every (strategy, seed) finished in `folder`, summarised per strategy."""
    summaries = {}
    for strategy in STRATEGIES:
        paths = sorted((folder / strategy).glob("seed*/result.json"))
        if paths:
            runs = sorted((read_json(p, REDO) for p in paths), key=lambda r: r["seed"])
            summaries[strategy] = summarize(strategy, runs)
    return {
        "benchmark": "split-mnist",
        "protocol": protocol(config),
        "tasks": [list(t) for t in TASKS],
        "metric": "class-incremental accuracy after the last task: the mean of the five tasks' "
        "test accuracies (the reference code's average), fractions in [0, 1]",
        "strategies": summaries,
        "published": published_rows(),
        "wall_seconds": round(seconds, 1),
        "jobs": jobs,
        "executor": executor,
    }


Matrix = list[list[float | None]]
"""Accuracy on each task's test images (columns) after each task (rows); every row but the
last is None throughout for a strategy that trains once, after the last task."""


def backward_transfer(matrix: Matrix) -> float | None:
    """BWT (Lopez-Paz and Ranzato 2017): each earlier task's final accuracy minus its
    accuracy just after it was learned, averaged (negative: forgotten). BWT is linear in
    the matrix, so that of the seeds' mean matrix is the mean of theirs. None for a
    strategy measured only after the last task."""
    if _measured_once(matrix):
        return None
    last = len(matrix) - 1
    return fmean(matrix[last][t] - matrix[t][t] for t in range(last))


def max_forgetting(matrix: Matrix) -> float | None:
    """Average forgetting (Chaudhry et al. 2018): each earlier task's best accuracy before
    the last task minus its final accuracy, averaged (positive: forgotten). None for a
    strategy measured only after the last task."""
    if _measured_once(matrix):
        return None
    last = len(matrix) - 1
    return fmean(max(row[t] for row in matrix[t:last]) - matrix[last][t] for t in range(last))


def _measured_once(matrix: Matrix) -> bool:
    return any(row[0] is None for row in matrix)


def _mean_and_sem(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and standard error over seeds; None where a seed has no value, or for the
    standard error of one seed."""
    if any(v is None for v in values):
        return None, None
    sem = stdev(values) / len(values) ** 0.5 if len(values) > 1 else None
    return fmean(values), sem


def summarize(strategy: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard error over seeds of the final accuracy and of the backward transfer,
    the mean forgetting, and the mean matrix."""
    finals = [r["final_accuracy"] for r in runs]
    matrices = [r["accuracy_matrix"] for r in runs]
    final_mean, final_sem = _mean_and_sem(finals)
    transfer = [backward_transfer(m) for m in matrices]
    transfer_mean, transfer_sem = _mean_and_sem(transfer)
    forgotten = [max_forgetting(m) for m in matrices]
    mean_matrix = [
        [None if cells[0] is None else fmean(cells) for cells in zip(*rows, strict=True)]
        for rows in zip(*matrices, strict=True)
    ]
    return {
        "summary": STRATEGIES[strategy].summary,
        "published_row": STRATEGIES[strategy].published,
        "seeds": [r["seed"] for r in runs],
        "final_accuracy": finals,
        "final_accuracy_mean": final_mean,
        "final_accuracy_sem": final_sem,
        "final_test_set_accuracy_mean": fmean(r["final_test_set_accuracy"] for r in runs),
        "backward_transfer": transfer,
        "backward_transfer_mean": transfer_mean,
        "backward_transfer_sem": transfer_sem,
        "forgetting": forgotten,
        "forgetting_mean": _mean_and_sem(forgotten)[0],
        "accuracy_matrix": mean_matrix,
        "untrained_runs": untrained_runs(runs),
        "train_seconds_mean": round(fmean(r["train_seconds"] for r in runs), 1),
        "eval_seconds_mean": round(fmean(r["eval_seconds"] for r in runs), 1),
    }


def untrained_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each seed with a generative model that reconstructs every test image nearly alike
    (`vaelab.diagnostics`), and which models. Results written before the check, and
    strategies with no generative model, record no spread and are not listed."""
    from vaelab.diagnostics import is_untrained

    listed = []
    for run in runs:
        models = [m for m, s in run.get("reconstruction_spread", {}).items() if is_untrained(s)]
        if models:
            listed.append({"seed": run["seed"], "models": models})
    return listed


def published_rows() -> list[dict[str, Any]]:
    """The published class-incremental Split-MNIST rows, with their citation."""
    table = json.loads(PUBLISHED.read_text())
    return [{**row, "citation": table["citation"]} for row in table["rows"]]


def markdown_table(results: dict[str, Any]) -> str:
    """Published rows and vaelab's, accuracy in % (mean ± standard error over seeds), vaelab's
    backward transfer in points (from the mean matrix: the mean over seeds), with how many of
    vaelab's runs did not learn, if any."""
    from vaelab.diagnostics import untrained_note

    lines = [
        "| method | class-IL accuracy (%) | BWT (points) | source |",
        "|---|---:|---:|---|",
    ]
    for row in results["published"]:
        sem = "" if row.get("sem") is None else f" ± {row['sem']:.2f}"
        lines.append(f"| {row['method']} | {row['accuracy']:.2f}{sem} | | published |")
    for name, s in results["strategies"].items():
        sem = "" if s["final_accuracy_sem"] is None else f" ± {100 * s['final_accuracy_sem']:.2f}"
        transfer = backward_transfer(s["accuracy_matrix"])
        bwt = "trained once" if transfer is None else f"{100 * transfer:.1f}"
        seeds = len(s["seeds"])
        untrained = s.get("untrained_runs")
        note = f", {untrained_note(len(untrained))}" if untrained else ""
        lines.append(
            f"| vaelab {name}: {s['summary']} | {100 * s['final_accuracy_mean']:.2f}{sem} | "
            f"{bwt} | measured, {seeds} seed{'s' * (seeds != 1)}, "
            f"{s['train_seconds_mean'] / 60:.1f} min{note} |"
        )
    return "\n".join(lines)


def draw(folder: Path, results: dict[str, Any]) -> None:
    """The accuracy matrices of every strategy, and what each generator dreams after each
    task (seed 0)."""
    from vaelab.figures.split_mnist import accuracy_matrices, task_samples
    from vaelab.run import load_tensors

    matrices = {name: s["accuracy_matrix"] for name, s in results["strategies"].items()}
    accuracy_matrices(matrices, folder / "accuracy_matrix.png")
    for name in results["strategies"]:
        seed = folder / name / "seed0"
        files = [seed / f"task{t}.safetensors" for t in range(len(TASKS))]
        if not all(f.exists() for f in files):
            continue
        samples = [load_tensors(f)[0].get("samples") for f in files]
        if any(s is not None for s in samples):
            task_samples(samples, name, folder / f"samples-{name}.png")
