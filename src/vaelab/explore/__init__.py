"""A live explorer of a run's latent space: a local web page that decodes where you point.

The page draws the codes of test images as a scatter over the latent plane
(the codes themselves for a 2-D latent space, their first two principal
components otherwise) and shows the decoder's image for the point under the
mouse, asked for from a small HTTP server that holds the model:

    GET /              the page (static/index.html)
    GET /points.json   the scatter: points, labels, class names, axes, title
    GET /decode?x=X&y=Y  the decoded image at plane point (X, Y), as a PNG

Standard library only (`http.server`), bound to 127.0.0.1 by default: the
server is for the person at this machine, not a network service.
"""

from __future__ import annotations

import io
import json
import math
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import torch
from PIL import Image

from vaelab.errors import VaelabError
from vaelab.figures import latent
from vaelab.figures.images import to_uint8
from vaelab.models import Model
from vaelab.plotting import describe, one_per_class, test_set
from vaelab.run import Run

DEFAULT_COUNT = 5000


@dataclass
class Explorer:
    """A model and the plane it is explored on: what the server answers with."""

    model: Model
    view: latent.View
    labels: np.ndarray
    class_names: list[str]
    title: str

    @classmethod
    def from_run(
        cls, run_dir: str | Path, count: int = DEFAULT_COUNT, data_dir: str | None = None
    ) -> Explorer:
        """The run's model over the codes of `count` test images, cycling through the classes."""
        run = Run(run_dir)
        model = run.load_model()
        test = test_set(run, data_dir)
        images, labels = one_per_class(test, min(count, len(test)))
        view = latent.plane(latent.codes(model, images))
        title = f"{describe(run)}: codes of {len(images):,} test images"
        return cls(model, view, labels.numpy(), list(test.class_names), title)

    def scatter(self) -> dict:
        """What the page draws, as JSON-ready values (4 decimals are finer than a pixel)."""
        return {
            "title": self.title,
            "note": self.view.note,
            "axes": list(self.view.axes),
            "points": np.round(self.view.points.astype(float), 4).tolist(),
            "labels": self.labels.tolist(),
            "classes": self.class_names,
        }

    def decode(self, x: float, y: float) -> np.ndarray:
        """The image decoded at plane point (x, y), as uint8 pixels."""
        z = self.view.to_latent(torch.tensor([[x, y]]))
        return to_uint8(latent.decode(self.model, z))[0]


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def plane_point(query: str) -> tuple[float, float]:
    """(x, y) from a query string like `x=0.5&y=-1`; ValueError says what is wrong."""
    fields = parse_qs(query)
    try:
        x, y = float(fields["x"][0]), float(fields["y"][0])
    except (KeyError, ValueError):
        raise ValueError("give the plane point as two numbers, e.g. /decode?x=0.5&y=-1") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"the plane point must be finite, got x={x}, y={y}")
    return x, y


def make_server(
    explorer: Explorer, host: str = "127.0.0.1", port: int = 8000
) -> ThreadingHTTPServer:
    """An HTTP server for `explorer`, bound but not yet serving (call `serve_forever`).

    Port 0 picks a free port; `server.server_port` says which.
    """
    page = resources.files(__package__).joinpath("static/index.html").read_bytes()
    model_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path in ("/", "/index.html"):
                self._send(page, "text/html; charset=utf-8")
            elif url.path == "/points.json":
                self._send(json.dumps(explorer.scatter()).encode(), "application/json")
            elif url.path == "/decode":
                try:
                    x, y = plane_point(url.query)
                except ValueError as err:
                    self._send(str(err).encode(), "text/plain", HTTPStatus.BAD_REQUEST)
                    return
                with model_lock:
                    pixels = explorer.decode(x, y)
                self._send(png(pixels), "image/png")
            else:
                message = f"no page {url.path}; the explorer is at /"
                self._send(message.encode(), "text/plain", HTTPStatus.NOT_FOUND)

        def _send(self, body: bytes, kind: str, status: HTTPStatus = HTTPStatus.OK) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: one line per mouse move would bury the console."""

    try:
        return ThreadingHTTPServer((host, port), Handler)
    except OSError as err:
        raise VaelabError(
            f"cannot serve on {host}:{port}: {err.strerror}; choose another --port "
            "(0 picks a free one)"
        ) from None
