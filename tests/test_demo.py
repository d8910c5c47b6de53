import contextlib
import dataclasses
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

import vaelab.demo
from vaelab.anomaly import analyze_run
from vaelab.cli import main
from vaelab.demo import CONTINUAL, FULL, SAMPLE, STAGES, Schedule, demo
from vaelab.errors import SettingError, VaelabError
from vaelab.figures.gifs import read_frames
from vaelab.run import Run

FIGURES = [
    "ae_training.gif",
    "ae_reconstructions.png",
    "ae_adam_training.gif",
    "ae_adam_reconstructions.png",
    "vae_latent_scatter.png",
    "vae_manifold.png",
    "vae_interpolation.gif",
    "loss_curves.png",
    "vae7_manifold.png",
    "anomaly_maps.png",
    "continual/comparison.png",
    "continual/naive/dream_composition.png",
    "continual/generative-replay/dream_composition.png",
    "continual/naive/memory_manifold.gif",
]
QUICK = Schedule(
    "mnist-sample",
    ae_epochs=2,
    ae_train_size=256,
    ae_adam_epochs=2,
    ae_adam_train_size=256,
    vae_epochs=1,
    vae_train_size=512,
    vae7_epochs=2,
    vae7_train_size=256,
    continual=dataclasses.replace(
        CONTINUAL,
        order=[7, 0, 1],
        train=dataclasses.replace(CONTINUAL.train, epochs=1),
        train_size=64,
    ),
)


@pytest.fixture(scope="module")
def demo_command(tmp_path_factory):
    """`vaelab demo` on a shortened schedule; returns the report and what it printed."""
    out = tmp_path_factory.mktemp("demo") / "out"
    printed, warned = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:  # the dream classifier goes to a fresh cache
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        patch.setattr(vaelab.demo, "SAMPLE", QUICK)
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(warned):
            assert main(["demo", "--out", str(out), "--quiet"]) == 0
    assert all(line.startswith("vaelab: warning: ") for line in warned.getvalue().splitlines())
    return out / "report.html", printed.getvalue()


@pytest.fixture(scope="module")
def quick_demo(demo_command):
    return demo_command[0]


def test_demo_writes_every_figure_and_a_report_that_shows_them_in_order(quick_demo):
    report = quick_demo
    out = report.parent
    assert report == out / "report.html"
    page = report.read_text()
    positions = []
    for name in FIGURES:
        assert (out / name).stat().st_size > 1000, name
        assert f'href="{name}"' in page, name
        positions.append(page.index(f'alt="{name}"'))
    assert positions == sorted(positions)  # the article's order
    assert page.count("<figure>") == len(FIGURES)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<script" not in page and "<link" not in page


def test_demo_trains_real_run_folders_with_the_schedule(quick_demo):
    out = quick_demo.parent
    expected = {
        "ae": (2, "adadelta", 256, None),
        "ae-adam": (2, "adam", 256, None),
        "vae": (1, "adam", 512, None),
        "vae7": (2, "adam", 256, [7]),
    }
    for name, (epochs, optimizer, size, classes) in expected.items():
        run = out / "runs" / name
        config = json.loads((run / "config.json").read_text())
        assert config["train"]["epochs"] == epochs and config["train"]["optimizer"] == optimizer
        assert config["data"]["train_size"] == size and config["data"]["classes"] == classes
        assert config["data"]["validation"] == "test"
        assert len((run / "metrics.jsonl").read_text().splitlines()) == epochs
        assert (run / "weights.safetensors").exists()
    page = quick_demo.read_text()
    for name in expected:
        assert f'href="runs/{name}/"' in page
    assert f"vaelab explore {quick_demo.parent / 'runs' / 'vae'}" in page


def test_report_says_what_produced_the_figures(quick_demo):
    page = quick_demo.read_text()
    assert "256 training images, validated on 2,000 test images" in page  # the AE
    assert "256 training images, validated on 200 test images" in page  # the sevens
    assert page.count("seed 0") == 5  # four runs and the continual protocol
    assert re.search(r"total wall time</th><td>[0-9.]+ s|total wall time</th><td>\d+ min", page)
    assert re.search(r"the seven ranks \d+ of 10 from least anomalous", page)
    sevens = Run(quick_demo.parent / "runs" / "vae7")
    auroc = {
        score: f"{analyze_run(sevens, score=score).metrics['overall']['auroc']:.3f}"
        for score in ("recon-bce", "recon-mse")
    }
    assert f"recon-bce, tells sevens from the other digits with AUROC {auroc['recon-bce']}" in page
    assert (
        f"recon-mse, the default of <code>vaelab anomaly</code>, with {auroc['recon-mse']}" in page
    )
    assert 'href="continual/report.html"' in page
    assert (quick_demo.parent / "continual" / "report.html").exists()


def test_training_gif_has_a_changing_frame_per_epoch(quick_demo):
    frames = read_frames(quick_demo.parent / "ae_training.gif")
    assert len(frames) == QUICK.ae_epochs
    assert not np.array_equal(frames[0], frames[1])
    walk = read_frames(quick_demo.parent / "vae_interpolation.gif")
    assert len(walk) == 8
    with Image.open(quick_demo.parent / "vae_manifold.png") as manifold:
        assert min(manifold.size) >= 15 * 28


def test_the_two_autoencoders_say_which_is_which(quick_demo):
    page = quick_demo.read_text()
    assert "1. An autoencoder learns, as in the article" in page
    assert "2. The same autoencoder, trained until it works" in page
    assert "The article&#x27;s autoencoder (Adadelta, the first 256 images)" in page
    assert "The same autoencoder trained with Adam" in page
    assert "AE with Adam 2 epochs on the first 256 images" in page  # the schedule's record


def test_the_demo_command_prints_its_last_line_once(demo_command):
    report, printed = demo_command
    (line,) = printed.strip().splitlines()
    took = r"([0-9.]+ s|\d+ min \d\d s)"
    assert re.fullmatch(f"wrote {re.escape(str(report))} and its figures in {took}; open it "
                        "in a browser", line)  # fmt: skip


def test_a_bad_schedule_is_refused_before_anything_trains(tmp_path):
    bad = dataclasses.replace(QUICK, continual=dataclasses.replace(QUICK.continual, order=[7, 7]))
    with pytest.raises(SettingError, match="order needs two or more different digits"):
        demo(tmp_path / "out", schedule=bad, progress=False)
    assert not (tmp_path / "out" / "runs").exists()


def test_demo_refuses_to_overwrite_a_finished_demo(quick_demo):
    with pytest.raises(VaelabError, match="is not empty"):
        demo(quick_demo.parent, schedule=QUICK, progress=False)


def test_demo_refuses_a_folder_of_other_files_before_anything_trains(tmp_path):
    (tmp_path / "runs" / "mine").mkdir(parents=True)
    with pytest.raises(VaelabError, match=f"^{tmp_path} is not empty .*delete {tmp_path} first$"):
        demo(tmp_path, schedule=QUICK, progress=False)
    assert list(tmp_path.iterdir()) == [tmp_path / "runs"]


def test_schedules_follow_the_article_and_the_time_budget():
    names = [stage.__name__ for stage in STAGES]
    assert names == ["autoencoder", "working_autoencoder", "vae", "sevens", "remembers"]
    assert (FULL.dataset, FULL.ae_epochs, FULL.ae_train_size, FULL.vae_epochs) == (
        "mnist",
        10,
        1000,
        100,
    )
    assert FULL.vae_train_size is None and FULL.vae7_train_size is None
    assert (SAMPLE.ae_epochs, SAMPLE.ae_train_size) == (10, 1000)
    assert SAMPLE.ae_adam_train_size is None and SAMPLE.ae_adam_epochs == 15
    images = (
        SAMPLE.ae_epochs * SAMPLE.ae_train_size
        + SAMPLE.ae_adam_epochs * 8000
        + SAMPLE.vae_epochs * 8000
        + SAMPLE.vae7_epochs * 800
    )
    assert images <= 460_000  # about a minute at ~7,000 images/s, leaving room for figures


def test_cli_demo_help_and_missing_full_mnist(isolated_data_env, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    assert "--full" in capsys.readouterr().out
    assert main(["demo", "--out", str(tmp_path / "x"), "--full", "--quiet"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("vaelab: error:") and "mnist" in error and error.count("\n") == 1


@pytest.mark.slow
def test_default_demo_on_the_sample(tmp_path):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--quiet"]) == 0
    for name in FIGURES:
        assert (tmp_path / "demo" / name).exists()
    final = {
        name: json.loads((tmp_path / "demo" / "runs" / name / "metrics.jsonl").read_text()
                         .splitlines()[-1])["val_loss"]
        for name in ("ae", "ae-adam")
    }  # fmt: skip
    assert final["ae-adam"] < 0.16 < 0.2 < final["ae"]  # digits (about 0.13) against grey blobs


@pytest.mark.slow
def test_demo_on_full_mnist_with_a_short_schedule(mnist_dir, tmp_path):
    short = Schedule(
        "mnist", ae_epochs=1, vae_epochs=1, vae_train_size=256, vae7_epochs=1, vae7_train_size=256
    )
    report = demo(tmp_path / "full", data_dir=str(mnist_dir), schedule=short, progress=False)
    page = report.read_text()
    assert "1,000 training images, validated on 10,000 test images" in page  # the article's AE
    assert "validated on 1,028 test images" in page  # MNIST's test sevens
