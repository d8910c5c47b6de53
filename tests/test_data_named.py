"""Named datasets: lookup order, downloads from a local HTTP server, and the offline error."""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import TinySet

from vaelab.data import fetch, list_datasets, load, verify
from vaelab.data.sources import SOURCES, FileSpec
from vaelab.errors import DatasetError

IMAGES = "train-images-idx3-ubyte"


class Server(ThreadingHTTPServer):
    """Serves `files` by URL path; paths in `drop` send half the body and hang up."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.files: dict[str, bytes] = {}
        self.drop: set[str] = set()
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        self.server.requests.append(self.path)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if self.path in self.server.drop else body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tiny: TinySet, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A mirror on 127.0.0.1 serving the tiny set's official .gz files."""
    httpd = Server()
    httpd.files = {f"/tiny/{name}.gz": tiny.gz(name) for name in tiny.raw}
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("VAELAB_MIRRORS", httpd.url)
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_lookup_order_data_dir_then_env_then_cache_then_system(
    tiny: TinySet, tmp_path: Path, isolated_data_env: Path, monkeypatch: pytest.MonkeyPatch
):
    explicit, env, system = tmp_path / "explicit", tmp_path / "env", tmp_path / "system"
    for folder in (explicit / "tiny", env / "tiny", isolated_data_env / "tiny", system):
        tiny.write(folder)
    monkeypatch.setitem(SOURCES, "tiny", replace(tiny.source, system_dirs=(system,)))
    monkeypatch.setenv("VAELAB_DATA_DIR", str(env))
    assert fetch("tiny", explicit) == explicit / "tiny"
    assert fetch("tiny") == env / "tiny"
    monkeypatch.delenv("VAELAB_DATA_DIR")
    assert fetch("tiny") == isolated_data_env / "tiny"
    for name in tiny.raw:
        (isolated_data_env / "tiny" / f"{name}.gz").unlink()
    assert fetch("tiny") == system
    assert {info.name: info.location for info in list_datasets()}["tiny"] == system


def test_incomplete_folder_is_skipped(tiny: TinySet, tmp_path: Path, isolated_data_env: Path):
    tiny.write(tmp_path / "tiny", names=[IMAGES])
    tiny.write(isolated_data_env / "tiny")
    assert {i.name: i.location for i in list_datasets(tmp_path)}[
        "tiny"
    ] == isolated_data_env / "tiny"


def test_download_fills_the_cache_never_the_data_dir_it_reads(
    tiny: TinySet, server: Server, tmp_path: Path, isolated_data_env: Path, monkeypatch
):
    shared = tmp_path / "shared"
    tiny.write(shared / "tiny", names=[IMAGES])
    monkeypatch.setenv("VAELAB_DATA_DIR", str(shared))
    folder = fetch("tiny", progress=False)
    assert folder == isolated_data_env / "tiny"
    assert listing(folder) == sorted(f"{name}.gz" for name in tiny.raw)
    assert listing(shared / "tiny") == [f"{IMAGES}.gz"]
    assert len(load("tiny")) == 24
    assert verify("tiny") == [folder / f"{name}.gz" for name in tiny.raw]


def test_download_goes_to_an_explicit_data_dir(tiny: TinySet, server: Server, tmp_path: Path):
    assert fetch("tiny", tmp_path, progress=False) == tmp_path / "tiny"
    assert len(load("tiny", "test", data_dir=tmp_path)) == 8


def test_recompressed_copy_is_accepted(tiny: TinySet, server: Server, tmp_path: Path):
    for name in tiny.raw:
        server.files[f"/tiny/{name}.gz"] = gzip.compress(tiny.raw[name], compresslevel=1, mtime=9)
    assert server.files[f"/tiny/{IMAGES}.gz"] != tiny.gz(IMAGES)
    fetch("tiny", tmp_path, progress=False)
    assert verify("tiny", tmp_path)


def test_wrong_checksum_is_rejected_leaving_no_file(tiny: TinySet, server: Server, tmp_path):
    server.files[f"/tiny/{IMAGES}.gz"] = gzip.compress(tiny.raw[IMAGES][:-1] + b"\x01")
    with pytest.raises(DatasetError, match="checksum mismatch"):
        fetch("tiny", tmp_path, progress=False)
    assert f"{IMAGES}.gz" not in listing(tmp_path / "tiny")
    assert not [name for name in listing(tmp_path / "tiny") if name.startswith(".")]


def test_dropped_connection_leaves_no_partial_file(tiny: TinySet, server: Server, tmp_path):
    server.drop.add(f"/tiny/{IMAGES}.gz")
    with pytest.raises(DatasetError, match=IMAGES):
        fetch("tiny", tmp_path, progress=False)
    assert listing(tmp_path / "tiny") == []


def test_fallback_mirror_is_used_when_the_first_fails(
    tiny: TinySet, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("VAELAB_MIRRORS", f"{server.url}/gone, {server.url}")
    fetch("tiny", tmp_path, progress=False)
    assert f"/gone/tiny/{IMAGES}.gz" in server.requests
    assert listing(tmp_path / "tiny") == sorted(f"{name}.gz" for name in tiny.raw)


def test_official_gzip_checksum_when_decompressed_one_is_unknown(
    tiny: TinySet, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """KMNIST's case: only the MD5s of the official .gz files are known."""
    specs = {
        split: tuple(
            FileSpec(f.name, gz_md5=hashlib.md5(tiny.gz(f.name)).hexdigest()) for f in pair
        )
        for split, pair in tiny.source.splits.items()
    }
    monkeypatch.setitem(SOURCES, "tiny", replace(tiny.source, splits=specs))
    fetch("tiny", tmp_path, progress=False)
    assert verify("tiny", tmp_path)
    (tmp_path / "tiny" / f"{IMAGES}.gz").write_bytes(gzip.compress(tiny.raw[IMAGES], mtime=5))
    with pytest.raises(DatasetError, match="MD5 of the gzip file"):
        verify("tiny", tmp_path)


def test_offline_error_says_where_it_looked_and_what_to_do(tiny: TinySet, tmp_path: Path):
    (tmp_path / "given").mkdir()
    with pytest.raises(DatasetError) as err:
        load("tiny", data_dir=tmp_path / "given")
    message = str(err.value)
    for expected in (
        str(tmp_path / "given" / "tiny"),
        "--data-dir",
        "VAELAB_DATA_DIR",
        "vaelab data fetch tiny",
        "127.0.0.1:9",
    ):
        assert expected in message
    assert listing(tmp_path / "given" / "tiny") == []


def test_no_download_when_turned_off(tiny: TinySet, server: Server, tmp_path: Path):
    with pytest.raises(DatasetError, match="downloading is turned off"):
        load("tiny", data_dir=tmp_path, download=False)
    assert server.requests == []


def test_unknown_name_and_split(tiny: TinySet, tmp_path: Path):
    with pytest.raises(DatasetError, match="unknown dataset 'nope'.*mnist-sample"):
        load("nope")
    with pytest.raises(DatasetError, match="known: mnist-sample, mnist"):
        fetch("nope")
    tiny.write(tmp_path / "tiny")
    with pytest.raises(DatasetError, match="no split 'valid'"):
        load("tiny", "valid", data_dir=tmp_path)


def test_list_datasets_credits_every_dataset(isolated_data_env: Path):
    infos = {info.name: info for info in list_datasets()}
    assert {"mnist-sample", "mnist", "fashion-mnist", "kmnist"} <= set(infos)
    assert "LeCun" in infos["mnist"].credit and infos["mnist"].license == "CC BY-SA 3.0"
    assert infos["mnist-sample"].location.is_file()
    assert infos["kmnist"].location is None
