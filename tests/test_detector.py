"""A detector trained on a user's own image files, scoring new ones and measured on labelled
ones: `vaelab detector fit|score|evaluate` and `AnomalyDetector.fit_files/score_files/
evaluate_files`."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
from conftest import write_digit_files
from PIL import Image

from vaelab.anomaly import AnomalyDetector, anomaly_metrics
from vaelab.cli import main
from vaelab.plotting import describe
from vaelab.run import Run

NEW_IMAGES = 400


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory) -> Path:
    """The sample's training sevens as 28x28 grey PNGs in normal/, and its first test images
    as 56x56 colour PNGs in new/<digit>/, as a user's camera might give them."""
    return write_digit_files(tmp_path_factory.mktemp("digits"), new=NEW_IMAGES)


@pytest.fixture(scope="module")
def detector_dir(digit_files: Path) -> Path:
    """A detector fitted by the command line on the sevens for 3 epochs: the mechanics only."""
    out = digit_files / "detector"
    args = ["detector", "fit", str(digit_files / "normal"), "--out", str(out), "--epochs", "3"]
    assert main([*args, "--quiet"]) == 0  # and warns: 3 epochs leave it untrained
    return out


def test_scores_of_files_are_a_csv_in_sorted_order_flagged_by_the_threshold(
    digit_files, detector_dir, tmp_path, capsys
):
    scores_csv, maps = tmp_path / "scores.csv", tmp_path / "maps.png"
    assert main(["detector", "score", str(detector_dir), str(digit_files / "new"),
                 "--csv", str(scores_csv), "--maps", str(maps), "--top", "12"]) == 0  # fmt: skip
    rows = list(csv.DictReader(scores_csv.open()))
    assert len(rows) == NEW_IMAGES
    assert [r["file"] for r in rows] == sorted(r["file"] for r in rows)
    scores = [float(r["score"]) for r in rows]
    threshold = json.loads((detector_dir / "detector.json").read_text())["threshold"]
    assert [int(r["anomaly"]) for r in rows] == [int(s > threshold) for s in scores]
    flagged = sum(int(r["anomaly"]) for r in rows)
    assert capsys.readouterr().err == (
        f"{flagged} of {NEW_IMAGES} images score above the threshold {threshold:.6g} "
        f"(anomalies); scores in {scores_csv}; maps in {maps}\n"
    )
    with Image.open(maps) as figure:  # 12 images, 10 a row: two rows (one is 0.36 as tall)
        assert figure.height > 0.55 * figure.width

    files, again = AnomalyDetector.load(detector_dir).score_files([digit_files / "new"])
    assert [str(f) for f in files] == [r["file"] for r in rows]
    assert again.tolist() == pytest.approx(scores, rel=1e-5)


@pytest.mark.slow
def test_the_default_detector_fitted_on_files_tells_sevens_from_other_digits(digit_files, tmp_path):
    detector = AnomalyDetector().fit_files([digit_files / "normal"], out=tmp_path / "detector")
    files, scores = AnomalyDetector.load(tmp_path / "detector").score_files([digit_files / "new"])
    is_anomaly = [f.parent.name != "7" for f in files]
    assert anomaly_metrics(is_anomaly, scores)["auroc"] > 0.85  # 0.924 measured
    assert detector.score_name() == "recon-mse-edge"
    others = sorted(p for p in (digit_files / "new").iterdir() if p.name != "7")
    report = detector.evaluate_files([digit_files / "new" / "7"], others)
    assert report.to_dict()["auroc"] == anomaly_metrics(is_anomaly, scores)["auroc"]
    assert not report.warnings


def test_scores_go_to_standard_output_without_csv(digit_files, detector_dir, capsys):
    seven = next((digit_files / "new" / "7").iterdir())
    assert main(["detector", "score", str(detector_dir), str(seven)]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header == "file,score,anomaly" and row.startswith(f"{seven},")


def test_a_maps_folder_that_cannot_be_made_fails_before_any_score_is_printed(
    digit_files, detector_dir, tmp_path, capsys
):
    seven = next((digit_files / "new" / "7").iterdir())
    (tmp_path / "taken").write_text("")
    maps = tmp_path / "taken" / "maps.png"
    assert main(["detector", "score", str(detector_dir), str(seven), "--maps", str(maps)]) == 1
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.startswith("vaelab: error: cannot create")


def test_a_csv_path_that_would_replace_an_image_or_a_script_is_refused(
    digit_files, detector_dir, capsys
):
    seven = next((digit_files / "new" / "7").iterdir())
    before = seven.read_bytes()
    for target in (seven, digit_files / "notes.txt", digit_files / "new"):
        args = ["detector", "score", str(detector_dir), str(seven), "--csv", str(target)]
        assert main(args) == 1
        assert capsys.readouterr().err == (
            f"vaelab: error: --csv {target} is not a .csv file name: the scores replace what "
            "the file holds, so name a file ending in .csv\n"
        )
    assert seven.read_bytes() == before and not (digit_files / "notes.txt").exists()


def test_a_size_no_model_can_take_is_refused_before_any_image_is_read(
    digit_files, tmp_path, capsys
):
    out = tmp_path / "huge"
    args = ["detector", "fit", str(digit_files / "normal"), "--image-size", "100000"]
    assert main([*args, "--out", str(out)]) == 1
    assert capsys.readouterr().err.startswith("vaelab: error: --image-size 100000 is not a side")
    assert not out.exists()


def test_fitting_into_a_saved_detector_is_refused_before_training(
    digit_files, detector_dir, capsys
):
    saved = (detector_dir / "detector.json").read_text()
    args = ["detector", "fit", str(digit_files / "normal"), "--out", str(detector_dir)]
    assert main(args) == 1
    assert capsys.readouterr().err == (
        f"vaelab: error: --out {detector_dir} already holds a run or a detector; choose "
        "another --out or delete it first\n"
    )
    assert (detector_dir / "detector.json").read_text() == saved


def test_bad_detector_settings_and_paths_are_one_line_errors(digit_files, tmp_path, capsys):
    normal = str(digit_files / "normal")
    cases = [
        (["fit", normal, "--out", str(tmp_path / "d"), "--fpr", "1.5"],
         "--fpr must be between 0 and 1, got 1.5"),
        (["fit", normal, "--out", str(tmp_path / "d"), "--score", "nope"],
         "unknown --score 'nope'; choose one of"),
        (["fit", str(tmp_path / "nothing"), "--out", str(tmp_path / "d")],
         "nothing: no such file or folder"),
        (["fit", next((digit_files / "normal").iterdir()).as_posix(), "--out", str(tmp_path / "d")],
         "cannot hold out --holdout 0.1 of 1 images for the threshold"),
        (["score", normal, normal], "detector.json not found: is"),
    ]  # fmt: skip
    for args, message in cases:
        assert main(["detector", *args]) == 1
        err = capsys.readouterr().err
        assert err.startswith("vaelab: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "d").exists()


@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript")),
    reason="the onnx extra is not installed (pip install 'vaelab[onnx]')",
)
def test_a_detector_fitted_on_files_exports_checked_on_more_files(
    digit_files, detector_dir, tmp_path, capsys
):
    out = tmp_path / "onnx"
    new = str(digit_files / "new")
    assert main(["export", str(detector_dir), "--images", new, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"on the {NEW_IMAGES} test images of {new}" in printed
    assert "images decided differently" in printed and "AUROC" not in printed
    check = json.loads((out / "card.json").read_text())["check"]
    assert check["decisions_differ"] == 0 and max(check["max_abs_diff"].values()) < 1e-4
    assert main(["export", str(detector_dir), "--images", new, "--normal", "7"]) == 1
    assert "--normal needs labelled test images (--dataset)" in capsys.readouterr().err


def test_a_maps_file_it_cannot_write_is_refused_before_scoring(
    digit_files, detector_dir, tmp_path, capsys
):
    scores_csv = tmp_path / "scores.csv"
    args = ["detector", "score", str(detector_dir), str(digit_files / "new"),
            "--csv", str(scores_csv), "--maps", str(tmp_path / "maps.txt")]  # fmt: skip
    assert main(args) == 1
    assert "--maps" in capsys.readouterr().err and not scores_csv.exists()
    (tmp_path / "figures").mkdir()
    assert main([*args[:-1], str(tmp_path / "figures")]) == 0
    assert (tmp_path / "figures" / "most_anomalous.png").exists()
    assert f"maps in {tmp_path / 'figures' / 'most_anomalous.png'}" in capsys.readouterr().err


def test_a_detector_fitted_on_files_is_plotted_where_no_test_set_is_needed(
    detector_dir, tmp_path, capsys
):
    assert describe(Run(detector_dir)) == "VAE (latent 16) fitted as a detector"  # its titles
    for kind in ("loss", "samples", "manifold", "traverse"):
        assert main(["plot", str(detector_dir), kind, "--out", str(tmp_path / kind)]) == 0
        assert (tmp_path / f"{kind}.png").exists()
    assert main(["plot", str(detector_dir), "reconstructions"]) == 1
    message = "names no test images to show; of its figures, samples, manifold, loss and traverse"
    assert message in capsys.readouterr().err
    assert main(["explore", str(detector_dir)]) == 1  # the explorer must be given images
    assert "give some with --images (image files or folders) or --dataset" in (
        capsys.readouterr().err
    )
    for command in ("eval", "anomaly"):
        assert main([command, str(detector_dir)]) == 1
        assert "names no dataset to load: score images with `vaelab detector score`" in (
            capsys.readouterr().err
        )


def test_evaluate_measures_each_anomalous_folder_and_what_the_threshold_flags(
    digit_files, detector_dir, tmp_path, capsys
):
    new, out = digit_files / "new", tmp_path / "evaluation"
    anomalous = [str(new / "1"), str(new / "3")]
    args = ["detector", "evaluate", str(detector_dir), "--normal", str(new / "7")]
    assert main([*args, "--anomalous", *anomalous, "--out", str(out)]) == 0
    printed, warned = capsys.readouterr()
    metrics = json.loads((out / "metrics.json").read_text())
    rows = list(csv.DictReader((out / "scores.csv").open()))
    files, scores = AnomalyDetector.load(detector_dir).score_files([new / "7", *anomalous])
    assert [r["file"] for r in rows] == [str(f) for f in files]
    assert [float(r["score"]) for r in rows] == pytest.approx(scores.tolist(), rel=1e-5)
    is_anomaly = [f.parent.name != "7" for f in files]
    assert metrics["auroc"] == pytest.approx(anomaly_metrics(is_anomaly, scores)["auroc"])
    assert list(metrics["per_source"]) == anomalous
    ones = [r for r in rows if r["source"] == anomalous[0]]
    assert (
        metrics["per_source"][anomalous[0]]["images"]
        == len(ones)
        == len(list((new / "1").iterdir()))
    )
    caught = sum(float(r["score"]) > metrics["threshold"] for r in ones) / len(ones)
    assert metrics["per_source"][anomalous[0]]["caught"] == pytest.approx(caught)
    assert printed.splitlines()[0].startswith(
        f"{metrics['n_normal']} normal images and {metrics['n_anomalous']} anomalous, score "
        f"recon-mse-edge: AUROC {metrics['auroc']:.4f}"
    )
    assert f"  {anomalous[1]}: " in printed
    assert "warning: the model reconstructs every image nearly the same way" in warned
    assert metrics["warnings"]  # 3 epochs leave it untrained, and the report says so
    for figure in ("roc.png", "score_histograms.png", "anomaly_maps.png"):
        assert (out / figure).stat().st_size > 10_000
    page = (out / "report.html").read_text()
    assert f"<th>AUROC, 3</th><td>{metrics['per_source'][anomalous[1]]['auroc']:.4f}</td>" in page
    assert f"<th>anomalous: 1</th><td>{len(ones)} images under {anomalous[0]}</td>" in page


def test_evaluate_refuses_an_image_given_as_normal_and_anomalous(
    digit_files, detector_dir, tmp_path, capsys
):
    seven = next((digit_files / "new" / "7").iterdir())
    args = ["detector", "evaluate", str(detector_dir), "--normal", str(seven.parent)]
    assert main([*args, "--anomalous", str(seven), "--out", str(tmp_path / "e")]) == 1
    assert capsys.readouterr().err == (
        f"vaelab: error: {seven} is under --normal and under --anomalous too; give each "
        "image once, as normal or as anomalous\n"
    )
    assert not (tmp_path / "e").exists()
    assert main([*args, "--anomalous", str(tmp_path / "none")]) == 1
    assert "none: no such file or folder" in capsys.readouterr().err
