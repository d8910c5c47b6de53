"""`vaelab explore` over a user's own images: a detector fitted on image files (which names
no test set) shown the files it is to judge, with its own score and threshold."""

from __future__ import annotations

import http.client
import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import write_digit_files
from PIL import Image, ImageDraw

from vaelab.anomaly import AnomalyDetector
from vaelab.cli import main
from vaelab.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vaelab.data import load
from vaelab.errors import SettingError, VaelabError
from vaelab.explore import Explorer, make_server
from vaelab.explore.drawing import read_picture
from vaelab.explore.queries import End
from vaelab.train import fit

NORMAL_IMAGES = 300  # of the sample's 800 sevens: enough for the mechanics, quick to fit
NEW_IMAGES = 60


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory) -> Path:
    """Some of the sample's training sevens as 28x28 grey PNGs in normal/, and its first test
    images as 56x56 colour PNGs in new/<digit>/, as in tests/test_detector.py."""
    return write_digit_files(tmp_path_factory.mktemp("digits"), NORMAL_IMAGES, NEW_IMAGES)


@pytest.fixture(scope="module")
def detector_dir(digit_files: Path) -> Path:
    """A detector fitted by the command line on the sevens for 3 epochs: the mechanics only."""
    out = digit_files / "detector"
    args = ["detector", "fit", str(digit_files / "normal"), "--out", str(out), "--epochs", "3"]
    assert main([*args, "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def detector(detector_dir: Path) -> AnomalyDetector:
    return AnomalyDetector.load(detector_dir)


@pytest.fixture(scope="module")
def explorer(detector_dir: Path, digit_files: Path) -> Explorer:
    return Explorer.from_run(detector_dir, images=[digit_files / "new"])


@pytest.fixture(scope="module")
def port(explorer: Explorer):
    server = make_server(explorer, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()
    server.server_close()


def request(port: int, method: str, path: str, body: bytes | None = None):
    """(status, body) of one request to the explorer on 127.0.0.1."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def drawn_png() -> bytes:
    canvas = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(canvas).line([(140, 50), (140, 230)], fill=255, width=18)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_plane_draws_the_users_files_as_the_detector_reads_them(port, detector, digit_files):
    status, body = request(port, "GET", "/points.json")
    plane = json.loads(body)
    images, files = detector.read_files([digit_files / "new"])
    assert status == 200 and len(plane["points"]) == NEW_IMAGES
    assert plane["files"] == [str(file) for file in files]
    assert plane["labels"] is None and plane["classes"] == []  # no class, one colour
    assert plane["title"].endswith(f"codes of {NEW_IMAGES} images of {digit_files / 'new'}")
    assert "one colour" in plane["dots"] and "the detector's verdict" in plane["dots"]
    assert plane["scores"] == pytest.approx(detector.score_samples(images).tolist(), rel=1e-5)
    status, body = request(port, "GET", f"/test/{plane['images'][5]}.png")
    with Image.open(io.BytesIO(body)) as served:  # 56x56 colour read as 28x28 grey
        assert status == 200 and np.array_equal(np.asarray(served), images[5, 0].numpy())


def test_a_drawing_is_judged_at_the_detectors_own_threshold(port, explorer, detector, digit_files):
    _, card = request(port, "GET", "/card.json")
    card = json.loads(card)
    saved = json.loads((Path(card["run"]) / "detector.json").read_text())
    assert card["score"] == detector.score_name() == "recon-mse-edge"
    assert card["threshold"] == saved["threshold"] and card["quantile"] == 1 - detector.fpr
    assert "held out from training (10% of those it was given)" in card["rule"]
    assert card["source"] == f"the {NEW_IMAGES} images of {digit_files / 'new'} on the plane"
    assert card["classes"] == "its normal images only (an anomaly detector)"

    status, body = request(port, "POST", "/analyse", drawn_png())
    result = json.loads(body)
    seen = explorer.model_input(read_picture(drawn_png()))
    assert status == 200 and result["score"] == pytest.approx(detector.score_samples(seen)[0])
    assert result["verdict"] == ("anomalous" if result["score"] > card["threshold"] else "normal")
    shown = np.array(explorer.scores)
    assert result["share_below"] == pytest.approx(np.mean(shown < result["score"]))
    assert explorer.threshold.judge(2 * card["threshold"])["verdict"] == "anomalous"
    assert explorer.threshold.judge(card["threshold"] / 2)["verdict"] == "normal"


def test_a_walk_between_two_files_is_the_walk_between_their_codes(explorer, detector_dir, tmp_path):
    options = explorer.walk_options(End(test_image=0), End(test_image=7), steps=5)
    walk = explorer.walk(options)
    command = walk["command"].split()
    assert command[:4] == ["vaelab", "plot", str(detector_dir), "interpolate"]
    assert "--from" in command and "--images" not in command  # no test set indexes them
    assert walk["points"][0] == pytest.approx(explorer.view.points[0], abs=1e-3)
    assert walk["points"][-1] == pytest.approx(explorer.view.points[7], abs=1e-3)
    assert main(command[1:] + ["--out", str(tmp_path / "cli.gif")]) == 0
    assert explorer.walk_gif(options) == (tmp_path / "cli.gif").read_bytes()


def test_a_detector_is_shown_a_datasets_test_split(detector_dir, detector):
    explorer = Explorer.from_run(detector_dir, dataset="mnist-sample", count=50)
    plane = explorer.scatter()
    assert plane["labels"][:10] == list(range(10)) and plane["files"] is None
    assert plane["title"].endswith("codes of 50 test images of mnist-sample")
    assert explorer.card()["threshold"] == detector.threshold_
    images = load("mnist-sample", "test").images[explorer.shown]
    assert plane["scores"] == pytest.approx(detector.score_samples(images).tolist(), rel=1e-5)


def test_a_detector_without_images_or_dataset_is_a_one_line_error(detector_dir, capsys):
    assert main(["explore", str(detector_dir)]) == 1
    assert capsys.readouterr().err == (
        f"vaelab: error: {detector_dir} is a detector fitted on arrays or image files, so it "
        "names no test images to show: give some with --images (image files or folders) or "
        "--dataset (e.g. mnist, or a folder of class subfolders)\n"
    )
    with pytest.raises(SettingError, match="give some with images") as caught:
        Explorer.from_run(detector_dir)
    assert caught.value.settings == ("images", "dataset")


def test_bad_paths_are_the_errors_the_detector_commands_give(detector_dir, digit_files, capsys):
    not_an_image = digit_files / "notes.txt"
    not_an_image.write_text("not an image")
    for path in (digit_files / "nothing", not_an_image):
        assert main(["detector", "score", str(detector_dir), str(path)]) == 1
        expected = capsys.readouterr().err
        assert main(["explore", str(detector_dir), "--images", str(path)]) == 1
        assert capsys.readouterr().err == expected and expected.count("\n") == 1
        assert str(path) in expected


def test_a_score_other_than_the_detectors_own_is_refused(detector_dir, digit_files, capsys):
    new = str(digit_files / "new")
    assert main(["explore", str(detector_dir), "--images", new, "--score", "elbo"]) == 1
    assert capsys.readouterr().err == (
        f"vaelab: error: {detector_dir} is a detector that scores with recon-mse-edge, and its "
        "threshold holds for that score only; leave out --score or fit a detector with elbo\n"
    )
    assert main(["explore", str(detector_dir), "--images", new, "--samples", "3"]) == 1
    assert "leave out --samples" in capsys.readouterr().err
    own = Explorer.from_run(detector_dir, count=10, score="recon-mse-edge", images=[new])
    assert own.threshold.score == "recon-mse-edge"


def test_a_run_explores_image_files_against_its_own_validation_images(tmp_path, digit_files):
    """A one-class run keeps its threshold (its validation sevens) and its classes' names
    over unlabelled files, which get no hover score."""
    config = RunConfig(
        DataConfig("mnist-sample", classes=[7], train_size=256),
        ModelConfig("vae"),
        TrainConfig(1, batch_size=64),
    )
    run = fit(config, tmp_path / "vae7", progress=False)
    explorer = Explorer.from_run(run.path, images=[digit_files / "new"])
    plane, card = explorer.scatter(), explorer.card()
    assert len(plane["points"]) == NEW_IMAGES and plane["labels"] is None
    assert plane["scores"] is None and "verdict" not in plane["dots"]
    assert card["classes"] == ["7"] and card["score"] == "recon-mse"
    assert "validation images (test split)" in card["source"]
    assert card["threshold"] == pytest.approx(np.quantile(explorer.threshold.reference, 0.95))
    assert explorer.analyse(drawn_png())["verdict"] in ("normal", "anomalous")


def test_models_that_cannot_take_the_files_say_why(tmp_path, tiny_run, digit_files):
    new = [digit_files / "new"]
    cvae = tiny_run(tmp_path / "cvae", "cvae", latent_dim=2)
    with pytest.raises(SettingError, match="conditional: it encodes each image with its label"):
        Explorer.from_run(cvae.path, images=new)
    ae = Explorer.from_run(tiny_run(tmp_path / "ae", "ae").path, count=20, images=new)
    with pytest.raises(VaelabError, match="walked between its run's own test images only"):
        ae.walk_options(End(test_image=0), End(test_image=1), 4)
