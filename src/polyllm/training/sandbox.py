"""Run untrusted Python (a model's answer) with its unit tests in a separate, locked-down process.

The parent writes the job to a fresh temporary directory and starts this same file as a script,
``python -I sandbox.py JOB RESULT_FD``, with that directory as cwd, stdin closed, a minimal
environment and its own process group. Before the child runs any of the job's code it locks
itself down (:func:`_lock_down`), then runs the solution, the setup and each test, and reports on
a pipe that only the parent reads.

What the sandbox guarantees (on Linux; each layer is named in :attr:`SandboxResult.isolation`):

- **Time**: ``RLIMIT_CPU`` (SIGXCPU, then SIGKILL a second later) and a wall-clock timeout after
  which the whole process group is killed (covers ``sleep`` loops too).
- **Memory**: ``RLIMIT_AS``; a large allocation raises ``MemoryError``.
- **Output**: stdout/stderr go to files bounded by ``RLIMIT_FSIZE`` (Python ignores SIGXFSZ, so
  a write past it raises ``OSError`` in the child); the parent reads only their tail.
- **Processes**: no new process or thread. ``RLIMIT_NPROC`` does that for ordinary users, but
  root is exempt from it, so a seccomp filter (x86-64 and arm64) also makes ``fork``/``clone``
  fail with ``EAGAIN``.
- **Network**: ``netns`` — when ``unshare --net`` works (root), the child runs in an empty
  network namespace: no interface but a down loopback, so every connect fails in the kernel.
  Otherwise ``socket-patch``: creating a socket raises ``OSError`` in Python (process-level only:
  ctypes could bypass it), plus Landlock's TCP bind/connect block where the kernel has ABI ≥ 4.
- **Files**: ``landlock-fs`` — with Landlock (Linux ≥ 5.13) the child can create, write, delete or
  rename files only under its temporary directory, even as root. Reading stays allowed (the
  interpreter imports the standard library; ``/etc/passwd`` is readable as for any process).
  Without Landlock, writes are limited only by the user's own permissions and ``RLIMIT_FSIZE``.
- **Signals**: with Landlock ABI ≥ 6 the child cannot signal processes outside its sandbox.

This contains accidents and careless code (infinite loops, huge allocations, ``os.system``,
``sys.exit`` before the tests, stray network calls); it is not a defence against code written to
escape it. The verdict comes from the harness's own report, so code that exits early fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import functools
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Status = Literal["passed", "failed", "error", "timeout", "memory", "crashed"]

_TAIL_BYTES = 2000
_OUTPUT_LIMIT_BYTES = 1 << 20


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits for one sandboxed run."""

    cpu_s: int = 5
    wall_s: float = 10.0
    memory_bytes: int = 512 << 20
    output_bytes: int = _OUTPUT_LIMIT_BYTES


@dataclass(frozen=True)
class SandboxResult:
    """What happened to one program and its tests.

    ``status``: ``passed`` (every test ran without error), ``failed`` (some assert failed),
    ``error`` (the solution or a test raised something else), ``timeout`` (CPU or wall-clock
    limit), ``memory`` (``MemoryError``), ``crashed`` (the process died without a report).
    ``detail`` says which tests failed or what was raised.
    """

    status: Status
    detail: str
    passed: int = 0
    total: int = 0
    stdout_tail: str = ""
    stderr_tail: str = ""
    isolation: tuple[str, ...] = ()
    seconds: float = 0.0


@functools.cache
def netns_available() -> bool:
    """Whether ``unshare --net`` can create a network namespace here (needs root or userns)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    try:
        probe = subprocess.run(
            [unshare, "--net", "true"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def run_python(
    solution: str,
    tests: list[str],
    setup: str = "",
    limits: SandboxLimits | None = None,
) -> SandboxResult:
    """Run ``solution``, then ``setup``, then each test statement, in one sandboxed process."""
    limits = limits or SandboxLimits()
    nonce = secrets.token_hex(16)
    use_netns = netns_available()
    workdir = Path(tempfile.mkdtemp(prefix="polyllm-sandbox-"))
    started = time.monotonic()
    try:
        job = {
            "solution": solution,
            "setup": setup,
            "tests": tests,
            "nonce": nonce,
            "workdir": str(workdir),
            "limits": dataclasses.asdict(limits),
            "patch_sockets": not use_netns,
        }
        job_path = workdir / "_job.json"
        job_path.write_text(json.dumps(job))
        command = [sys.executable, "-I", str(Path(__file__).resolve()), str(job_path)]
        if use_netns:
            command = ["unshare", "--net", "--", *command]
        report, returncode, timed_out, out, err = _spawn(command, workdir, limits)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return _verdict(
        report,
        nonce,
        returncode,
        timed_out,
        out,
        err,
        ("netns",) if use_netns else (),
        time.monotonic() - started,
    )


def _spawn(
    command: list[str], workdir: Path, limits: SandboxLimits
) -> tuple[dict[str, Any] | None, int, bool, str, str]:
    read_fd, write_fd = os.pipe()
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(workdir)}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                [*command, str(write_fd)],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                pass_fds=(write_fd,),
                start_new_session=True,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        with os.fdopen(read_fd, "rb") as reader:
            timed_out = False
            try:
                proc.wait(timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            # Kill the group even after a normal exit: nothing the job started may outlive it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            os.set_blocking(reader.fileno(), False)
            raw = reader.read(1 << 20) or b""
        report: dict[str, Any] | None = None
        lines = raw.decode("utf-8", "replace").strip().splitlines()
        with contextlib.suppress(ValueError):
            loaded = json.loads(lines[-1]) if lines else None
            report = loaded if isinstance(loaded, dict) else None
        return report, proc.returncode, timed_out, _tail(out), _tail(err)


def _tail(handle: Any) -> str:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - _TAIL_BYTES))
    data: bytes = handle.read()
    return data.decode("utf-8", "replace")


def _verdict(
    report: dict[str, Any] | None,
    nonce: str,
    returncode: int,
    timed_out: bool,
    out: str,
    err: str,
    isolation: tuple[str, ...],
    seconds: float,
) -> SandboxResult:
    def result(status: Status, detail: str, passed: int = 0, total: int = 0) -> SandboxResult:
        layers = isolation + tuple(report.get("isolation", [])) if report else isolation
        return SandboxResult(status, detail, passed, total, out, err, layers, round(seconds, 3))

    if report is None or report.get("nonce") != nonce or "status" not in report:
        if timed_out:
            return result("timeout", "wall-clock timeout")
        if returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            return result("timeout", "CPU time limit")
        if "MemoryError" in err:
            return result("memory", "MemoryError")
        return result("crashed", f"exited with {returncode} before reporting")
    status: Status = report["status"]
    if timed_out and status != "passed":
        status = "timeout"
    return result(status, str(report.get("detail", "")), report["passed"], report["total"])


# ---- the child side: everything below runs inside the sandboxed process ----------------------


def _child_main(job_path: str, result_fd: int) -> None:
    job = json.loads(Path(job_path).read_text())
    limits = job["limits"]
    isolation = _lock_down(job["workdir"], limits, patch_sockets=job["patch_sockets"])
    total = len(job["tests"])

    def report(status: str, detail: str, passed: int = 0) -> None:
        payload = {"nonce": job["nonce"], "status": status, "detail": detail}
        payload |= {"passed": passed, "total": total, "isolation": isolation}
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os.write(result_fd, ("\n" + json.dumps(payload) + "\n").encode())
        os._exit(0)

    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    for label, source in (("solution", job["solution"]), ("setup", job["setup"])):
        try:
            exec(compile(source, f"<{label}>", "exec"), namespace)
        except MemoryError:
            report("memory", f"MemoryError in the {label}")
        except BaseException as exc:  # the job's own code may raise anything, SystemExit too
            report("error", f"{label} raised {_describe(exc)}")
    failed: list[str] = []
    errors: list[str] = []
    memory = False
    for index, test in enumerate(job["tests"]):
        try:
            exec(compile(test, f"<test {index}>", "exec"), namespace)
        except AssertionError:
            failed.append(f"test {index}: {test.strip()[:120]}")
        except MemoryError:
            memory = True
            errors.append(f"test {index}: MemoryError")
        except BaseException as exc:
            errors.append(f"test {index}: {_describe(exc)}")
    passed = total - len(failed) - len(errors)
    if memory:
        report("memory", "; ".join(errors + failed), passed)
    if errors:
        report("error", "; ".join(errors + failed), passed)
    if failed:
        report("failed", "; ".join(failed), passed)
    report("passed", f"{total}/{total} tests passed", passed)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _lock_down(workdir: str, limits: dict[str, Any], *, patch_sockets: bool) -> list[str]:
    """Apply every layer this kernel offers; return their names."""
    layers = ["rlimits"]
    cpu = int(limits["cpu_s"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["output_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    libc = ctypes.CDLL(None, use_errno=True)
    # PR_SET_NO_NEW_PRIVS: required by Landlock and seccomp for unprivileged processes.
    libc.prctl(38, 1, 0, 0, 0)
    layers += _landlock(libc, workdir)
    if _seccomp_no_fork(libc):
        layers.append("seccomp-nofork")
    if patch_sockets:
        _patch_sockets()
        layers.append("socket-patch")
    return layers


_LANDLOCK_CREATE, _LANDLOCK_ADD_RULE, _LANDLOCK_RESTRICT = 444, 445, 446


def _landlock(libc: ctypes.CDLL, workdir: str) -> list[str]:
    """Allow file writes only beneath ``workdir``; block TCP and outside signals if supported."""
    abi = libc.syscall(_LANDLOCK_CREATE, None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    if abi < 1:
        return []
    # WRITE_FILE, REMOVE_DIR, REMOVE_FILE, MAKE_{CHAR,DIR,REG,SOCK,FIFO,BLOCK,SYM}
    write = (1 << 1) | sum(1 << bit for bit in range(4, 13))
    if abi >= 2:
        write |= 1 << 13  # REFER
    if abi >= 3:
        write |= 1 << 14  # TRUNCATE
    net = 0b11 if abi >= 4 else 0  # BIND_TCP, CONNECT_TCP
    scoped = 0b11 if abi >= 6 else 0  # abstract unix sockets, signals
    if abi >= 6:
        attr = struct.pack("QQQ", write, net, scoped)
    elif abi >= 4:
        attr = struct.pack("QQ", write, net)
    else:
        attr = struct.pack("Q", write)
    ruleset = libc.syscall(_LANDLOCK_CREATE, attr, len(attr), 0)
    if ruleset < 0:
        return []
    try:
        directory = os.open(workdir, os.O_PATH | os.O_DIRECTORY)
        rule = struct.pack("=Qi", write, directory)
        added = libc.syscall(_LANDLOCK_ADD_RULE, ruleset, 1, rule, 0)  # PATH_BENEATH
        os.close(directory)
        if added != 0 or libc.syscall(_LANDLOCK_RESTRICT, ruleset, 0) != 0:
            return []
    finally:
        os.close(ruleset)
    layers = ["landlock-fs"]
    if net:
        layers.append("landlock-tcp")
    if scoped:
        layers.append("landlock-signals")
    return layers


_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# fork, vfork, clone; clone3 separately (ENOSYS makes glibc fall back to clone).
_FORK_SYSCALLS = {"x86_64": (57, 58, 56), "aarch64": (220,)}
_CLONE3 = 435


def _seccomp_no_fork(libc: ctypes.CDLL) -> bool:
    """Install a seccomp filter that makes every new process or thread fail."""
    machine = platform.machine()
    if machine not in _AUDIT_ARCH:
        return False
    allow, ret_errno = 0x7FFF0000, 0x00050000
    blocked = _FORK_SYSCALLS[machine]
    n = len(blocked)
    # Classic BPF; a jump offset counts instructions after the next one. Layout: 0 load arch,
    # 1 other arch -> allow, 2 load syscall number, 3.. fork-like -> EAGAIN, clone3 -> ENOSYS,
    # then the three returns (allow, ENOSYS, EAGAIN) at n+4, n+5, n+6.
    load, jeq, ret = 0x20, 0x15, 0x06
    program = [
        (load, 0, 0, 4),
        (jeq, 0, n + 2, _AUDIT_ARCH[machine]),
        (load, 0, 0, 0),
        *[(jeq, n + 2 - i, 0, number) for i, number in enumerate(blocked)],
        (jeq, 1, 0, _CLONE3),
        (ret, 0, 0, allow),
        (ret, 0, 0, ret_errno | errno.ENOSYS),
        (ret, 0, 0, ret_errno | errno.EAGAIN),
    ]
    filters = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(filters)
    fprog = struct.pack("HxxxxxxP", len(program), ctypes.addressof(buffer))
    # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
    return bool(libc.prctl(22, 2, ctypes.c_char_p(fprog), 0, 0) == 0)


def _patch_sockets() -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise OSError(errno.EACCES, "network access is disabled in the sandbox")

    class NoSocket(socket.socket):
        def __init__(self, *_args: Any, **_kwargs: Any) -> None:
            refuse()

    socket.socket = NoSocket  # type: ignore[misc]
    socket.create_connection = refuse
    socket.socketpair = refuse
    socket.getaddrinfo = refuse


if __name__ == "__main__":
    _child_main(sys.argv[1], int(sys.argv[2]))
