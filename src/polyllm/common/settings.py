"""What every service's settings class shares: env vars and CLI flags from one class."""

from __future__ import annotations

from typing import Literal

from pydantic_settings import SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


def service_settings_config(prog: str) -> SettingsConfigDict:
    """Settings read from env vars (``PORT``) and, when parsed with ``_cli_parse_args``, from
    kebab-case flags (``--port``) of the command ``prog``; errors are raised, never printed."""
    return SettingsConfigDict(
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_prog_name=prog,
        cli_exit_on_error=False,
        populate_by_name=True,
        extra="ignore",
    )
