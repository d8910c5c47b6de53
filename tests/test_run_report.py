"""`vaelab report RUN`: one page of every figure a run's model can draw, and its test numbers."""

import re
import shutil
import warnings

import pytest

from vaelab.cli import main
from vaelab.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vaelab.diagnostics import UntrainedModelWarning
from vaelab.errors import RunError
from vaelab.run_report import write_report
from vaelab.train import evaluate_run, fit

EMBEDDED = re.compile(r'src="data:image/(png|gif);base64,')


def figures_of(page: str) -> set[str]:
    return set(re.findall(r"figures/(\w+)\.(?:png|gif)", page))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_run):
    root = tmp_path_factory.mktemp("runs")
    return {
        "vae": tiny_run(root / "vae", "vae", epochs=2),
        "beta-vae": tiny_run(root / "beta-vae", "beta-vae"),
        "ae": tiny_run(root / "ae", "ae"),
        "vq-vae": tiny_run(root / "vq-vae", "vq-vae"),
        "cvae": tiny_run(root / "cvae", "cvae"),
        "sevens": fit(
            RunConfig(DataConfig("mnist-sample", classes=[7]), ModelConfig("vae"), TrainConfig(2)),
            root / "sevens",
            progress=False,
        ),
    }


@pytest.fixture(scope="module")
def vae_page(runs):
    """The 2-D VAE's page, and the warnings writing it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        page = write_report(runs["vae"])
    assert page == runs["vae"].path / "report.html"
    return page.read_text(), caught


def test_a_2d_vae_gets_its_plane_samples_and_the_article_walk(runs, vae_page):
    text, _ = vae_page
    shown = {"loss", "reconstructions", "scatter", "manifold", "samples", "interpolation"}
    assert figures_of(text) == shown
    assert len(EMBEDDED.findall(text)) == len(shown)  # opens with no network
    drawn = {path.stem for path in runs["vae"].figures.iterdir()}
    assert shown <= drawn
    assert "traversal" not in text


def test_a_wider_vae_gets_a_traversal_instead_of_a_plane(runs):
    text = write_report(runs["beta-vae"]).read_text()
    assert {"traversal", "samples", "scatter"} <= figures_of(text)
    assert "manifold" not in figures_of(text)


@pytest.mark.parametrize("name", ["ae", "vq-vae"])
def test_an_autoencoder_gets_no_prior_figures_and_walks_between_test_images(runs, name):
    text = write_report(runs[name]).read_text()
    assert figures_of(text) == {"loss", "reconstructions", "scatter", "interpolation"}
    assert "an autoencoder" in text
    if name == "vq-vae":
        assert "codebook vectors used" in text


def test_a_conditional_model_draws_one_class_and_says_which(runs):
    text = write_report(runs["cvae"]).read_text()
    assert {"scatter", "manifold", "samples", "interpolation"} <= figures_of(text)
    assert "draw class 0" in text


def test_the_test_numbers_are_vaelab_evals(runs, vae_page):
    text, _ = vae_page
    measured = evaluate_run(runs["vae"])
    assert f"{measured['loss']:.4f}" in text
    assert f"{measured['active_units']} of 2" in text


def test_an_untrained_model_is_warned_of_once_on_the_page_and_to_the_caller(vae_page):
    text, caught = vae_page
    untrained = [w for w in caught if w.category is UntrainedModelWarning]
    assert len(untrained) == 1
    assert text.count("reconstructs every image nearly the same way") == 1


def test_the_cli_writes_into_a_folder_of_its_own(runs, tmp_path, capsys):
    out = tmp_path / "page"
    assert main(["report", str(runs["ae"].path), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out / 'report.html'}"
    assert (out / "loss.png").exists() and 'src="data:image/png' in (
        out / "report.html"
    ).read_text()


def test_a_run_with_nothing_to_show_is_refused_by_name(runs, tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err.endswith("does not exist\n")
    started = tmp_path / "started"
    started.mkdir()
    shutil.copy(runs["ae"].path / "config.json", started / "config.json")
    with pytest.raises(RunError, match="has no finished epoch yet"):
        write_report(started)
    assert not (started / "report.html").exists()


def test_a_detector_gets_the_figures_that_need_no_test_images(tmp_path):
    from vaelab.anomaly import AnomalyDetector
    from vaelab.data import load

    sevens = load("mnist-sample", "train").with_classes([7]).images[:256]
    detector = AnomalyDetector("vae", train=TrainConfig(epochs=1)).fit(sevens)
    detector.save(tmp_path / "det")
    text = write_report(tmp_path / "det").read_text()
    assert figures_of(text) == {"loss", "samples", "manifold", "interpolation"}
    assert "names no test images" in text and "On the test set" not in text


def test_a_run_on_some_classes_gets_the_anomaly_section_of_vaelab_anomaly(runs):
    from vaelab.anomaly import analyze_run

    text = write_report(runs["sevens"]).read_text()
    folder = runs["sevens"].path / "anomaly"
    assert {"roc", "score_histograms", "anomaly_maps"} <= set(
        re.findall(r"anomaly/(\w+)\.png", text)
    )
    assert (folder / "scores.csv").exists() and (folder / "report.html").exists()
    auroc = analyze_run(runs["sevens"]).metrics["overall"]["auroc"]
    assert f"{auroc:.4f}" in text and "learned class 7 only" in text


def test_a_run_on_every_class_gets_no_anomaly_section(vae_page):
    text, _ = vae_page
    assert "Anomalies" not in text and "AUROC" not in text
