"""The explorer's server over real HTTP on 127.0.0.1: bad input, bursts, silence, hang-ups."""

import base64
import http.client
import io
import json
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from vaelab import latent_usage
from vaelab.explore import Explorer, make_server
from vaelab.explore.pictures import png
from vaelab.explore.queries import End
from vaelab.figures import latent
from vaelab.figures.images import to_uint8

TIMEOUT = 1.0  # the server's per-connection timeout in these tests, seconds


@pytest.fixture(scope="module")
def explorer(tmp_path_factory, tiny_run):
    run = tiny_run(tmp_path_factory.mktemp("runs") / "vae", "vae", epochs=1)
    return Explorer.from_run(run.path, count=200)


@pytest.fixture(scope="module")
def wide(tmp_path_factory, tiny_run):
    """A 10-D beta-VAE's explorer: its page gets a slider per latent dimension."""
    run = tiny_run(tmp_path_factory.mktemp("runs") / "beta-vae", "beta-vae", epochs=1)
    return Explorer.from_run(run.path, count=200)


@contextmanager
def serving(explorer):
    """The port of a server for `explorer`, shut down at the end of the block."""
    server = make_server(explorer, port=0, connection_timeout=TIMEOUT)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def port(explorer):
    with serving(explorer) as port:
        yield port


@pytest.fixture(scope="module")
def wide_port(wide):
    with serving(wide) as port:
        yield port


def request(port, method, path, body=None, headers=None):
    """(status, headers, body) of one request on a fresh connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def still_serving(port):
    status, headers, body = request(port, "GET", "/decode?x=0&y=0")
    return status == 200 and headers["Content-Type"] == "image/png" and body[:4] == b"\x89PNG"


def drawn_png():
    canvas = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(canvas).line([(140, 50), (140, 230)], fill=255, width=18)
    return encoded(np.asarray(canvas), "PNG")


BAD_GETS = [
    ("/decode?x=abc&y=0", 400, "x must be a number"),
    ("/decode?x=0.5", 400, "two numbers"),
    ("/decode?x=nan&y=1", 400, "must be finite"),
    ("/decode?x=0&y=-inf", 400, "must be finite"),
    ("/decode?x=1e308&y=0", 400, "off the explorable plane"),
    ("/decode?x=1&x=2&y=0", 400, "give x once"),
    ("/decode?x=1&&y=2", 400, "malformed"),
    ("/walk.json?from=test:99999&to=test:1", 400, "out of range"),
    ("/walk.json?from=test:1&to=0,0", 400, "not one of each"),
    ("/walk.json?from=1,2,3&to=0,0", 400, "must be test:INDEX or X,Y"),
    ("/walk.json?from=0,0&to=1,1&steps=1000", 400, "steps=1000 is out of range"),
    ("/walk.json?from=0,0", 400, "give to"),
    ("/walk.gif?from=0,0&to=nan,0", 400, "must be finite"),
    ("/test/99999.png", 404, "no test image 99999"),
    ("/weights.safetensors", 404, "the explorer is at /"),
    ("/analyse", 405, "POST the picture"),
]


@pytest.mark.parametrize(("path", "status", "message"), BAD_GETS)
def test_bad_queries_get_a_4xx_and_one_sentence(port, path, status, message):
    code, headers, body = request(port, "GET", path)
    assert code == status and message in body.decode()
    assert "\n" not in body.decode().strip() and headers["Content-Type"].startswith("text/plain")
    assert still_serving(port)


def encoded(pixels: np.ndarray, kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=kind)
    return buffer.getvalue()


BAD_POSTS = [
    ({}, b"hello", 400, "not an image"),
    ({}, png(np.zeros((28, 28), np.uint8)), 400, "no ink"),
    ({}, encoded(np.zeros((8, 8), np.uint8), "TIFF"), 400, "TIFF images are not read"),
    ({}, png(np.zeros((5000, 4000), np.uint8)), 400, "at most 4096 x 4096"),
]


@pytest.mark.parametrize(("headers", "body", "status", "message"), BAD_POSTS)
def test_pictures_that_cannot_be_encoded_get_a_400(port, headers, body, status, message):
    code, _, reply = request(port, "POST", "/analyse", body, headers)
    assert code == status and message in reply.decode()
    assert still_serving(port)


def raw(port, data: bytes, wait: float = 10) -> bytes:
    """Send bytes as they are and read the answer until the server closes or `wait` passes."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as client:
        client.sendall(data)
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"POST /analyse HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"411", b"Content-Length"),
        (
            b"POST /analyse HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"411",
            b"Content-Length",
        ),
        (
            b"POST /analyse HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: lots\r\n\r\n",
            b"400",
            b"Content-Length must be the picture's size in bytes, got 'lots'",
        ),
        (
            b"POST /analyse HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3000000\r\n\r\n",
            b"413",
            b"larger than 2 MiB",
        ),
        (b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n", b"403", b"does not answer for host"),
        (b"GET / HTTP/1.1\r\n\r\n", b"403", b"does not answer for a request that names no Host"),
        (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", b"403", b"names no Host"),
        (
            b"PUT / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            b"501",
            b"\r\n\r\nPUT is not answered here: GET a page, or POST a picture",
        ),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", b"414", b"\r\n\r\nRequest-URI Too Long"),
    ],
)
def test_bad_requests_are_refused_and_the_connection_closed(port, data, status, message):
    """Bodies without a bounded length are not read; the answer comes and the socket closes."""
    answer = raw(port, data)
    assert answer.split(b" ")[1] == status and message in answer
    assert still_serving(port)


def test_a_request_line_of_no_http_version_gets_one_sentence_not_html(port):
    """http.server answers it as HTTP/0.9: the body alone, which is now plain text."""
    assert raw(port, b"GET / HTTP/9.x\r\n\r\n") == b"Bad request version ('HTTP/9.x')"
    assert still_serving(port)


def test_head_answers_the_headers_of_get_without_a_body(port):
    _, got, body = request(port, "GET", "/points.json")
    status, headers, empty = request(port, "HEAD", "/points.json")
    assert status == 200 and empty == b"" and headers["Content-Length"] == str(len(body))
    assert headers["Content-Type"] == got["Content-Type"] == "application/json"


def test_the_favicon_is_an_empty_204_and_the_page_sets_its_policy(port):
    status, _, body = request(port, "GET", "/favicon.ico")
    assert status == 204 and body == b""
    _, headers, _ = request(port, "GET", "/")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_one_connection_carries_several_requests(port):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for x in (0, 1, -1):
            connection.request("GET", f"/decode?x={x}&y=0")
            response = connection.getresponse()
            assert response.status == 200 and response.read()[:4] == b"\x89PNG"
    finally:
        connection.close()


def test_a_drawing_is_encoded_reconstructed_and_scored(port, explorer):
    status, headers, body = request(
        port, "POST", "/analyse", drawn_png(), {"Content-Type": "image/png"}
    )
    result = json.loads(body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert len(result["point"]) == 2 and all(np.isfinite(result["point"]))
    for image in ("input", "reconstruction", "error"):
        assert result[image].startswith("data:image/png;base64,")
    assert result["score"] > 0 and result == explorer.analyse(drawn_png())


def test_the_walk_gif_is_served_as_a_download(port, explorer):
    status, headers, body = request(port, "GET", "/walk.gif?from=test:0&to=test:9&steps=5")
    assert status == 200 and headers["Content-Type"] == "image/gif"
    assert headers["Content-Disposition"] == 'attachment; filename="interpolation.gif"'
    options = explorer.walk_options(End(test_image=0), End(test_image=9), 5)
    assert body == explorer.walk_gif(options)


def test_a_burst_of_concurrent_requests_is_answered_promptly(port):
    """200 clients at once, the page's own burst times many tabs: none waits for a retry."""

    def one(i):
        path = "/points.json" if i % 2 else f"/decode?x={i / 100}&y=0"
        start = time.perf_counter()
        status, _, body = request(port, "GET", path)
        return status, len(body), time.perf_counter() - start

    begin = time.perf_counter()
    with ThreadPoolExecutor(200) as pool:
        results = list(pool.map(one, range(200)))
    elapsed = time.perf_counter() - begin
    assert all(status == 200 and size > 0 for status, size, _ in results)
    slowest = max(seconds for _, _, seconds in results)
    assert slowest < 15, f"slowest of 200 took {slowest:.1f} s (all {elapsed:.1f} s)"


def test_an_idle_connection_is_closed_by_the_timeout(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        start = time.perf_counter()
        assert client.recv(1024) == b""  # closed by the server, not by our 10 s
        waited = time.perf_counter() - start
    assert TIMEOUT * 0.8 < waited < TIMEOUT + 5
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"GET /decode?x=0&y=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        start = time.perf_counter()
        assert client.recv(1024) == b""
        assert time.perf_counter() - start < TIMEOUT + 5
    assert still_serving(port)


def hang_up(port, data: bytes) -> None:
    """Send `data` and reset the connection at once, without reading the answer."""
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.sendall(data)
    client.close()


def test_clients_that_hang_up_leave_no_traceback(port, capfd):
    for _ in range(5):
        hang_up(
            port,
            b"GET /walk.gif?from=test:0&to=test:1&steps=30 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        )
        hang_up(port, b"GET /points.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        hang_up(port, b"POST /analyse HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 900\r\n\r\nab")
    time.sleep(TIMEOUT + 1)
    assert still_serving(port)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err


def data_pixels(url: str) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def code_query(z) -> str:
    return "z=" + ",".join(f"{v:g}" for v in z)


def decoded_code(port, z, label: str = "") -> dict:
    status, headers, body = request(port, "GET", f"/decode_z.json?{code_query(z)}{label}")
    assert status == 200 and headers["Content-Type"] == "application/json", body
    return json.loads(body)


def test_a_whole_latent_code_decodes_as_latent_decode_does(port, wide_port, wide, explorer):
    images = []
    for z in ([0.0] * 10, np.round(np.linspace(-2.5, 2.5, 10), 2).tolist()):
        answer = decoded_code(wide_port, z)
        code = torch.tensor([z])
        expected = to_uint8(latent.decode(wide.model, code))[0]
        assert np.array_equal(data_pixels(answer["image"]), expected)
        assert np.allclose(answer["point"], wide.to_plane(code)[0], atol=1e-4)
        images.append(expected.astype(int))
    assert np.abs(images[0] - images[1]).max() > 20
    # a 2-D model's whole code is its plane point
    answer = decoded_code(port, [0.5, -1])
    assert answer["point"] == [0.5, -1.0]
    assert np.array_equal(data_pixels(answer["image"]), explorer.decode(0.5, -1))


ZEROS = ",".join(["0"] * 9)
BAD_CODES = [
    ("/decode_z.json", "give the latent code: send z as 10 numbers separated by commas"),
    ("/decode_z.json?z=", "give the latent code"),
    ("/decode_z.json?z=1,2", "z has 2 numbers, but this model's code has 10: send z as 10"),
    (f"/decode_z.json?z={ZEROS},0,0", "z has 11 numbers"),
    (f"/decode_z.json?z={ZEROS},abc", "z[9] is 'abc', not a number"),
    (f"/decode_z.json?z=,{ZEROS}", "z[0] is '', not a number"),
    (f"/decode_z.json?z=nan,{ZEROS}", "z[0] must be finite, got nan"),
    (f"/decode_z.json?z=0,-inf,{ZEROS[2:]}", "z[1] must be finite, got -inf"),
    (f"/decode_z.json?z={ZEROS},1e9", "z[9]=1e9 is out of reach; keep every |z[i]| <= "),
    (f"/decode_z.json?z=0,{ZEROS}&z=0,{ZEROS}", "give z once"),
    (f"/decode_z.json?z=0,{ZEROS}&label=3", "not conditional"),
    ("/code.json", "give at as a test image (test:12) or a plane point (0.5,-1)"),
    ("/code.json?at=test:99999", "out of range"),
    ("/code.json?at=nan,0", "must be finite"),
]


@pytest.mark.parametrize(("path", "message"), BAD_CODES)
def test_bad_latent_codes_get_a_400_and_the_next_code_decodes(wide_port, path, message):
    code, headers, body = request(wide_port, "GET", path)
    assert code == 400 and message in body.decode()
    assert "\n" not in body.decode().strip() and headers["Content-Type"].startswith("text/plain")
    assert decoded_code(wide_port, [0.0] * 10)["image"].startswith("data:image/png;base64,")


def test_the_sliders_dimensions_are_ranked_by_their_kl(port, wide_port, wide):
    dims = json.loads(request(wide_port, "GET", "/points.json")[2])["dimensions"]
    used = latent_usage.usage(wide.model, wide.test.float()[wide.shown])
    assert dims["order"] == used.kl.argsort(descending=True, stable=True).tolist()
    assert np.allclose(dims["kl"], used.kl, atol=1e-4) and dims["active"] == used.active.tolist()
    assert dims["images"] == 200 and dims["sliders"] == 10 and dims["limit"] == 3
    for end in (-3, 3):  # the sliders' whole range decodes, however tight the plane
        assert decoded_code(wide_port, [end] * 10)["image"].startswith("data:image/png;base64,")
    # a 2-D model's plane is its whole latent space: no sliders
    assert json.loads(request(port, "GET", "/points.json")[2])["dimensions"] is None


def test_the_sliders_start_from_a_dots_code_or_a_plane_points(wide_port, wide):
    index = wide.shown[5].item()
    status, _, body = request(wide_port, "GET", f"/code.json?at=test:{index}")
    start = json.loads(body)
    code = latent.codes(wide.model, wide.test.float()[[index]])
    assert status == 200 and np.allclose(start["z"], code[0], atol=1e-4)
    assert np.allclose(start["point"], wide.view.points[5], atol=1e-3)  # its dot
    start = json.loads(request(wide_port, "GET", "/code.json?at=0.5,-1")[2])
    assert np.allclose(start["z"], wide.view.to_latent(torch.tensor([[0.5, -1.0]]))[0], atol=1e-4)
    assert start["point"] == [0.5, -1.0]


def test_a_conditional_model_decodes_a_whole_code_as_the_class_asked(tmp_path, tiny_run):
    run = tiny_run(tmp_path / "cvae", "cvae", epochs=1, latent_dim=4)
    cvae = Explorer.from_run(run.path, count=100)
    z = [1.0, -0.5, 0.25, 2.0]
    with serving(cvae) as port:
        for label in (None, 3, 5):
            query = "" if label is None else f"&label={label}"
            expected = to_uint8(latent.decode(cvae.model, torch.tensor([z]), label or 0))[0]
            assert np.array_equal(data_pixels(decoded_code(port, z, query)["image"]), expected)
        status, _, body = request(port, "GET", f"/decode_z.json?{code_query(z)}&label=10")
        assert status == 400 and "label=10 is out of range" in body.decode()
        assert cvae.scatter()["dimensions"]["sliders"] == 4
    three, five = (cvae.decode_code(z, label)["image"] for label in (3, 5))
    assert three != five
