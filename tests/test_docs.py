"""The docs are the front door: tables drawn from their results files, links that lead somewhere."""

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#]+)(#[^)]*)?\)")


@pytest.fixture(scope="module")
def doc_tables():
    spec = importlib.util.spec_from_file_location("doc_tables", ROOT / "scripts" / "doc_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tables_in_the_docs_match_their_results_files(doc_tables):
    assert doc_tables.stale() == [], "run python scripts/doc_tables.py"
    assert doc_tables.main(["--check"]) == 0


def test_every_results_file_is_shown_in_a_table(doc_tables):
    pages = [p.read_text() for p in doc_tables.documents()]
    shown = {m["name"] for page in pages for m in doc_tables.MARKER.finditer(page)}
    files = {p.stem for p in (ROOT / "docs" / "results").glob("*.json")}
    assert files == shown


def test_a_new_measurement_makes_the_docs_stale_until_redrawn(doc_tables, tmp_path):
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    results = tmp_path / "docs" / "results" / "continual-mnist.json"
    record = json.loads(results.read_text())
    record["rows"][0]["avg_forgetting"] = 12.3
    results.write_text(json.dumps(record))
    page = tmp_path / "docs" / "continual.md"
    assert doc_tables.stale(tmp_path) == [page]
    page.write_text(doc_tables.rewrite(page.read_text(), tmp_path))
    assert doc_tables.stale(tmp_path) == []
    assert "| naive | 12.3 |" in page.read_text()


def test_the_readme_is_short_and_its_links_lead_somewhere():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 200
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target, _ in LINK.findall(page.read_text()):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.name} links to {target}"


def test_the_readme_picture_is_small():
    for target, _ in LINK.findall((ROOT / "README.md").read_text()):
        if target.endswith(".png"):
            assert (ROOT / target).stat().st_size < 200_000, target


def test_a_table_row_drawn_from_a_benchmark_results_file_follows_it(doc_tables, tmp_path):
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    included = tmp_path / "docs" / "results" / "oneclass" / "mnist-vae16-mse-edge.json"
    results = json.loads(included.read_text())
    results["per_class_auroc"]["8"] = 0.5
    included.write_text(json.dumps(results))
    page = tmp_path / "docs" / "anomaly.md"
    assert doc_tables.stale(tmp_path) == [page]
    assert "| 50.0 |" in doc_tables.rewrite(page.read_text(), tmp_path)


def test_an_untrained_seed_is_noted_in_the_learning_curve_row(doc_tables):
    folder = ROOT / "docs" / "results"
    results = json.loads((folder / "nll-learning-curve.json").read_text())
    results["rows"] = [doc_tables._included(results["rows"][0], folder)]
    assert "untrained" not in doc_tables.nll_curve_table(results)
    results["rows"][0]["results"]["untrained_runs"] = [{"seed": 0}]
    assert "1 seed untrained (see results.json)" in doc_tables.nll_curve_table(results)
