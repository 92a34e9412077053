"""Run files, liveness and port checks: the pure parts of the supervisor, without services."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from polyllm.stack.processes import (
    RunFiles,
    command_line,
    is_ours,
    log_tail,
    pid_alive,
    port_in_use,
    recorded_names,
    rss_bytes,
    start_detached,
)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_run_files_round_trip_and_clear(tmp_path: Path) -> None:
    files = RunFiles(tmp_path / "run", "m1")
    assert files.read() is None
    files.record(1234, 8101)
    recorded = files.read()
    assert recorded is not None
    assert (recorded.pid, recorded.port) == (1234, 8101)
    assert recorded_names(tmp_path / "run") == ["m1"]
    files.log_path.write_text("log stays\n")
    files.clear()
    assert files.read() is None
    assert not files.pid_path.exists() and not files.port_path.exists()
    assert files.log_path.exists()


def test_unreadable_pid_file_counts_as_none(tmp_path: Path) -> None:
    files = RunFiles(tmp_path, "redis")
    files.pid_path.write_text("not a pid\n")
    assert files.read() is None
    files.pid_path.write_text("42\n")  # no port file: the pid still counts
    recorded = files.read()
    assert recorded is not None and recorded.port is None


def test_recorded_names_of_a_missing_run_dir_is_empty(tmp_path: Path) -> None:
    assert recorded_names(tmp_path / "nowhere") == []


def test_liveness_of_this_process_and_of_a_reaped_one() -> None:
    assert pid_alive(os.getpid())
    assert rss_bytes(os.getpid()) is not None
    dead = _dead_pid()
    assert not pid_alive(dead)
    assert rss_bytes(dead) is None
    assert command_line(dead) == ""


def test_is_ours_needs_the_marker_in_the_command_line() -> None:
    assert is_ours(os.getpid(), Path(sys.argv[0]).name or "python")
    assert not is_ours(os.getpid(), "redis-server --port 0 surely-not-this")
    assert not is_ours(_dead_pid(), "")


def test_port_in_use_sees_a_listener_and_its_absence() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
    assert not port_in_use("127.0.0.1", port)


def test_port_in_use_sees_a_wildcard_listener_from_loopback() -> None:
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        assert port_in_use("127.0.0.1", listener.getsockname()[1])


def test_log_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(50)))
    assert log_tail(log, 3) == ["line 47", "line 48", "line 49"]
    assert log_tail(tmp_path / "missing.log") == []


def test_start_detached_lowers_the_priority_of_the_process_and_of_its_session(
    tmp_path: Path,
) -> None:
    report = "import os, pathlib; p = pathlib.Path('/proc/self/autogroup'); " + (
        "print(os.nice(0)); print(p.read_text() if p.exists() else 'no autogroup')"
    )
    log = tmp_path / "child.log"
    start_detached([sys.executable, "-c", report], log, nice=7).wait(timeout=30)
    niceness, autogroup = log.read_text().splitlines()[:2]
    assert int(niceness) == min(19, os.nice(0) + 7)
    assert autogroup == "no autogroup" or autogroup.endswith("nice 7")
    start_detached([sys.executable, "-c", report], log).wait(timeout=30)
    assert int(log.read_text().splitlines()[0]) == os.nice(0)  # nice=0: left as it was
