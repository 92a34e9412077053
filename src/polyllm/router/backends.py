"""The backends the router knows: their spec, the default set, and loading ``POLYLLM_REGISTRY``
(JSON, or a path to a JSON/YAML file)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Backend = Literal["cpu", "gpu"]
PreferBackend = Literal["cpu", "gpu", "auto"]


@dataclass(frozen=True)
class BackendSpec:
    """One model service the router may send requests to."""

    model: str
    """Model id, e.g. ``m3``."""
    url: str
    """Base URL without a trailing slash, e.g. ``http://127.0.0.1:8103``."""
    backend: Backend
    host: str
    """A display name for the machine, e.g. ``cpu-node-1``."""
    tier: int
    """1 = smallest … 5 = the large fallback tier."""
    cost: float
    """Relative cost weight (> 0)."""
    max_tokens: int | None = None
    """Per-model ceiling on ``max_tokens``; None: the router's default."""


_DEFAULT_COSTS = (1.0, 2.0, 4.0, 10.0, 10.0)

DEFAULT_REGISTRY: Mapping[str, BackendSpec] = MappingProxyType(
    {
        f"m{tier}": BackendSpec(
            model=f"m{tier}",
            url=f"http://127.0.0.1:{8100 + tier}",
            backend="cpu",
            host="cpu-node-1",
            tier=tier,
            cost=cost,
        )
        for tier, cost in enumerate(_DEFAULT_COSTS, start=1)
    }
)
"""m1..m5 on http://127.0.0.1:8101..8105, all on the CPU (the local stack's defaults)."""


class RegistryError(ValueError):
    """The registry configuration is unusable; the message names the model id and the field."""


_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class _Entry(BaseModel):
    """One registry entry as written in the configuration."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Base URL of the model service (http or https).")
    backend: Backend = Field(default="cpu", description="Where the model runs.")
    host: str | None = Field(
        default=None, min_length=1, description="Display name (default: the URL's host)."
    )
    tier: int = Field(ge=1, le=5, description="1 = smallest … 5 = fallback.")
    cost: float = Field(gt=0, allow_inf_nan=False, description="Relative cost weight.")
    max_tokens: int | None = Field(default=None, ge=1, description="Per-model max_tokens ceiling.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            parts = urlsplit(value.strip())
            _ = parts.port  # raises ValueError on a bad port
        except ValueError as exc:
            raise ValueError(f"not a valid URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.query or parts.fragment:
            raise ValueError("must be a base URL, without query or fragment")
        return value.strip().rstrip("/")


def _entry_errors(model: str, exc: ValidationError) -> list[str]:
    messages = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "entry"
        got = repr(err["input"])
        got = got if len(got) <= 60 else got[:57] + "..."
        text = err["msg"].removeprefix("Value error, ")
        messages.append(f"registry entry {model!r}: {field}: {text} (got {got})")
    return messages


def parse_registry(raw: object) -> dict[str, BackendSpec]:
    """Validate a decoded registry mapping (model id → entry), ordered by tier, cost, id."""
    if not isinstance(raw, dict):
        raise RegistryError(
            f"registry must be an object mapping model id to entry, got {type(raw).__name__}"
        )
    if not raw:
        raise RegistryError("registry is empty: name at least one model")
    specs: list[BackendSpec] = []
    errors: list[str] = []
    for model, value in raw.items():
        if not isinstance(model, str) or not _MODEL_ID.match(model):
            errors.append(f"registry model id {model!r} is invalid: use letters, digits, . _ -")
            continue
        try:
            entry = _Entry.model_validate(value)
        except ValidationError as exc:
            errors.extend(_entry_errors(model, exc))
            continue
        host = entry.host or urlsplit(entry.url).hostname or entry.url
        specs.append(
            BackendSpec(
                model, entry.url, entry.backend, host, entry.tier, entry.cost, entry.max_tokens
            )
        )
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.url in seen:
            errors.append(
                f"registry entries {seen[spec.url]!r} and {spec.model!r}: url: "
                f"both point at {spec.url}"
            )
        seen.setdefault(spec.url, spec.model)
    if errors:
        raise RegistryError("; ".join(errors))
    specs.sort(key=lambda s: (s.tier, s.cost, s.model))
    return {s.model: s for s in specs}


def load_registry(value: str | None) -> dict[str, BackendSpec]:
    """The registry from ``POLYLLM_REGISTRY``: None/empty → the default, ``{…}`` → inline JSON,
    anything else → a path to a ``.json``, ``.yaml`` or ``.yml`` file.

    Raises :class:`RegistryError` with a message naming the model id and field at fault.
    """
    text = (value or "").strip()
    if not text:
        return dict(DEFAULT_REGISTRY)
    if text.startswith("{"):
        return parse_registry(_decode_json(text, "registry JSON"))
    path = Path(text).expanduser()
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise RegistryError(
            f"registry {text!r} is neither inline JSON (starting with '{{') "
            "nor a .json, .yaml or .yml file"
        )
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError(f"registry file {str(path)!r} cannot be read: {exc.strerror}") from exc
    if suffix == ".json":
        return parse_registry(_decode_json(content, f"registry file {str(path)!r}"))
    try:
        raw = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise RegistryError(f"registry file {str(path)!r} is not valid YAML: {exc}") from exc
    return parse_registry(raw)


def _decode_json(text: str, what: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RegistryError(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
