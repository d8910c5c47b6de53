"""Write the results tables of the docs from the results files in docs/results/.

    python scripts/doc_tables.py           # rewrite every table between its markers
    python scripts/doc_tables.py --check   # exit 1, naming the files, if a table is stale

A table sits between the lines `<!-- table:NAME -->` and `<!-- end -->` in README.md or
a Markdown file of docs/; NAME names the results file docs/results/NAME.json,
whose `benchmark` field chooses how it is drawn. Tables are never typed: a new
measurement goes into its results file, and this script redraws the table,
so the numbers in the docs are the numbers on record.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vaelab.bench import markdown_table, published_rows, vaelab_row
from vaelab.continual.split_bench import markdown_table as split_mnist_table
from vaelab.nll_bench import markdown_table as nll_table
from vaelab.nll_bench import notes_text, schedule_text

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- table:(?P<name>[\w.-]+) -->\n(?P<body>.*?)^<!-- end -->", re.S | re.M)
OPENING = re.compile(r"^<!-- table:", re.M)


def oneclass_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row as recorded, or drawn from the benchmark's own `results.json` that it names,
    with the spread over seeds when there are several."""
    if "results" not in row:
        return row
    results = row["results"]
    drawn = vaelab_row(results, row.get("method"))
    seeds = sorted({run["seed"] for run in results["runs"]})
    which = f"{len(seeds)} seeds" if len(seeds) > 1 else f"seed {seeds[0]}"
    drawn["method"] = drawn["method"].removesuffix(")") + f", {which})"
    if len(seeds) > 1:
        drawn["seeds"] = seeds
        drawn["std"] = {c: round(100 * v, 1) for c, v in results["per_class_std"].items()}
        drawn["mean_std"] = round(100 * results["mean_auroc_std_over_seeds"], 1)
    return {**drawn, "bold": row.get("bold", False)}


def oneclass_table(results: dict[str, Any]) -> str:
    """vaelab's rows (a seed-spread row under any row with one) above the published rows."""
    rows: list[dict[str, Any]] = []
    for row in map(oneclass_row, results["rows"]):
        method = f"**{row['method']}**" if row.get("bold") else row["method"]
        rows.append({"method": method, "auroc": row["auroc"], "mean": row["mean"]})
        if "std" in row:
            spread = f"± std over the {len(row['seeds'])} seeds"
            rows.append({"method": spread, "auroc": row["std"], "mean": row["mean_std"]})
    for row in published_rows(results["dataset"]):
        flag = "*" if row.get("unverified") else ""
        rows.append({**row, "method": row["method"] + flag})
    classes = sorted(int(c) for c in rows[0]["auroc"])
    return markdown_table(rows, classes)


def oneclass_validation_table(results: dict[str, Any]) -> str:
    """Validation AUROC (%) of each candidate score, per class and mean, one row per model
    and score, as `benchmarks/oneclass_validation.py` wrote them (`shown` picks the scores
    of a record, all by default)."""
    rows = []
    for record in results["records"]:
        for name, auroc in record["auroc"].items():
            if name in record.get("shown", record["auroc"]):
                mean = 100 * sum(auroc.values()) / len(auroc)
                percent = {c: 100 * v for c, v in auroc.items()}
                method = f"{record['model']}, {name}"
                rows.append({"method": method, "auroc": percent, "mean": mean})
    return markdown_table(rows, sorted(int(c) for c in rows[0]["auroc"]))


def _pair(template: str) -> Callable[[Sequence[float]], str]:
    return lambda pair: " → ".join(template.format(value) for value in pair)


def continual_table(results: dict[str, Any]) -> str:
    """One row per strategy; a column appears when some row holds its measurement."""
    first = results["protocol"]["order"][0]
    columns: list[tuple[str, str, Callable[[Any], str], bool]] = [
        ("average forgetting (nats)", "avg_forgetting", "{:.1f}".format, True),
        ("final mean test loss (10 digits)", "final_mean_loss", "{:.1f}".format, True),
        (f"{first}'s loss after stage 0 → at the end", "first_digit_loss", _pair("{:.1f}"), True),
        (
            f"{first}s among the dreams after stage 0 → at the end",
            "first_digit_dream_share",
            _pair("{:.0%}"),
            True,
        ),
        ("final dreams (CNN-named shares)", "final_dreams", str, False),
        ("images per epoch, stages 1 on, summed", "images_trained", str, True),
        ("training time", "train_minutes", "{:g} min".format, True),
    ]
    shown = [c for c in columns if any(c[1] in row for row in results["rows"])]
    lines = [
        "| strategy | " + " | ".join(c[0] for c in shown) + " |",
        "|---|" + "".join("---:|" if c[3] else "---|" for c in shown),
    ]
    for row in results["rows"]:
        cells = []
        for _, key, draw, _ in shown:
            text = draw(row[key]) if key in row else ""
            cells.append(f"**{text}**" if key in row.get("bold", ()) else text)
        lines.append(f"| {row['strategy']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def epochs_table(results: dict[str, Any]) -> str:
    """One row per training length: how useful the model's anomaly score is by then."""
    lines = [
        "| epochs | AUROC, sevens against the other digits | the hardest digit's AUROC |",
        "|---:|---:|---:|",
    ]
    for row in results["rows"]:
        lines.append(f"| {row['epochs']} | {row['auroc']:.3f} | {row['worst_digit_auroc']:.3f} |")
    return "\n".join(lines)


def labels_table(results: dict[str, Any]) -> str:
    """One row per conditional model: the share of its samples named as the label asked."""
    labels = sorted(results["rows"][0]["named_as_asked"], key=int)
    lines = [
        "| model | " + " | ".join(labels) + " | lowest | training |",
        "|---|" + "---:|" * (len(labels) + 2),
    ]
    for row in results["rows"]:
        shares = " | ".join(f"{row['named_as_asked'][c]:.1%}" for c in labels)
        lowest = min(row["named_as_asked"].values())
        lines.append(f"| {row['model']} | {shares} | {lowest:.1%} | {row['training']} |")
    return "\n".join(lines)


def bound_table(results: dict[str, Any]) -> str:
    """One row per model: its test negative log-likelihood bound, and how it was trained."""
    lines = ["| model | test bound (nats) | training |", "|---|---:|---|"]
    for row in results["rows"]:
        lines.append(f"| {row['model']} | {row['nll_bound']:.2f} | {row['training']} |")
    return "\n".join(lines)


def export_table(results: dict[str, Any]) -> str:
    """One row per exported model and score: the largest absolute differences of its graphs
    from PyTorch, and the score's AUROC computed both ways."""
    lines = [
        "| model | score | encoder | decoder | score graph | AUROC, PyTorch | AUROC, ONNX "
        "| difference |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        pytorch, onnx = row["auroc_pytorch"], row["auroc_onnx"]
        lines.append(
            f"| {row['model']} | {row['score']} | {row['encoder']:.1e} | {row['decoder']:.1e} "
            f"| {row['score_diff']:.1e} | {pytorch:.7f} | {onnx:.7f} | {abs(pytorch - onnx):.1e} |"
        )
    return "\n".join(lines)


def vq_codebook_table(results: dict[str, Any]) -> str:
    """One row per model and training length: test reconstruction, and for a VQ-VAE the
    codebook vectors its test codes use and their perplexity."""
    lines = [
        "| model | epochs | test reconstruction (mean pixel BCE) | vectors used | perplexity "
        "| training |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        used = f"{row['codes_used']} of {row['codebook_size']}" if "codes_used" in row else ""
        lines.append(
            f"| {row['model']} | {row['epochs']} | {row['recon']:.3f} | {used} "
            f"| {row.get('perplexity', '')} | {row['train_seconds']:.0f} s |"
        )
    return "\n".join(lines)


def shared_machine_table(results: dict[str, Any]) -> str:
    """Images/s of each thread setting under each load, and the slowdown against quiet."""
    lines = ["| threads | " + " | ".join(results["loads"]) + " |", "|---|" + "---:|" * 3]
    for row in results["rows"]:
        quiet, *loaded = row["images_per_s"]
        cells = [f"{quiet:,.0f}"] + [f"{v:,.0f} ({quiet / v:.1f}x slower)" for v in loaded]
        lines.append(f"| {row['threads']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fast_paths_table(results: dict[str, Any]) -> str:
    """Each fast path's speed against its part's first arm; training arms also give the
    last validation loss (a float32 evaluation) and the first epoch's seconds."""
    lines = [
        "| part | arm | images/s | vs the first | last val loss | first epoch |",
        "|---|---|---:|---:|---:|---:|",
    ]
    training = results["training"]
    base = training[0]
    for row in training:
        loss = f"{row['val_loss']:.2f} ({row['val_loss'] - base['val_loss']:+.2f})"
        lines.append(
            f"| training | {row['arm']} | {row['images_per_s']:,.0f} "
            f"| {row['images_per_s'] / base['images_per_s']:.2f}x | {loss} "
            f"| {row['first_epoch_s']:.1f} s |"
        )
    for part, arms in (("inference", "batch"), ("data", "data")):
        first = results[part][0]["images_per_s"]
        for row in results[part]:
            arm = f"{row[arms]:,} a pass" if part == "inference" else f"on the {row[arms]}"
            lines.append(
                f"| {part} | {arm} | {row['images_per_s']:,.0f} "
                f"| {row['images_per_s'] / first:.2f}x | | |"
            )
    return "\n".join(lines)


def nll_pass_size_table(results: dict[str, Any]) -> str:
    """The estimate's seconds at each fixed batch and at the default, by model and thread
    count, and the default's speed against 10 images (1,000 decoded samples) a pass."""
    batches = results["batches"]
    lines = [
        "| model | threads | largest activation | "
        + " | ".join(f"batch {b}" for b in batches)
        + " | default | vs batch 10 |",
        "|---|---:|---:|" + "---:|" * (len(batches) + 2),
    ]
    for row in results["rows"]:
        seconds, default = row["seconds"], row["default_batch"]
        cells = [f"{seconds[str(b)]:.2f} s" for b in batches]
        lines.append(
            f"| {row['model']} | {row['threads']} | {row['largest_activation']:,} | "
            + " | ".join(cells)
            + f" | batch {default}: {seconds[str(default)]:.2f} s "
            + f"| {seconds['10'] / seconds[str(default)]:.2f}x |"
        )
    return "\n".join(lines)


def nll_curve_table(results: dict[str, Any]) -> str:
    """The estimate against the training budget: one row per included `bench nll`
    results file, beside the published one-layer row of the same objective and K."""
    lines = [
        "| training objective | epochs | learning rate | training (min) | test -log p(x) (nats) "
        "| objective on the test set (nats) | paper (Burda et al. 2016) | above the paper |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        run = row["results"]
        budget, nll = run["budget"], run["nll_mean"]
        objective, paper = _paper_row(run)
        lines.append(
            f"| {objective} | {budget['epochs']} | {schedule_text(budget)} "
            f"| {budget['train_minutes_mean']:g} "
            f"| {nll:.2f} ± {run['nll_sem']:.2f}{notes_text(run)} "
            f"| {run['runs'][0]['final_val_loss']:.2f} "
            f"| {paper:.2f} | {nll - paper:.2f} |"
        )
    return "\n".join(lines)


def _paper_row(run: dict[str, Any]) -> tuple[str, float]:
    """A `bench nll` run's training objective, and the paper's one-layer row of it."""
    objective = run["protocol"]["model"]["objective"]
    kind = "iwae" if objective["name"] == "iwae" else "vae"
    k = objective["samples"] if kind == "iwae" else 1
    same = {"layers": 1, "objective": kind, "k": k}
    paper = next(p["nll"] for p in run["published"] if same.items() <= p.items())
    return f"{kind.upper()}, k = {k}", paper


def nll_full_test_table(results: dict[str, Any]) -> str:
    """The estimate on all 10,000 test images (`vaelab eval RUN --nll`) of the runs whose
    `bench nll` results give their budget, beside the paper's row of the same objective."""
    lines = [
        "| training objective | epochs | learning rate | training (min) "
        "| -log p(x), all test images (nats) | first 1,000 | paper (Burda et al. 2016) "
        "| above the paper |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        run, estimate = row["results"], row["estimate"]
        budget = run["budget"]
        objective, paper = _paper_row(run)
        lines.append(
            f"| {objective} | {budget['epochs']} | {schedule_text(budget)} "
            f"| {budget['train_minutes_mean']:g} "
            f"| {estimate['mean']:.2f} ± {estimate['sem']:.2f} ({estimate['images']:,}, "
            f"K = {estimate['K']}){notes_text(run)} | {run['nll_mean']:.2f} | {paper:.2f} "
            f"| {estimate['mean'] - paper:.2f} |"
        )
    return "\n".join(lines)


def trials_table(results: dict[str, Any]) -> str:
    """One row per design tried: its networks, its negative test ELBO by epoch, and why it
    was kept or left."""
    lines = [
        "| trial | encoder and decoder | pixelcnn | -ELBO on the test set (nats, epoch) "
        "| outcome |",
        "|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        curve = ", ".join(f"{v:.2f} ({e})" for e, v in row["elbo_by_epoch"].items()) or "-"
        lines.append(
            f"| {row['trial']} | {row['networks']} | {row['pixelcnn']} | {curve} "
            f"| {row['outcome']} |"
        )
    return "\n".join(lines)


TABLES: dict[str, Callable[[dict[str, Any]], str]] = {
    "oneclass": oneclass_table,
    "oneclass-validation": oneclass_validation_table,
    "continual": continual_table,
    "epochs": epochs_table,
    "labels": labels_table,
    "bound": bound_table,
    "split-mnist": split_mnist_table,
    "shared-machine": shared_machine_table,
    "vq-codebook": vq_codebook_table,
    "fast-paths": fast_paths_table,
    "onnx-export": export_table,
    "nll": nll_table,
    "nll-curve": nll_curve_table,
    "nll-pass-size": nll_pass_size_table,
    "nll-full-test": nll_full_test_table,
    "trials": trials_table,
}
"""How each kind of results file (its `benchmark` field) is drawn."""


def render(name: str, root: Path = ROOT) -> str:
    """The table of docs/results/NAME.json, as Markdown."""
    path = root / "docs" / "results" / f"{name}.json"
    if not path.exists():
        raise SystemExit(f"doc_tables: no results file {path} for the table {name!r}")
    results = json.loads(path.read_text())
    if "rows" in results:
        results["rows"] = [_included(row, path.parent) for row in results["rows"]]
    return TABLES[results["benchmark"]](results)


INCLUDED = ("results", "estimate")
"""Fields of a row that may name another results file to read in their place."""


def _included(row: Any, folder: Path) -> Any:
    """A row that names a results file (`"results": "FILE.json"`, beside its own) gets
    that file's contents in its place: a benchmark's `results.json` kept as it was written."""
    if not isinstance(row, dict):
        return row
    named = {key: row[key] for key in INCLUDED if isinstance(row.get(key), str)}
    return {**row, **{key: json.loads((folder / file).read_text()) for key, file in named.items()}}


def rewrite(text: str, root: Path = ROOT) -> str:
    """`text` with every table between its markers redrawn from its results file."""
    if len(OPENING.findall(text)) != len(MARKER.findall(text)):
        raise SystemExit("doc_tables: a '<!-- table:NAME -->' marker has no '<!-- end -->'")
    return MARKER.sub(
        lambda m: f"<!-- table:{m['name']} -->\n{render(m['name'], root)}\n<!-- end -->", text
    )


def documents(root: Path = ROOT) -> list[Path]:
    """Every Markdown file that may hold tables: README.md and docs/**/*.md."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def stale(root: Path = ROOT) -> list[Path]:
    """The documents whose tables differ from their results files."""
    present = [path for path in documents(root) if path.exists()]
    return [path for path in present if rewrite(path.read_text(), root) != path.read_text()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale tables")
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale()
        for path in outdated:
            print(f"{path.relative_to(ROOT)}: tables differ from docs/results; "
                  "run python scripts/doc_tables.py", file=sys.stderr)  # fmt: skip
        return 1 if outdated else 0
    for path in documents():
        if path.exists():
            path.write_text(rewrite(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
