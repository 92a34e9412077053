"""Detached processes and their run files: pid/port files, liveness, ports, start and stop."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Recorded:
    """What a service's run files say: its pid and the port it was started on."""

    pid: int
    port: int | None


@dataclass(frozen=True)
class RunFiles:
    """``<run_dir>/<name>.pid``, ``.port`` and ``.log`` of one service."""

    run_dir: Path
    name: str

    @property
    def pid_path(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def port_path(self) -> Path:
        return self.run_dir / f"{self.name}.port"

    @property
    def log_path(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def read(self) -> Recorded | None:
        """The recorded pid and port; None when there is no pid file or it is not a pid."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        if pid <= 0:
            return None
        try:
            port: int | None = int(self.port_path.read_text().strip())
        except (OSError, ValueError):
            port = None
        return Recorded(pid, port)

    def record(self, pid: int, port: int) -> None:
        """Write the pid and port files (the port first: a pid file always has its port)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.port_path.write_text(f"{port}\n")
        self.pid_path.write_text(f"{pid}\n")

    def clear(self) -> None:
        """Remove the pid and port files (the log stays, for reading after a stop)."""
        self.pid_path.unlink(missing_ok=True)
        self.port_path.unlink(missing_ok=True)


def recorded_names(run_dir: Path) -> list[str]:
    """Names of the services that have a pid file in ``run_dir``."""
    return sorted(p.stem for p in run_dir.glob("*.pid")) if run_dir.is_dir() else []


def _status_field(pid: int, key: str) -> str | None:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        head, _, value = line.partition(":")
        if head == key:
            return value.strip()
    return None


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie waiting to be reaped is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = _status_field(pid, "State")
    return state is None or not state.startswith("Z")


def command_line(pid: int) -> str:
    """The process's command line, space-separated ("" when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def is_ours(pid: int, marker: str, settle_s: float = 0.5) -> bool:
    """Whether ``pid`` is alive and its command line carries ``marker`` (not a recycled pid).

    A process caught in the middle of exec has an empty command line for a moment (the parent
    of a vfork resumes before the kernel has copied the new arguments), so an empty one is read
    again for up to ``settle_s``.
    """
    deadline = time.monotonic() + settle_s
    while pid_alive(pid):
        line = command_line(pid)
        if line or time.monotonic() > deadline:
            return marker in line
        time.sleep(0.01)
    return False


def rss_bytes(pid: int) -> int | None:
    """Resident memory of ``pid`` (``VmRSS``), or None when it is gone."""
    value = _status_field(pid, "VmRSS")
    if value is None:
        return None
    number, _, unit = value.partition(" ")
    return int(number) * 1024 if unit.strip().lower() == "kb" else int(number)


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port`` (binding it would fail).

    ``SO_REUSEADDR`` as servers set it, so connections lingering in TIME_WAIT do not count.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def start_detached(
    argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None, nice: int = 0
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (it outlives this process and the terminal), stdout and
    stderr to ``log_path`` (truncated), no stdin, its CPU priority lowered by ``nice``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            preexec_fn=(lambda: lower_priority(nice)) if nice else None,
        )


def lower_priority(nice: int) -> None:
    """Lower this process's CPU priority by ``nice``, as seen against other sessions too.

    Linux schedules each session as one group (autogroup) and weighs groups by the group's own
    nice value, so the process's nice alone would change nothing against other services.
    """
    os.nice(nice)
    # Without autogroup (not Linux, or disabled) the process's nice is all there is.
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(f"{nice}\n")


def stop_pids(pids: Mapping[str, int], grace_s: float = 10.0) -> dict[str, str]:
    """SIGTERM every pid, wait up to ``grace_s`` for all of them, SIGKILL those left.

    Returns how each ended: "terminated", "killed" or "already gone".
    """
    outcome: dict[str, str] = {}
    for name, pid in pids.items():
        try:
            os.kill(pid, signal.SIGTERM)
            outcome[name] = "terminated"
        except ProcessLookupError:
            outcome[name] = "already gone"
    deadline = time.monotonic() + grace_s
    waiting = {n: p for n, p in pids.items() if outcome[n] == "terminated"}
    while waiting and time.monotonic() < deadline:
        waiting = {n: p for n, p in waiting.items() if pid_alive(p)}
        if waiting:
            time.sleep(0.05)
    for name, pid in waiting.items():
        try:
            os.kill(pid, signal.SIGKILL)
            outcome[name] = "killed"
        except ProcessLookupError:
            continue
    kill_deadline = time.monotonic() + 5
    while any(pid_alive(p) for p in waiting.values()) and time.monotonic() < kill_deadline:
        time.sleep(0.05)
    return outcome


def log_tail(path: Path, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of a log file (none when it does not exist)."""
    try:
        with path.open(errors="replace") as f:
            return [line.rstrip("\n") for line in deque(f, maxlen=lines)]
    except OSError:
        return []
