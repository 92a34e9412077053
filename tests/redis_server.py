"""A real ``redis-server`` for tests: a free port, its own directory, no persistence.

It can be killed (SIGKILL, as a crash) or stopped, and started again on the same port, so
tests can watch clients lose Redis and get it back.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str | None:
    """The ``redis-server`` on PATH, or None (``scripts/bootstrap.sh`` installs it)."""
    return shutil.which("redis-server")


def ping(port: int, timeout_s: float = 0.5) -> bool:
    """Whether a Redis on ``port`` answers PING with PONG (not LOADING or an error)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout_s) as conn:
            conn.sendall(b"*1\r\n$4\r\nPING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on ``port`` (a free one unless given), working in ``workdir``.

    ``start()`` returns once it answers PING; ``kill()`` / ``stop()`` end it and ``start()`` (or
    ``restart()``) brings it back on the same port, empty: nothing is saved to disk.
    """

    def __init__(
        self, workdir: Path, *, port: int | None = None, binary: str = "redis-server"
    ) -> None:
        self.workdir = workdir
        self.port = port if port is not None else free_port()
        self.binary = binary
        self.log_path = workdir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return HOST

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``, for ``redis.asyncio.Redis.from_url``."""
        return f"redis://{HOST}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server and wait until it answers PING; raise with its log if it does not."""
        if self.running:
            raise RuntimeError(f"redis-server is already running on port {self.port}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            self.binary,
            *("--port", str(self.port), "--bind", HOST, "--dir", str(self.workdir)),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
        ]
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self._proc.returncode} on port {self.port}:\n"
                    + self.log()
                )
            if ping(self.port):
                return
            time.sleep(0.01)
        self.kill()
        raise RuntimeError(f"redis-server did not answer PING in {timeout_s}s:\n{self.log()}")

    def kill(self) -> None:
        """End the server with SIGKILL, as a crash would; a no-op when it is not running."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc = None

    def stop(self, timeout_s: float = 10.0) -> None:
        """End the server with SIGTERM (a clean shutdown), killing it after ``timeout_s``."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
            self._proc = None

    def restart(self) -> None:
        """Stop the server if it runs, then start it again on the same port."""
        self.stop()
        self.start()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()
