"""The sandbox for model-written code: limits, isolation, verdicts."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from polyllm.training.sandbox import SandboxLimits, run_python

FAST = SandboxLimits(cpu_s=1, wall_s=5.0)
PROMPTS = Path(__file__).resolve().parents[3] / "shared" / "data" / "prompts" / "train.jsonl"


def test_passing_and_failing_tests_are_told_apart() -> None:
    code = "def inc(x):\n    return x + 1\n"
    passed = run_python(code, ["assert inc(1) == 2", "assert inc(2) == 3"])
    assert (passed.status, passed.passed, passed.total) == ("passed", 2, 2)
    failed = run_python(code, ["assert inc(1) == 2", "assert inc(2) == 4"])
    assert failed.status == "failed"
    assert "test 1" in failed.detail and failed.passed == 1


def test_setup_runs_between_solution_and_tests() -> None:
    result = run_python("class Box:\n    v = 3\n", ["assert b.v == 3"], setup="b = Box()")
    assert result.status == "passed"


def test_syntax_error_and_early_exit_do_not_pass() -> None:
    assert run_python("def f(:\n", ["assert True"]).status == "error"
    assert run_python("import sys\nsys.exit(0)\n", ["assert True"]).status == "error"
    exited = run_python("import os\nos._exit(0)\n", ["assert True"])
    assert exited.status == "crashed"


def test_infinite_loop_is_stopped_by_the_cpu_limit() -> None:
    result = run_python("while True:\n    pass\n", ["assert True"], limits=FAST)
    assert result.status == "timeout"
    assert result.seconds < 5


def test_sleeping_code_is_stopped_by_the_wall_clock() -> None:
    limits = SandboxLimits(cpu_s=5, wall_s=1.0)
    result = run_python("import time\ntime.sleep(60)\n", ["assert True"], limits=limits)
    assert (result.status, result.detail) == ("timeout", "wall-clock timeout")


def test_large_allocation_is_a_memory_failure() -> None:
    result = run_python("x = bytearray(4 << 30)\n", ["assert True"], limits=FAST)
    assert result.status == "memory"


def test_no_new_processes() -> None:
    bomb = "import os\nwhile True:\n    os.fork()\n"
    result = run_python(bomb, ["assert True"], limits=FAST)
    assert result.status == "error"
    assert "BlockingIOError" in result.detail or "Resource temporarily" in result.detail
    shell = run_python("import subprocess\nsubprocess.run(['true'])\n", ["assert True"])
    assert shell.status == "error"


def test_sockets_cannot_reach_anything() -> None:
    code = "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)\n"
    result = run_python(code, ["assert True"], limits=FAST)
    assert result.status == "error"
    assert "Error" in result.detail
    assert "netns" in result.isolation or "socket-patch" in result.isolation


def test_writes_stay_in_the_temporary_directory(tmp_path: Path) -> None:
    outside = tmp_path / "escaped.txt"
    code = f"open({str(outside)!r}, 'w').write('x')\n"
    result = run_python(code, ["assert True"], limits=FAST)
    if "landlock-fs" in result.isolation:
        assert result.status == "error" and "PermissionError" in result.detail
        assert not outside.exists()
    inside = run_python("open('own.txt', 'w').write('x')\n", ["assert open('own.txt').read()"])
    assert inside.status == "passed"


def test_reading_system_files_is_allowed_and_output_is_captured() -> None:
    code = "print(open('/etc/passwd').read().split(':')[0])\n"
    result = run_python(code, ["assert True"], limits=FAST)
    assert result.status == "passed"
    assert result.stdout_tail.strip() == "root"


def test_huge_output_is_cut_off() -> None:
    code = "while True:\n    print('x' * 10000)\n"
    result = run_python(code, ["assert True"], limits=SandboxLimits(cpu_s=2, wall_s=5.0))
    assert result.status in {"error", "timeout"}
    assert len(result.stdout_tail) <= 2000


def test_environment_is_stripped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYLLM_SECRET_FOR_TEST", "x")
    code = "import os\nLEAK = os.environ.get('POLYLLM_SECRET_FOR_TEST')\n"
    assert run_python(code, ["assert LEAK is None"]).status == "passed"


@pytest.mark.skipif(not PROMPTS.exists(), reason="shared prompts file not present")
def test_first_mbpp_reference_solutions_pass() -> None:
    records = []
    with PROMPTS.open() as lines:
        for line in lines:
            record = json.loads(line)
            if record["scorer"] == "unit_test" and record["meta"].get("canonical"):
                records.append(record)
            if len(records) == 20:
                break
    for record in records:
        reference = record["reference"]
        result = run_python(record["meta"]["canonical"], reference["tests"], reference["setup"])
        assert result.status == "passed", (record["id"], result.detail, result.stderr_tail)


def test_no_temporary_directories_are_left_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert run_python("x = 1\n", ["assert x == 1"]).status == "passed"
    assert run_python("while True:\n    pass\n", [], limits=FAST).status == "timeout"
    assert list(tmp_path.iterdir()) == []
