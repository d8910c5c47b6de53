import csv
import json

import numpy as np
import pytest
import torch

from vaelab.anomaly import (
    AnomalyDetector,
    analyze_run,
    anomaly_metrics,
    as_images,
    metrics_by_class,
)
from vaelab.cli import main
from vaelab.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vaelab.data import load
from vaelab.diagnostics import UntrainedModelWarning
from vaelab.errors import VaelabError
from vaelab.train import fit


def test_metrics_on_a_case_worked_by_hand():
    is_anomaly = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=bool)
    score = np.array([0, 1, 2, 3, 2.5, 4, 5, 6])
    metrics = anomaly_metrics(is_anomaly, score)
    # 2.5 beats 3 of the 4 normal scores, the others beat all: 15 of 16 pairs
    assert metrics["auroc"] == pytest.approx(15 / 16)
    # ranked: A A A N A ...: precision 1, 1, 1 then 4/5 at the last anomaly
    assert metrics["aupr"] == pytest.approx(0.25 * (1 + 1 + 1 + 0.8))
    # catching 95% of 4 anomalies means catching all 4: threshold 2.5 lets normal 3 through
    assert metrics["fpr_at_95_tpr"] == pytest.approx(0.25)
    # normals as positives, lowest score first: N N N A N ...: precision 1, 1, 1, 4/5
    assert metrics["aupr_normal"] == pytest.approx(0.25 * (1 + 1 + 1 + 0.8))


def lowest_fpr_catching(share: float, is_anomaly: np.ndarray, score: np.ndarray) -> float:
    """The share of normal images flagged by the highest threshold that flags `share` of the
    anomalies, by trying every threshold."""
    rates = [
        (score[~is_anomaly] >= t).mean()
        for t in np.unique(score)
        if (score[is_anomaly] >= t).mean() >= share
    ]
    return float(min(rates))


def test_fpr_at_95_tpr_is_exact_when_scores_tie():
    is_anomaly = np.repeat([True, False], 20)
    for seed in range(200):  # seed 6 ties at the very threshold where 95% are first caught
        score = np.random.default_rng(seed).integers(0, 8, 40) + 2.0 * is_anomaly
        expected = lowest_fpr_catching(0.95, is_anomaly, score)
        assert anomaly_metrics(is_anomaly, score)["fpr_at_95_tpr"] == expected, seed


def test_metrics_of_perfect_and_reversed_scores():
    is_anomaly = np.array([0, 0, 1, 1], dtype=bool)
    assert anomaly_metrics(is_anomaly, np.array([0, 1, 2, 3]))["auroc"] == 1
    assert anomaly_metrics(is_anomaly, np.array([0, 1, 2, 3]))["fpr_at_95_tpr"] == 0
    assert anomaly_metrics(is_anomaly, np.array([3, 2, 1, 0]))["auroc"] == 0


def test_metrics_need_both_kinds_and_finite_scores():
    with pytest.raises(VaelabError, match="both normal and anomalous"):
        anomaly_metrics(np.zeros(4, dtype=bool), np.arange(4.0))
    with pytest.raises(VaelabError, match="not finite"):
        anomaly_metrics(np.array([0, 1], dtype=bool), np.array([0.0, np.nan]))


def test_metrics_by_class_compare_each_anomalous_class_with_the_normal_ones():
    labels = np.array([7, 7, 1, 1, 3, 3])
    score = np.array([0.0, 1.0, 5.0, 6.0, 0.5, 0.7])
    result = metrics_by_class(labels, score, [7])
    assert sorted(result["per_class"]) == [1, 3]
    assert result["per_class"][1]["auroc"] == 1
    assert result["per_class"][3]["auroc"] == pytest.approx(0.5)
    assert result["overall"]["auroc"] == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("x", "shape"),
    [
        (np.zeros((3, 28, 28), np.uint8), (3, 1, 28, 28)),
        (np.zeros((3, 1, 28, 28), np.float32), (3, 1, 28, 28)),
        (np.zeros((3, 784), np.float64), (3, 1, 28, 28)),
        (torch.zeros(3, 28, 28, dtype=torch.uint8), (3, 1, 28, 28)),
    ],
)
def test_images_in_every_accepted_form(x, shape):
    images = as_images(x)
    assert images.shape == shape and images.dtype == torch.float32


def test_uint8_images_are_scaled_to_unit_range():
    assert as_images(np.full((1, 28, 28), 255, np.uint8)).max() == 1


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros((0, 28, 28), np.uint8), "empty"),
        (np.full((2, 28, 28), np.nan, np.float32), "NaN"),
        (np.full((2, 28, 28), 255.0), r"\[0, 1\].*divide"),
        (np.zeros((2, 28, 28), np.int32), "uint8 .* or float"),
        (np.zeros((2, 5, 28, 28, 1), np.uint8), "shaped"),
        (np.zeros((2, 783), np.uint8), "shaped"),
        ([[0.0] * 784], "NumPy array or a torch tensor"),
        (np.full((2, 28, 28), "0"), "numeric array, got dtype <U1"),
    ],
)
def test_bad_images_are_rejected_clearly(x, message):
    with pytest.raises(VaelabError, match=message):
        as_images(x)


@pytest.fixture(scope="module")
def sevens():
    train = load("mnist-sample", "train").with_classes([7]).first(300)
    return train.images[:, 0].numpy()


@pytest.fixture(scope="module")
def detector(sevens):
    torch.manual_seed(0)
    # two epochs only: the ELBO already separates; squared error needs a trained decoder,
    # and the detector says its reconstructions are still nearly all alike
    detector = AnomalyDetector(
        ModelConfig("vae", latent_dim=4), TrainConfig(epochs=2, device="cpu"), "elbo", samples=2
    )
    with pytest.warns(UntrainedModelWarning, match="reconstructs every image nearly the same"):
        return detector.fit(sevens)


def test_detector_scores_other_digits_higher(detector):
    test = load("mnist-sample", "test")
    x = test.images.numpy()
    is_anomaly = test.labels.numpy() != 7
    assert anomaly_metrics(is_anomaly, detector.score_samples(x))["auroc"] > 0.55
    flags = detector.predict(x)
    assert set(np.unique(flags)) <= {0, 1}
    assert flags[is_anomaly].mean() > flags[~is_anomaly].mean()


def test_detector_threshold_flags_the_chosen_share_of_held_out_normals(detector, sevens):
    assert detector.threshold_ > 0
    assert detector.get_params()["fpr"] == 0.05
    # 30 of the 300 sevens held out: 5% of them is 1.5 images, so 2 score above
    assert detector.held_out_flagged_ == 2 / 30
    assert len(detector.history_) == 2


def test_detector_save_load_round_trip_gives_identical_scores(detector, sevens, tmp_path):
    path = detector.save(tmp_path / "detector")
    assert AnomalyDetector.load(path).held_out_flagged_ == detector.held_out_flagged_
    assert (path / "weights.safetensors").exists() and (path / "detector.json").exists()
    loaded = AnomalyDetector.load(path)
    np.testing.assert_array_equal(loaded.score_samples(sevens), detector.score_samples(sevens))
    assert loaded.threshold_ == detector.threshold_
    assert loaded.get_params() == detector.get_params()


def test_detector_rejects_images_of_another_size(detector):
    with pytest.raises(VaelabError, match=r"fitted on \(1, 28, 28\)"):
        detector.score_samples(np.zeros((2, 3, 28, 28), np.uint8))


def test_detector_misuse_is_clear(tmp_path, sevens):
    with pytest.raises(VaelabError, match="not fitted"):
        AnomalyDetector().score_samples(sevens)
    with pytest.raises(VaelabError, match="needs a model with a posterior"):
        AnomalyDetector(model="ae", score="elbo").fit(sevens)
    with pytest.raises(VaelabError, match="unknown score"):
        AnomalyDetector(score="nll").fit(sevens)
    with pytest.raises(VaelabError, match="not found"):
        AnomalyDetector.load(tmp_path)
    with pytest.raises(VaelabError, match="takes 28x28 images"):
        AnomalyDetector(train=TrainConfig(epochs=1)).fit(np.zeros((20, 32, 32), np.uint8))


def test_cli_anomaly_end_to_end(tmp_path, capsys):
    run = tmp_path / "run"
    train = ["train", "vae", "--dataset", "mnist-sample", "--classes", "7", "--train-size", "200"]
    assert main([*train, "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    out = tmp_path / "anomaly"
    assert main(["anomaly", str(run), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "AUROC" in printed.out
    # one epoch on 200 sevens: every reconstruction is the same grey square
    assert "warning: the model reconstructs every image nearly the same way" in printed.err
    assert "Train for more epochs" in printed.err
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["warnings"]) == 1
    assert metrics["normal_classes"] == [7] and metrics["score"] == "recon-mse"
    assert sorted(map(int, metrics["per_class"])) == [0, 1, 2, 3, 4, 5, 6, 8, 9]
    assert 0 <= metrics["overall"]["auroc"] <= 1
    rows = list(csv.DictReader((out / "scores.csv").read_text().splitlines()))
    assert len(rows) == 2000 and set(rows[0]) == {"index", "label", "score"}
    from_file = [float(r["score"]) for r in rows], [int(r["label"]) != 7 for r in rows]
    assert anomaly_metrics(from_file[1], from_file[0]) == metrics["overall"]
    for name in ("roc.png", "score_histograms.png", "anomaly_maps.png"):
        assert (out / name).stat().st_size > 10_000
    # recon-mse draws no posterior samples, so --samples would silently change nothing
    assert main(["anomaly", str(run), "--samples", "2", "--out", str(tmp_path / "again")]) == 1
    assert capsys.readouterr().err.strip() == (
        "vaelab: error: --samples 2 is for the scores that draw posterior samples (elbo, iwae); "
        "--score recon-mse draws none: leave --samples out"
    )
    assert not (tmp_path / "again").exists()
    page = (out / "report.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == 3  # opens with no network
    assert f"<td>{metrics['overall']['auroc']:.4f}</td>" in page
    assert "<th>AUROC, 3</th>" in page and "the model reconstructs every image" in page
    assert f"wrote metrics.json, scores.csv, figures and report.html to {out}" in printed.out


def test_a_trained_model_is_not_called_untrained(tmp_path):
    # 300 steps on the 800 sevens: reconstructions follow the input (spread 0.12, from 0.07
    # after 250 steps and under 0.01 before 200)
    config = RunConfig(
        DataConfig("mnist-sample", classes=[7]), ModelConfig("vae"), TrainConfig(6, 16)
    )
    report = analyze_run(fit(config, tmp_path / "run", progress=False))
    assert report.warnings == []
    assert report.metrics["overall"]["auroc"] > 0.7


def test_cli_anomaly_errors(tmp_path, capsys):
    run = tmp_path / "run"
    train = ["train", "ae", "--dataset", "mnist-sample", "--train-size", "64", "--epochs", "1"]
    assert main([*train, "--out", str(run), "--quiet"]) == 0
    assert main(["anomaly", str(run)]) == 1
    assert "--normal" in capsys.readouterr().err
    assert main(["anomaly", str(run), "--score", "bogus"]) == 1  # the first mistake is named
    assert "unknown --score 'bogus'" in capsys.readouterr().err
    assert main(["anomaly", str(run), "--normal", "3", "--out", str(tmp_path / "ae")]) == 0
    assert main(["anomaly", str(run), "--normal", "3", "--score", "elbo"]) == 1
    assert capsys.readouterr().err.endswith(
        "needs a model with a posterior q(z|x) (a VAE); ae has none: use one that needs none "
        "(recon-bce, recon-mse, recon-mse-edge)\n"
    )


def test_metrics_of_scores_and_flags_that_do_not_pair_up_are_refused():
    with pytest.raises(VaelabError, match=r"got \(3,\) scores and \(4,\) flags"):
        anomaly_metrics(np.array([0, 0, 1, 1], dtype=bool), np.arange(3.0))


def test_a_score_refuses_options_it_does_not_read():
    from vaelab.config import ModelConfig as Config
    from vaelab.errors import SettingError
    from vaelab.models import build
    from vaelab.scores import score

    vae, images = build(Config("vae")), torch.rand(2, 1, 28, 28)
    with pytest.raises(
        SettingError, match="score 'recon-mse' takes no option samples .it draws no"
    ):
        score(vae, images, "recon-mse", samples=3)
    with pytest.raises(SettingError, match="score 'elbo' takes no option sample$"):
        score(vae, images, "elbo", sample=3)
    assert score(vae, images, "elbo", samples=2, seed=1).shape == (2,)
