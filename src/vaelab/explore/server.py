"""The explorer's HTTP server: standard library only, made to be left running.

    GET  /                 the page (static/index.html, explore.js, explore.css)
    GET  /points.json      the plane: extent, points, labels, test image indices, classes
    GET  /card.json        the model card and the anomaly threshold
    GET  /decode?x=X&y=Y   the decoded image at plane point (X, Y), a PNG
    GET  /decode_z.json?z=V1,...,VD   a whole latent code's image (a data URL) and plane point
    GET  /code.json?at=A   the latent code the sliders start from; A is `X,Y` or `test:N`
    GET  /test/N.png       test image N
    GET  /walk.json?from=A&to=B&steps=N   a walk's frames; A, B are `X,Y` or `test:N`
    GET  /walk.gif?...     the same walk as the GIF `vaelab plot RUN interpolate` writes
    POST /analyse          a drawn or dropped picture (PNG, JPEG, ...) -> code, reconstruction,
                           per-pixel error, anomaly score

Every answer has a Content-Length and HEAD works. Bad input gets a 4xx and
one sentence; clients that hang up or fall silent (a per-connection timeout)
are dropped without a word on the terminal; a long listen backlog and JSON
built once keep a burst of requests from stalling.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import urlsplit

from vaelab.errors import VaelabError
from vaelab.explore import address as addresses
from vaelab.explore import queries
from vaelab.explore.drawing import MAX_BYTES, PictureError
from vaelab.explore.explorer import Explorer
from vaelab.explore.pictures import png
from vaelab.plotting import PlotOptions

MAX_PORT = 65535
BACKLOG = 256
"""Pending connections the kernel holds: a page reload's burst must not be dropped."""
TIMEOUT = 30.0
"""Seconds a connection may stay silent before it is closed."""
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/explore.js": ("explore.js", "text/javascript; charset=utf-8"),
    "/explore.css": ("explore.css", "text/css; charset=utf-8"),
}
TEST_IMAGE = re.compile(r"/test/(\d{1,9})\.png")
POLICY = "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'"
HUNG_UP = (ConnectionError, TimeoutError)


@dataclass
class Reply:
    body: bytes
    kind: str = "text/plain; charset=utf-8"
    status: HTTPStatus = HTTPStatus.OK
    headers: dict[str, str] = field(default_factory=dict)


def text(message: str, status: HTTPStatus) -> Reply:
    return Reply(message.encode(), status=status)


def as_json(value: object) -> Reply:
    return Reply(json.dumps(value).encode(), "application/json")


class App:
    """What the server answers, computed once where it can be: static files and JSON."""

    def __init__(self, explorer: Explorer, allowed_hosts: set[str]) -> None:
        self.explorer = explorer
        self.allowed_hosts = allowed_hosts
        self.model_lock = threading.Lock()
        folder = resources.files(__package__).joinpath("static")
        self.static = {
            path: Reply(folder.joinpath(name).read_bytes(), kind)
            for path, (name, kind) in STATIC.items()
        }
        self.static["/points.json"] = as_json(explorer.scatter())
        self.static["/card.json"] = as_json(explorer.card())
        self.static["/favicon.ico"] = Reply(b"", status=HTTPStatus.NO_CONTENT)
        self.dynamic: dict[str, Callable[[str], Reply]] = {
            "/decode": self.decode,
            "/decode_z.json": self.decode_code,
            "/code.json": self.code_at,
            "/walk.json": self.walk,
            "/walk.gif": self.walk_gif,
        }

    def get(self, path: str, query: str) -> Reply:
        if path in self.static:
            return self.static[path]
        if path in self.dynamic:
            return self.dynamic[path](query)
        if match := TEST_IMAGE.fullmatch(path):
            return self.test_image(int(match[1]))
        if path == "/analyse":
            return text("POST the picture to /analyse", HTTPStatus.METHOD_NOT_ALLOWED)
        return text(f"no page {path}; the explorer is at /", HTTPStatus.NOT_FOUND)

    def decode(self, query: str) -> Reply:
        x, y = queries.plane_point(query, self.explorer.reach)
        label = queries.label(query, self.explorer.classes)
        with self.model_lock:
            return Reply(png(self.explorer.decode(x, y, label)), "image/png")

    def decode_code(self, query: str) -> Reply:
        z = queries.latent_code(query, self.explorer.model.latent_dim, self.explorer.code_reach)
        label = queries.label(query, self.explorer.classes)
        with self.model_lock:
            return as_json(self.explorer.decode_code(z, label))

    def code_at(self, query: str) -> Reply:
        start = queries.code_start(query, self.explorer.reach, len(self.explorer.test))
        with self.model_lock:
            return as_json(self.explorer.code_at(start))

    def test_image(self, index: int) -> Reply:
        count = len(self.explorer.test)
        if index >= count:
            return text(f"no test image {index}; there are {count:,}", HTTPStatus.NOT_FOUND)
        return Reply(png(self.explorer.test_image(index)), "image/png")

    def walk_options(self, query: str) -> PlotOptions:
        start, end, steps = queries.walk(query, self.explorer.reach, len(self.explorer.test))
        label = queries.label(query, self.explorer.classes)
        return self.explorer.walk_options(start, end, steps, label)

    def walk(self, query: str) -> Reply:
        options = self.walk_options(query)
        with self.model_lock:
            return as_json(self.explorer.walk(options))

    def walk_gif(self, query: str) -> Reply:
        options = self.walk_options(query)
        with self.model_lock:
            gif = self.explorer.walk_gif(options)
        attachment = {"Content-Disposition": 'attachment; filename="interpolation.gif"'}
        return Reply(gif, "image/gif", headers=attachment)

    def analyse(self, picture: bytes, query: str = "") -> Reply:
        label = queries.label(query, self.explorer.classes)
        with self.model_lock:
            return as_json(self.explorer.analyse(picture, label))


class Handler(BaseHTTPRequestHandler):
    """One connection: requests read with a timeout, answered by the server's `App`."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart
    server: ExplorerServer

    def setup(self) -> None:
        self.timeout = self.server.connection_timeout
        super().setup()

    def do_GET(self) -> None:
        self._answer(lambda url: self.server.app.get(url.path, url.query))

    def do_HEAD(self) -> None:
        self._answer(lambda url: self.server.app.get(url.path, url.query), head=True)

    def do_POST(self) -> None:
        self._answer(self._post)

    def _post(self, url) -> Reply:
        if url.path != "/analyse":
            return text(f"nothing to POST to at {url.path}; use /analyse", HTTPStatus.NOT_FOUND)
        body = self._body()
        if isinstance(body, Reply):
            return body
        return self.server.app.analyse(body, url.query)

    def _body(self) -> bytes | Reply:
        """The request body, if it has a length within bounds; a Reply saying why not."""
        length = self.headers.get("Content-Length")
        if "Transfer-Encoding" in self.headers or length is None:
            self.close_connection = True
            return text("send the picture with a Content-Length", HTTPStatus.LENGTH_REQUIRED)
        if not length.isdigit():
            self.close_connection = True
            said = f"Content-Length must be the picture's size in bytes, got {length!r}"
            return text(said, HTTPStatus.BAD_REQUEST)
        if int(length) > MAX_BYTES:
            self.close_connection = True
            limit = f"{MAX_BYTES // 1024**2} MiB"
            return text(f"the picture is larger than {limit}", HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        return self.rfile.read(int(length))

    def _answer(self, route: Callable, head: bool = False) -> None:
        app = self.server.app
        host = self.headers.get("Host")
        if not addresses.host_is_allowed(host, app.allowed_hosts):
            named = f"host {host!r}" if host else "a request that names no Host"
            message = f"this server does not answer for {named}"
            reply = text(message, HTTPStatus.FORBIDDEN)
            self.close_connection = True
        else:
            reply = self._reply(route)
        self._send(reply, head)

    def _reply(self, route: Callable) -> Reply:
        try:
            return route(urlsplit(self.path))
        except (queries.QueryError, PictureError, VaelabError) as err:
            return text(str(err), HTTPStatus.BAD_REQUEST)
        except HUNG_UP:
            raise
        except Exception as err:  # one line on the terminal, and the server keeps serving
            print(f"vaelab explore: {self.path}: {type(err).__name__}: {err}", file=sys.stderr)
            return text(f"internal error: {err}", HTTPStatus.INTERNAL_SERVER_ERROR)

    def _send(self, reply: Reply, head: bool) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.kind)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", POLICY)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(reply.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What http.server refuses itself (a method it lacks, a garbled request line, a URL
        too long) as one sentence of plain text, like every other refusal, not its HTML."""
        status = HTTPStatus(code)
        if status == HTTPStatus.NOT_IMPLEMENTED:
            message = f"{self.command} is not answered here: GET a page, or POST a picture"
        self.close_connection = True
        self._send(text(message or status.phrase, status), head=self.command == "HEAD")

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: one line per mouse move would bury the console."""


class ExplorerServer(ThreadingHTTPServer):
    """A threading HTTP server on an IPv4 or IPv6 address that drops hung-up clients quietly."""

    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(
        self, app: App, address: addresses.Address, port: int, connection_timeout: float
    ) -> None:
        self.address_family = address.family
        self.app = app
        self.connection_timeout = connection_timeout
        super().__init__((str(address.ip), port), Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, HUNG_UP):
            print(f"vaelab explore: {type(error).__name__}: {error}", file=sys.stderr)


def make_server(
    explorer: Explorer,
    host: str = "127.0.0.1",
    port: int = 8000,
    connection_timeout: float = TIMEOUT,
) -> ExplorerServer:
    """An HTTP server for `explorer`, bound but not yet serving (call `serve_forever`).

    Port 0 picks a free port; `server.server_port` says which.
    """
    if not 0 <= port <= MAX_PORT:
        raise VaelabError(f"port {port} does not exist; choose 1 to {MAX_PORT} (0: any free)")
    address = addresses.resolve(host)
    app = App(explorer, addresses.allowed_hosts(address))
    try:
        return ExplorerServer(app, address, port, connection_timeout)
    except OSError as err:
        raise addresses.bind_error(address, port, err) from None
