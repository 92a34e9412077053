"""The inference image stays consistent with the native service: same command, same settings."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from polyllm.inference.settings import InferenceSettings

DOCKERFILE = Path(__file__).resolve().parents[2] / "deploy/docker/inference.Dockerfile"


def dockerfile_env() -> dict[str, str]:
    """The ENV of the final stage (continuation lines joined)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    final_stage = text.split("\nFROM ")[-1]
    env: dict[str, str] = {}
    for line in final_stage.splitlines():
        if line.startswith("ENV "):
            env.update(dict(item.split("=", 1) for item in shlex.split(line[4:])))
    return env


def test_image_env_is_understood_by_the_service_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env = dockerfile_env()
    assert {"MODEL_ID", "PORT", "HOST", "POLYLLM_MODELS_DIR"} <= set(env)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = InferenceSettings()
    assert settings.model_id == env["MODEL_ID"]
    assert settings.port == int(env["PORT"])
    assert settings.host == "0.0.0.0"
    assert settings.resolved_model_path == Path("/models") / f"{env['MODEL_ID']}.gguf"


def test_image_runs_the_native_command_and_exposes_its_port() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r'^CMD \["polyllm", "serve-model"\]$', text, re.MULTILINE)
    assert f"EXPOSE {dockerfile_env()['PORT']}" in text
    assert "/health" in text
