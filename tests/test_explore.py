"""The latent explorer: its plane maps back to the latent space, its server decodes there."""

import io
import json
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from vaelab.cli import main
from vaelab.config import ModelConfig
from vaelab.data import load
from vaelab.errors import VaelabError
from vaelab.explore import Explorer, make_server
from vaelab.figures import latent
from vaelab.figures.images import to_uint8
from vaelab.models import build


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory, tiny_run):
    return tiny_run(tmp_path_factory.mktemp("runs") / "vae", "vae", epochs=2)


@pytest.fixture(scope="module")
def explorer(vae_run):
    return Explorer.from_run(vae_run.path, count=300)


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
    assert kind.startswith("text/html") and b"/points.json" in page and b"/decode?x=" in page
    kind, body = get(f"{server}/points.json")
    assert kind == "application/json" and json.loads(body) == explorer.scatter()


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/decode?x=abc", 400, "two numbers"),
        ("/decode?x=0.5", 400, "two numbers"),
        ("/decode?x=nan&y=1", 400, "must be finite"),
        ("/weights.safetensors", 404, "the explorer is at /"),
    ],
)
def test_bad_requests_get_a_clear_answer(server, path, status, message):
    with pytest.raises(urllib.error.HTTPError) as caught:
        get(server + path)
    assert caught.value.code == status and message in caught.value.read().decode()


def test_a_busy_port_is_a_clear_error(explorer, server):
    port = int(server.rsplit(":", 1)[1])
    with pytest.raises(VaelabError, match=f"cannot serve on 127.0.0.1:{port}.*--port"):
        make_server(explorer, port=port)


def test_cli_serves_until_ctrl_c(vae_run):
    """A real `vaelab explore`: it prints its address, answers there, stops cleanly on SIGINT."""
    args = [sys.executable, "-m", "vaelab", "explore", str(vae_run.path), "--port", "0"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [process.stdout.readline(), process.stdout.readline()]
        url = lines[1].split()[1]
        kind, body = get(f"{url}decode?x=0&y=0")
        assert kind == "image/png" and png_pixels(body).shape == (28, 28)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert lines[0].startswith("exploring VAE (latent 2) on mnist-sample")
    assert process.returncode == 0 and "stopped" in out and "Traceback" not in err


def test_cli_names_a_missing_run(tmp_path, capsys):
    assert main(["explore", str(tmp_path / "nowhere")]) == 1
    assert "run folder" in capsys.readouterr().err
