"""Fixtures for the model fetcher: tiny fake specs, tiny wheels, and a real local HTTP server."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from polyllm.models.catalog import CATALOG, ModelSpec, WheelPart


def make_spec(model_id: str, data: bytes, parts: tuple[WheelPart, ...] = ()) -> ModelSpec:
    """A catalog-shaped spec for ``data`` (a tiny fabricated model file)."""
    return dataclasses.replace(
        CATALOG["m1"],
        id=model_id,
        display_name=f"fake {model_id}",
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        pypi_parts=parts,
    )


def make_wheel(directory: Path, package: str, version: str, members: dict[str, bytes]) -> Path:
    """A minimal but valid ``py3-none-any`` wheel holding ``members`` (pip accepts it)."""
    dist = package.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = dict(members)
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n".encode()
    )
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for name, content in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(content)}")
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return wheel


@dataclass
class FileServer:
    """A real HTTP server on a free port serving ``files``; supports ``Range: bytes=N-``."""

    base_url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    """(path, Range header) of every GET, in order."""
    honour_range: bool = True
    cut_after: list[int] = field(default_factory=list)
    """For the next responses, one per entry: send only this many body bytes, then hang up."""

    def url(self, name: str) -> str:
        """The URL that serves ``files[name]``."""
        return f"{self.base_url}/{name}"


def _handler(state: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            range_header = self.headers.get("Range")
            state.requests.append((self.path, range_header))
            data = state.files.get(self.path.lstrip("/"))
            if data is None:
                self.send_error(404)
                return
            start = 0
            if range_header and state.honour_range:
                start = int(range_header.removeprefix("bytes=").rstrip("-"))
                if start >= len(data):
                    self.send_error(416)
                    return
            body = data[start:]
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if state.cut_after:
                self.wfile.write(body[: state.cut_after.pop(0)])
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Keep test output quiet."""

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when the client hangs up (tests abort wrong downloads on purpose)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    """A started :class:`FileServer`; stopped and closed after the test."""
    state = FileServer()
    server = _Server(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _no_model_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start without the caller's MODEL_URI or custom-m5 settings."""
    for name in ("MODEL_URI", "POLYLLM_M5_SHA256", "POLYLLM_M5_SIZE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def spec_factory() -> Callable[..., ModelSpec]:
    """:func:`make_spec`: ``spec_factory(model_id, data, parts=())``."""
    return make_spec


@pytest.fixture
def wheel_factory() -> Callable[..., Path]:
    """:func:`make_wheel`: ``wheel_factory(directory, package, version, members)``."""
    return make_wheel


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    """An empty (not yet created) models directory."""
    return tmp_path / "models"


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """An empty wheel cache directory."""
    path = tmp_path / "wheels"
    path.mkdir()
    return path
