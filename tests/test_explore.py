"""The latent explorer: its plane maps back to the latent space, its server decodes there."""

import base64
import io
import json
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from vaelab.cli import main
from vaelab.config import DEFAULT_SCORE, DataConfig, ModelConfig, RunConfig, TrainConfig
from vaelab.data import load
from vaelab.errors import VaelabError
from vaelab.explore import Explorer, make_server
from vaelab.explore.address import allowed_hosts, host_is_allowed, resolve
from vaelab.explore.drawing import PictureError
from vaelab.explore.pictures import png
from vaelab.explore.queries import End
from vaelab.figures import latent
from vaelab.figures.gifs import read_frames
from vaelab.figures.images import to_uint8
from vaelab.models import build
from vaelab.plotting import one_per_class
from vaelab.train import fit

NOISE_PNG = png(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8))


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory, tiny_run):
    return tiny_run(tmp_path_factory.mktemp("runs") / "vae", "vae", epochs=2)


@pytest.fixture(scope="module")
def explorer(vae_run):
    return Explorer.from_run(vae_run.path, count=300)


@pytest.fixture(scope="module")
def pca_explorer(tmp_path_factory, tiny_run):
    run = tiny_run(tmp_path_factory.mktemp("runs") / "vae4", "vae", epochs=1, latent_dim=4)
    return Explorer.from_run(run.path, count=200)


@pytest.fixture(scope="module")
def seven_explorer(tmp_path_factory):
    """A one-class run: trained on 7s only, validated on the test split's 7s."""
    config = RunConfig(
        DataConfig("mnist-sample", classes=[7], train_size=256),
        ModelConfig("vae"),
        TrainConfig(2, batch_size=64),
    )
    run = fit(config, tmp_path_factory.mktemp("runs") / "vae7", progress=False)
    return Explorer.from_run(run.path, count=200)


@pytest.fixture
def server(explorer):
    server = make_server(explorer, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def get(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.headers["Content-Type"], response.read()


def png_pixels(body: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(body)))


def test_a_2d_vae_is_explored_on_its_own_latent_plane(explorer):
    points = torch.tensor(explorer.view.points)
    assert torch.equal(explorer.view.to_latent(points), points)
    scatter = explorer.scatter()
    assert len(scatter["points"]) == 300 and scatter["axes"] == ["z[0]", "z[1]"]
    assert np.bincount(scatter["labels"]).tolist() == [30] * 10
    assert scatter["classes"] == [str(digit) for digit in range(10)]


def test_pca_plane_points_map_back_onto_the_plane_of_the_codes():
    model = build(ModelConfig("vae", latent_dim=5)).eval()
    codes = latent.codes(model, load("mnist-sample", "test").float()[:300])
    view = latent.plane(codes)
    back = view.to_latent(torch.tensor(view.points))
    assert back.shape == (300, 5)
    # what is lost is only the part of each code off the plane, and the plane point survives
    assert torch.allclose((codes - back) @ view.basis.T, torch.zeros(300, 2), atol=1e-4)
    assert np.allclose(((back - view.origin) @ view.basis.T).numpy(), view.points, atol=1e-4)


def test_the_server_decodes_the_point_it_is_asked_for(explorer, server):
    kind, body = get(f"{server}/decode?x=0.5&y=-1")
    expected = to_uint8(latent.decode(explorer.model, torch.tensor([[0.5, -1.0]])))[0]
    assert kind == "image/png" and np.array_equal(png_pixels(body), expected)
    _, elsewhere = get(f"{server}/decode?x=-2.5&y=2.5")
    assert np.abs(png_pixels(elsewhere).astype(int) - expected).max() > 20


def test_the_page_and_its_scatter_are_served(explorer, server):
    kind, page = get(f"{server}/")
    assert kind.startswith("text/html") and b'name="viewport"' in page and b"/explore.js" in page
    kind, script = get(f"{server}/explore.js")
    assert kind.startswith("text/javascript") and b"/points.json" in script
    assert b"innerHTML" not in script  # user strings go through textContent
    kind, body = get(f"{server}/points.json")
    assert kind == "application/json" and json.loads(body) == explorer.scatter()


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/decode?x=abc", 400, "two numbers"),
        ("/decode?x=0.5", 400, "two numbers"),
        ("/decode?x=nan&y=1", 400, "must be finite"),
        ("/decode?x=1e308&y=0", 400, "off the explorable plane"),
        ("/weights.safetensors", 404, "the explorer is at /"),
    ],
)
def test_bad_requests_get_a_clear_answer(server, path, status, message):
    with pytest.raises(urllib.error.HTTPError) as caught:
        get(server + path)
    assert caught.value.code == status and message in caught.value.read().decode()


def test_a_busy_port_is_a_clear_error(explorer, server):
    port = int(server.rsplit(":", 1)[1])
    with pytest.raises(
        VaelabError,
        match=f"cannot serve on 127.0.0.1:{port}.*choose another port \\(0 picks a free one\\)",
    ):
        make_server(explorer, port=port)


def test_cli_serves_until_ctrl_c(vae_run):
    """A real `vaelab explore`: it prints its address, answers there, stops cleanly on SIGINT."""
    args = [sys.executable, "-X", "faulthandler", "-m", "vaelab", "explore", str(vae_run.path),
            "--port", "0"]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [process.stdout.readline(), process.stdout.readline()]
        url = lines[1].split()[1]
        kind, body = get(f"{url}decode?x=0&y=0")
        assert kind == "image/png" and png_pixels(body).shape == (28, 28)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)  # faulthandler prints where each thread is
            pytest.fail(f"still serving 60 s after Ctrl-C:\n{process.communicate()[1][-6000:]}")
    assert lines[0].startswith("exploring VAE (latent 2) on mnist-sample")
    assert process.returncode == 0 and "stopped" in out and "Traceback" not in err


def test_cli_names_a_missing_run(tmp_path, capsys):
    assert main(["explore", str(tmp_path / "nowhere")]) == 1
    assert "run folder" in capsys.readouterr().err


def test_a_2d_vae_plane_spans_the_prior_bulk_and_the_data(explorer):
    x0, x1, y0, y1 = explorer.scatter()["extent"]
    points = explorer.view.points
    assert x0 <= -3 and x1 >= 3 and y0 <= -3 and y1 >= 3
    assert x0 <= points[:, 0].min() and x1 >= points[:, 0].max()
    assert y0 <= points[:, 1].min() and y1 >= points[:, 1].max()
    assert explorer.scatter()["equal_aspect"] and explorer.scatter()["prior_bulk"] == 3.0


def test_a_pca_plane_is_the_data_only_in_equal_units(pca_explorer):
    scatter = pca_explorer.scatter()
    assert scatter["axes"] == ["PC 1", "PC 2"] and scatter["equal_aspect"]
    assert scatter["prior_bulk"] is None
    x0, x1, _, _ = scatter["extent"]
    span = pca_explorer.view.points[:, 0].max() - pca_explorer.view.points[:, 0].min()
    assert x1 - x0 == pytest.approx(span * 1.1, rel=1e-3)


def test_the_dots_are_the_test_images_plot_draws(explorer):
    """The explorer's dots and `plotting.one_per_class` pick the same test images."""
    images, labels = one_per_class(explorer.test, len(explorer.shown))
    assert torch.equal(explorer.test.images[explorer.shown].float() / 255, images)
    assert explorer.scatter()["labels"] == labels.tolist()


def test_a_walk_between_test_images_is_the_gif_plot_writes(explorer, vae_run, tmp_path):
    start, end = End(test_image=3), End(test_image=17)
    options = explorer.walk_options(start, end, steps=6)
    walk = explorer.walk(options)
    assert len(walk["frames"]) == 6 and len(walk["points"]) == 6
    assert walk["points"][0] == pytest.approx(explorer.to_plane(codes_of(explorer, 3))[0], abs=1e-3)
    command = walk["command"].split()
    assert command[:4] == ["vaelab", "plot", str(vae_run.path), "interpolate"]
    assert main(command[1:] + ["--out", str(tmp_path / "cli.gif")]) == 0
    assert explorer.walk_gif(options) == (tmp_path / "cli.gif").read_bytes()


def test_a_walk_between_plane_points_is_the_gif_plot_writes(explorer, tmp_path):
    options = explorer.walk_options(End(point=(-2.0, 1.5)), End(point=(2.5, -0.5)), steps=4)
    walk = explorer.walk(options)
    assert walk["points"][0] == [-2.0, 1.5] and walk["points"][-1] == [2.5, -0.5]
    assert main(walk["command"].split()[1:] + ["--out", str(tmp_path / "cli.gif")]) == 0
    assert explorer.walk_gif(options) == (tmp_path / "cli.gif").read_bytes()
    assert len(read_frames(tmp_path / "cli.gif")) == 4


def codes_of(explorer, index):
    return latent.codes(explorer.model, explorer.test.float()[index : index + 1])


def test_a_test_digit_sent_as_a_picture_lands_on_its_own_code(explorer):
    """A test image already has the data's form, so fitting leaves it (nearly) as it is."""
    index = int(explorer.shown[7])
    pixels = explorer.test.images[index, 0].numpy()
    result = explorer.analyse(png(pixels))
    seen = data_pixels(result["input"]).astype(int)
    assert np.abs(seen - pixels).mean() < 12
    expected = explorer.to_plane(codes_of(explorer, index))[0]
    assert np.linalg.norm(np.array(result["point"]) - expected) < 0.5
    assert result["score"] > 0 and 0 <= result["share_below"] <= 1
    assert result["verdict"] is None  # trained on every class: no threshold
    error = data_pixels(result["error"])
    assert error.shape == (28, 28, 3)


def test_a_drawn_stroke_is_fitted_like_the_runs_digits(explorer):
    """A thin stroke in a corner of a large white canvas comes out bright on black, centred,
    as tall as a typical digit."""
    canvas = Image.new("L", (400, 300), 255)
    ImageDraw.Draw(canvas).line([(20, 20), (60, 120)], fill=0, width=12)
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG")
    seen = data_pixels(explorer.analyse(buffer.getvalue())["input"])
    rows, cols = np.nonzero(seen > 50)
    assert seen[0, 0] < 10 and seen.max() > 200
    assert 17 <= rows.max() - rows.min() + 1 <= 22
    assert abs(rows.mean() - 13.5) < 2 and abs(cols.mean() - 13.5) < 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not an image at all", "not an image"),
        (png(np.zeros((28, 28), np.uint8)), "no ink"),
        (NOISE_PNG[: len(NOISE_PNG) // 2], "damaged or truncated"),
        (b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, "damaged or truncated"),
    ],
)
def test_pictures_that_cannot_be_encoded_are_named(explorer, body, message):
    with pytest.raises(PictureError, match=message):
        explorer.analyse(body)


def test_a_one_class_run_calls_images_above_its_95th_percentile_anomalous(seven_explorer):
    threshold = seven_explorer.threshold
    card = seven_explorer.card()
    assert card["classes"] == ["7"] and card["threshold"] == pytest.approx(threshold.value)
    assert "validation images (test split)" in card["source"]
    flagged = np.mean([threshold.judge(v)["verdict"] == "anomalous" for v in threshold.reference])
    assert 0.03 <= flagged <= 0.07
    assert threshold.judge(threshold.value * 2) == {
        "score": threshold.value * 2,
        "share_below": 1.0,
        "verdict": "anomalous",
    }
    assert threshold.judge(float(threshold.reference[0]))["verdict"] == "normal"


def test_the_model_card_says_what_was_trained_and_warns_of_few_epochs(explorer, vae_run):
    card = explorer.card()
    assert card["dataset"] == "mnist-sample" and card["classes"] == "all"
    assert card["model"] == "vae" and card["latent_dim"] == 2 and not card["conditional"]
    assert card["parameters"] == sum(p.numel() for p in explorer.model.parameters())
    assert card["epochs"] == 2 and card["run"] == str(vae_run.path.resolve())
    last = vae_run.metrics()[-1]
    assert card["train_loss"] == last["train_loss"] and card["val_loss"] == last["val_loss"]
    assert "only 2 epochs" in card["warning"] and card["score"] == DEFAULT_SCORE


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_cli_refuses_ports_that_do_not_exist_in_one_line(vae_run, capsys, port):
    with pytest.raises(SystemExit):
        main(["explore", str(vae_run.path), "--port", port])
    err = capsys.readouterr().err
    assert "is not a port; choose 1 to 65535" in err and "Traceback" not in err


def test_cli_names_a_host_it_cannot_resolve(vae_run, capsys):
    assert main(["explore", str(vae_run.path), "--host", "no-such-host.invalid"]) == 1
    assert "neither an IP address nor a name" in capsys.readouterr().err


def test_an_ipv6_loopback_is_served_or_refused_clearly(explorer):
    try:
        server = make_server(explorer, "::1", 0)
    except VaelabError as err:  # a machine without IPv6
        assert "not on this machine; use host 127.0.0.1" in str(err)
        return
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        kind, _ = get(f"http://[::1]:{server.server_port}/decode?x=0&y=0")
        assert kind == "image/png"
    finally:
        server.shutdown()
        server.server_close()


def test_addresses_beyond_loopback_are_told_apart_with_usable_urls():
    everywhere = resolve("0.0.0.0")
    assert not everywhere.loopback and everywhere.everywhere
    assert everywhere.urls(8000) == [
        f"http://{socket.gethostname()}:8000/",
        "http://127.0.0.1:8000/",
    ]
    assert resolve("::1").loopback and resolve("::1").urls(8000) == ["http://[::1]:8000/"]
    assert resolve("localhost").loopback


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        ("127.0.0.1:8000", True),
        ("[::1]:8000", True),
        ("localhost:8000", True),
        ("app.localhost", True),
        ("evil.example:8000", False),
        ("", False),
        (None, False),
    ],
)
def test_only_ip_literals_and_this_machines_names_pass_the_host_check(header, allowed):
    assert host_is_allowed(header, allowed_hosts(resolve("127.0.0.1"))) == allowed


def data_pixels(url: str) -> np.ndarray:
    return png_pixels(base64.b64decode(url.removeprefix("data:image/png;base64,")))


def test_an_autoencoder_plane_is_its_data_with_no_prior(tmp_path, tiny_run):
    explorer = Explorer.from_run(tiny_run(tmp_path / "ae", "ae").path, count=100)
    assert explorer.scatter()["prior_bulk"] is None and not explorer.card()["generative"]
    with pytest.raises(VaelabError, match="Walk between two test images instead"):
        explorer.walk(explorer.walk_options(End(point=(0, 0)), End(point=(1, 1)), 4))
    assert (
        len(explorer.walk(explorer.walk_options(End(test_image=0), End(test_image=1), 4))["frames"])
        == 4
    )


def test_a_conditional_model_draws_the_class_picked(tmp_path, tiny_run):
    run = tiny_run(tmp_path / "cvae", "cvae", epochs=1, latent_dim=2)
    cvae = Explorer.from_run(run.path, count=100)
    card = cvae.card()
    assert card["conditional"] and card["score"] is None and len(card["label_names"]) == 10
    assert not np.array_equal(cvae.decode(0.5, 0.5, 3), cvae.decode(0.5, 0.5, 5))
    walk = cvae.walk(cvae.walk_options(End(point=(0, 0)), End(point=(1, 1)), 3, label=4))
    assert len(walk["frames"]) == 3 and walk["command"].endswith("--label 4")
    server = make_server(cvae, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        _, three = get(f"{url}/decode?x=0.5&y=0.5&label=3")
        assert np.array_equal(png_pixels(three), cvae.decode(0.5, 0.5, 3))
        with pytest.raises(urllib.error.HTTPError) as refused:
            get(f"{url}/decode?x=0.5&y=0.5&label=10")
        assert refused.value.code == 400
    finally:
        server.shutdown()
        server.server_close()


def test_a_label_for_an_unconditional_model_is_refused(server):
    with pytest.raises(urllib.error.HTTPError) as refused:
        get(f"{server}/decode?x=0&y=0&label=3")
    assert refused.value.code == 400
    assert b"not conditional" in refused.value.read()
