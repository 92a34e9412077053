"""deploy/aws/: the GPU host's launch and teardown scripts, without AWS.

``--dry-run`` must print every AWS call and make none: a stand-in ``aws`` on PATH records any
call. The same stand-in, answering like the AWS CLI does, shows that a real run makes exactly
the calls the dry run printed, and prints a registry entry the router accepts.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from polyllm.router.backends import load_registry

REPO = Path(__file__).resolve().parents[2]
AWS = REPO / "deploy/aws"
MODEL_URI = "s3://polyllm-models/models/m5.gguf"
LAUNCH_ARGS = [
    "--model-uri", MODEL_URI, "--instance-profile", "polyllm-read",
    "--allow-cidr", "10.20.0.0/16", "--region", "eu-west-1",
]  # fmt: skip

# What the stand-in answers, by "service operation", like `aws … --output text` would.
ANSWERS = {
    "ssm get-parameter": "ami-0abc1234def567890",
    "ec2 describe-vpcs": "vpc-0a1b2c3d",
    "ec2 create-security-group": "sg-0123456789abcdef0",
    "ec2 run-instances": "i-0fedcba9876543210",
    "ec2 describe-instances": "ec2-3-250-1-2.eu-west-1.compute.amazonaws.com",
}
FAKE_AWS = """#!{python}
import json, sys
with open({log!r}, "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if {fail}:
    sys.exit("the stand-in aws was called")
print(json.loads({answers!r}).get(" ".join(args[2:4]), ""))
"""


def stand_in_aws(tmp_path: Path, *, fail: bool, answers: dict[str, str]) -> Path:
    """An ``aws`` in ``tmp_path/bin`` that logs its arguments (JSON lines) and answers."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "aws-calls.jsonl"
    script = bin_dir / "aws"
    script.write_text(
        FAKE_AWS.format(python=sys.executable, log=str(log), fail=fail, answers=json.dumps(answers))
    )
    script.chmod(0o755)
    return log


def run(script: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path)}
    return subprocess.run(
        [str(AWS / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def printed_calls(stdout: str) -> list[list[str]]:
    """The AWS calls a script showed (one `aws …` line each, shell-quoted), without `aws`."""
    return [shlex.split(line)[1:] for line in stdout.splitlines() if line.startswith("aws ")]


def made_calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def operations(calls: list[list[str]]) -> list[str]:
    for call in calls:
        assert call[:2] == ["--region", "eu-west-1"], call
    return [" ".join(call[2:4]) for call in calls]


def option(call: list[str], name: str) -> list[str]:
    """The values after ``name`` in ``call``, up to the next option."""
    start = call.index(name) + 1
    end = next((i for i in range(start, len(call)) if call[i].startswith("--")), len(call))
    return call[start:end]


LAUNCH_OPERATIONS = [
    "ssm get-parameter",
    "ec2 describe-vpcs",
    "ec2 create-security-group",
    "ec2 authorize-security-group-ingress",
    "ec2 run-instances",
    "ec2 wait",
    "ec2 describe-instances",
]


def test_launch_dry_run_prints_every_call_and_makes_none(tmp_path: Path) -> None:
    log = stand_in_aws(tmp_path, fail=True, answers={})
    user_data = tmp_path / "user-data.sh"
    args = [*LAUNCH_ARGS, "--user-data-out", str(user_data), "--dry-run"]
    result = run("launch-gpu-host.sh", args, tmp_path)

    assert result.returncode == 0, result.stderr
    assert made_calls(log) == []
    calls = printed_calls(result.stdout)
    assert operations(calls) == LAUNCH_OPERATIONS
    ami_lookup, _, group, ingress, launch, wait, _ = calls
    assert "base-oss-nvidia-driver-gpu" in option(ami_lookup, "--name")[0]
    assert "Value=polyllm-gpu-1" in option(group, "--tag-specifications")[0]
    assert option(ingress, "--port") == ["8105"] and option(ingress, "--cidr") == ["10.20.0.0/16"]
    assert option(launch, "--instance-type") == ["g5.xlarge"]
    assert option(launch, "--image-id") == ["<ami-id>"]
    assert option(launch, "--iam-instance-profile") == ["Name=polyllm-read"]
    assert option(launch, "--user-data") == [f"file://{user_data}"]
    (disk,) = json.loads(option(launch, "--block-device-mappings")[0])
    assert disk["Ebs"] == {"VolumeSize": 100, "VolumeType": "gp3", "DeleteOnTermination": True}
    tagged = option(launch, "--tag-specifications")
    assert [spec.split(",")[0] for spec in tagged] == [
        "ResourceType=instance",
        "ResourceType=volume",
    ]
    assert all("Key=polyllm:deployment,Value=polyllm-gpu-1" in spec for spec in tagged)
    assert wait[4:] == ["instance-running", "--instance-ids", "<instance-id>"]
    assert "dry run: nothing was created" in result.stdout


def test_the_user_data_installs_docker_and_the_toolkit_and_runs_m5_on_the_gpu(
    tmp_path: Path,
) -> None:
    stand_in_aws(tmp_path, fail=True, answers={})
    user_data = tmp_path / "user-data.sh"
    args = [*LAUNCH_ARGS, "--user-data-out", str(user_data), "--m5-sha256", "ab" * 32, "--dry-run"]
    assert run("launch-gpu-host.sh", args, tmp_path).returncode == 0

    text = user_data.read_text()
    assert not re.search(r"__[A-Z0-9_]+__", text)  # every placeholder filled in
    assert subprocess.run(["bash", "-n", str(user_data)], check=False).returncode == 0
    assert f"MODEL_URI='{MODEL_URI}'" in text and "IMAGE='polyllm/inference:gpu-ready'" in text
    assert f"M5_SHA256='{'ab' * 32}'" in text
    assert "mkfs.ext4" in text and "/models" in text
    assert "apt-get install -y docker.io" in text and "nvidia-container-toolkit" in text
    docker_run = " ".join(text[text.index("docker run -d") :].split("\\\n"))
    for part in ("--gpus all", "-e USE_GPU=true", "-e MODEL_ID=m5", '-e MODEL_URI="$MODEL_URI"'):
        assert part in docker_run, part


def test_launch_makes_the_calls_the_dry_run_shows_and_prints_a_registry_entry(
    tmp_path: Path,
) -> None:
    dry = tmp_path / "dry"
    dry.mkdir()
    stand_in_aws(dry, fail=True, answers={})
    shown = printed_calls(run("launch-gpu-host.sh", [*LAUNCH_ARGS, "--dry-run"], dry).stdout)
    log = stand_in_aws(tmp_path, fail=False, answers=ANSWERS)

    result = run("launch-gpu-host.sh", LAUNCH_ARGS, tmp_path)

    assert result.returncode == 0, result.stderr
    made = made_calls(log)
    assert printed_calls(result.stdout) == made
    assert operations(made) == operations(shown) == LAUNCH_OPERATIONS
    launch = made[4]
    assert option(launch, "--image-id") == [ANSWERS["ssm get-parameter"]]
    assert option(launch, "--security-group-ids") == [ANSWERS["ec2 create-security-group"]]
    line = next(x for x in result.stdout.splitlines() if x.strip().startswith('"m5":'))
    (spec,) = load_registry("{" + line.strip() + "}").values()
    assert spec.url == f"http://{ANSWERS['ec2 describe-instances']}:8105"
    assert (spec.backend, spec.host, spec.tier) == ("gpu", "gpu-1", 5)


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("--allow-cidr", "--allow-cidr must be an IPv4 CIDR"),
        ("--instance-profile", "--instance-profile is required"),
        ("--model-uri", "--model-uri must be s3://BUCKET/KEY"),
    ],
)
def test_launch_refuses_to_start_without_what_it_needs(
    tmp_path: Path, drop: str, message: str
) -> None:
    log = stand_in_aws(tmp_path, fail=True, answers={})
    index = LAUNCH_ARGS.index(drop)
    args = LAUNCH_ARGS[:index] + LAUNCH_ARGS[index + 2 :]
    result = run("launch-gpu-host.sh", args, tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert made_calls(log) == [] and printed_calls(result.stdout) == []


def test_teardown_dry_run_prints_every_call_and_makes_none(tmp_path: Path) -> None:
    log = stand_in_aws(tmp_path, fail=True, answers={})
    result = run("teardown-gpu-host.sh", ["--region", "eu-west-1", "--dry-run"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert made_calls(log) == []
    calls = printed_calls(result.stdout)
    assert operations(calls) == [
        "ec2 describe-instances", "ec2 terminate-instances", "ec2 wait",
        "ec2 describe-security-groups", "ec2 delete-security-group",
    ]  # fmt: skip
    assert "Name=tag:polyllm:deployment,Values=polyllm-gpu-1" in option(calls[0], "--filters")


def test_teardown_removes_the_tagged_instances_then_their_security_group(tmp_path: Path) -> None:
    answers = {
        "ec2 describe-instances": "i-0aaa\ti-0bbb",
        "ec2 describe-security-groups": "sg-0ccc",
    }
    log = stand_in_aws(tmp_path, fail=False, answers=answers)
    result = run("teardown-gpu-host.sh", ["--region", "eu-west-1", "--name", "gpu-x"], tmp_path)
    assert result.returncode == 0, result.stderr
    made = made_calls(log)
    assert printed_calls(result.stdout) == made
    _, terminate, wait, _, delete = made
    assert option(terminate, "--instance-ids") == ["i-0aaa", "i-0bbb"]
    assert wait[4:] == ["instance-terminated", "--instance-ids", "i-0aaa", "i-0bbb"]
    assert option(delete, "--group-id") == ["sg-0ccc"]
    assert "removed gpu-x: 2 instance(s), 1 security group(s)" in result.stdout


def test_the_scripts_pass_shellcheck() -> None:
    scripts = sorted(AWS.glob("*.sh"))
    assert {s.name for s in scripts} >= {"launch-gpu-host.sh", "teardown-gpu-host.sh"}
    shellcheck = Path(sys.executable).parent / "shellcheck"
    result = subprocess.run(
        [str(shellcheck), "--external-sources", "--source-path=SCRIPTDIR", *map(str, scripts)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
