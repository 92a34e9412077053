"""A real S3-compatible server for the tests (moto's server, its own process, on loopback) and a
TCP proxy in front of it that can slow a download down or cut it off mid-body."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HOST = "127.0.0.1"

AWS_ENV_UNSET = (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
)  # fmt: skip


def aws_env(endpoint: str, config_dir: Path) -> dict[str, str]:
    """The environment that points boto3 at ``endpoint`` with test credentials, and nowhere
    else: no shared config, and no instance-metadata lookups off this machine."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(config_dir / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(config_dir / "no-aws-credentials"),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_server(log_path: Path, timeout_s: float = 30) -> Iterator[str]:
    """``moto.server`` on a free loopback port; yields its URL once it answers."""
    port = free_port()
    url = f"http://{HOST}:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto.server exited: {log_path.read_text()}")
            with suppress(httpx.TransportError):
                if httpx.get(f"{url}/moto-api/", timeout=1).status_code < 500:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto.server not up after {timeout_s} s: {log_path}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


_GET = re.compile(rb"^GET (\S+) HTTP/1\.1\r\n(.*?)\r\n\r\n", re.DOTALL | re.MULTILINE)
_RANGE = re.compile(rb"^range: *(bytes=\S*)", re.IGNORECASE | re.MULTILINE)


@dataclass
class Proxy:
    """A TCP proxy to the S3 server that records GETs and can slow or cut responses."""

    upstream_port: int
    url: str = ""
    gets: list[tuple[str, str | None]] = field(default_factory=list)
    """(path, Range header) of every GET, in order."""
    cut_after: list[int] = field(default_factory=list)
    """For the next connections, one per entry: forward this many response bytes, then hang up."""
    bytes_per_s: float | None = None
    """Throttle every response to about this rate."""
    sent: int = 0
    """Response bytes forwarded to clients in all."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                cut = self.cut_after.pop(0) if self.cut_after else None
            upstream = socket.create_connection((HOST, self.upstream_port))
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(
                target=self._responses, args=(upstream, client, cut), daemon=True
            ).start()

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        seen = b""
        with suppress(OSError):
            while data := client.recv(65536):
                seen += data
                while match := _GET.search(seen):
                    ranged = _RANGE.search(match.group(2))
                    path = match.group(1).decode().split("?")[0]
                    self.gets.append((path, ranged.group(1).decode() if ranged else None))
                    seen = seen[match.end() :]
                seen = seen[-65536:]  # a request body (no GET) is not kept
                upstream.sendall(data)
        _close(client, upstream)

    def _responses(self, upstream: socket.socket, client: socket.socket, cut: int | None) -> None:
        forwarded = 0
        with suppress(OSError):
            while data := upstream.recv(65536):
                if cut is not None and forwarded + len(data) >= cut:
                    client.sendall(data[: cut - forwarded])
                    self.sent += cut - forwarded
                    break
                client.sendall(data)
                forwarded += len(data)
                self.sent += len(data)
                if self.bytes_per_s:
                    time.sleep(len(data) / self.bytes_per_s)
        _close(client, upstream)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


@contextmanager
def proxy_to(upstream_url: str) -> Iterator[Proxy]:
    """A started :class:`Proxy` to ``upstream_url`` on a free loopback port."""
    port = int(upstream_url.rsplit(":", 1)[1])
    listener = socket.create_server((HOST, 0))
    proxy = Proxy(port, url=f"http://{HOST}:{listener.getsockname()[1]}")
    thread = threading.Thread(target=proxy.serve, args=(listener,), daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        with suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        listener.close()
        thread.join(timeout=5)
