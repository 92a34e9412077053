"""The catalog itself and :func:`resolve_spec`, the m5 override from the environment."""

from __future__ import annotations

import pytest

from polyllm.models.catalog import (
    CATALOG,
    M5_SHA256_ENV,
    M5_SIZE_ENV,
    InvalidModelOverride,
    UnknownModelError,
    get_model,
    resolve_catalog,
    resolve_spec,
)

SHA = "ab" * 32


def test_catalog_entries_are_complete() -> None:
    assert list(CATALOG) == ["m1", "m2", "m3", "m4", "m5"]
    assert [spec.tier for spec in CATALOG.values()] == [1, 2, 3, 4, 5]
    for spec in CATALOG.values():
        assert spec.size_bytes is not None and spec.size_bytes > 0
        assert len(spec.sha256) == 64 and spec.pypi_parts
    # m5 serves the m4 file by default.
    assert (CATALOG["m5"].sha256, CATALOG["m5"].size_bytes) == (
        CATALOG["m4"].sha256,
        CATALOG["m4"].size_bytes,
    )


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(UnknownModelError, match="unknown model 'm9'; known: m1, m2, m3, m4, m5"):
        get_model("m9")
    with pytest.raises(UnknownModelError):
        resolve_spec("m9", {M5_SHA256_ENV: SHA})


def test_without_override_every_spec_is_the_catalog_one() -> None:
    for model_id, spec in CATALOG.items():
        assert resolve_spec(model_id, {}) is spec
    assert resolve_catalog({}) == CATALOG


@pytest.mark.parametrize("env", [{M5_SHA256_ENV: ""}, {M5_SHA256_ENV: "  ", M5_SIZE_ENV: ""}])
def test_empty_values_count_as_unset(env: dict[str, str]) -> None:
    assert resolve_spec("m5", env) is CATALOG["m5"]


def test_custom_m5_of_unknown_size() -> None:
    spec = resolve_spec("m5", {M5_SHA256_ENV: SHA})

    assert (spec.id, spec.sha256, spec.size_bytes) == ("m5", SHA, None)
    assert (spec.display_name, spec.pypi_parts) == ("custom m5", ())
    # What serving needs stays that of the fallback tier.
    fallback = CATALOG["m5"]
    assert (spec.tier, spec.default_backend) == (fallback.tier, fallback.default_backend)
    assert (spec.context_length, spec.chat_template) == (
        fallback.context_length,
        fallback.chat_template,
    )
    assert CATALOG["m5"] is fallback and fallback.sha256 != SHA  # the catalog is not changed


def test_custom_m5_with_size_and_sloppy_sha() -> None:
    spec = resolve_spec("m5", {M5_SHA256_ENV: f"  {SHA.upper()}\n", M5_SIZE_ENV: " 4096 "})
    assert (spec.sha256, spec.size_bytes) == (SHA, 4096)


def test_override_applies_only_to_m5() -> None:
    env = {M5_SHA256_ENV: SHA, M5_SIZE_ENV: "10"}
    assert resolve_spec("m4", env) is CATALOG["m4"]
    resolved = resolve_catalog(env)
    assert list(resolved) == list(CATALOG)
    assert resolved["m5"].sha256 == SHA
    assert {k: v for k, v in resolved.items() if k != "m5"} == {
        k: v for k, v in CATALOG.items() if k != "m5"
    }


def test_override_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(M5_SHA256_ENV, SHA)
    assert resolve_spec("m5").sha256 == SHA
    assert resolve_catalog()["m5"].sha256 == SHA


def test_the_catalog_sha_gives_the_catalog_spec() -> None:
    m5 = CATALOG["m5"]
    assert resolve_spec("m5", {M5_SHA256_ENV: m5.sha256}) is m5
    assert resolve_spec("m5", {M5_SHA256_ENV: m5.sha256, M5_SIZE_ENV: str(m5.size_bytes)}) is m5
    with pytest.raises(InvalidModelOverride, match=f"has {m5.size_bytes} bytes, but {M5_SIZE_ENV}"):
        resolve_spec("m5", {M5_SHA256_ENV: m5.sha256, M5_SIZE_ENV: "123"})


@pytest.mark.parametrize(
    "sha",
    [
        "ab" * 31,  # 62 digits
        "ab" * 32 + "a",  # 65 digits
        "zz" * 32,  # not hex
        "sha256:" + "ab" * 32,
        "ab" * 16 + " " + "ab" * 16,
    ],
)
def test_invalid_sha_is_a_clear_error(sha: str) -> None:
    with pytest.raises(InvalidModelOverride, match=f"{M5_SHA256_ENV} must be 64 hex digits"):
        resolve_spec("m5", {M5_SHA256_ENV: sha})


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ("big", "must be a whole number of bytes, got 'big'"),
        ("1.5e9", "must be a whole number of bytes"),
        ("0", "must be a positive number of bytes, got 0"),
        ("-7", "must be a positive number of bytes, got -7"),
    ],
)
def test_invalid_size_is_a_clear_error(size: str, message: str) -> None:
    with pytest.raises(InvalidModelOverride, match=f"{M5_SIZE_ENV} {message}"):
        resolve_spec("m5", {M5_SHA256_ENV: SHA, M5_SIZE_ENV: size})


def test_size_without_sha_is_an_error() -> None:
    with pytest.raises(InvalidModelOverride, match=f"{M5_SIZE_ENV} is set but {M5_SHA256_ENV}"):
        resolve_spec("m5", {M5_SIZE_ENV: "4096"})


def test_invalid_override_is_a_value_error() -> None:
    # Settings validators turn ValueError into a validation error naming the problem.
    assert issubclass(InvalidModelOverride, ValueError)
