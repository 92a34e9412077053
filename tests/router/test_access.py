"""API keys and caller identity (no Redis needed)."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from polyllm.common.errors import Unauthorized
from polyllm.router.access import AccessPolicy, key_digest, parse_api_keys


def request(headers: dict[str, str], ip: str = "10.1.2.3") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "headers": raw, "client": (ip, 5555)})


def policy(keys: str | None = None) -> AccessPolicy:
    return AccessPolicy(parse_api_keys(keys), {}, 10, 1, True)


def test_keys_are_kept_only_as_digests() -> None:
    digests = parse_api_keys(f"alpha, sha256:{key_digest('beta')}")
    assert digests == {key_digest("alpha"), key_digest("beta")}
    with pytest.raises(ValueError, match="64 hex"):
        parse_api_keys("sha256:abc")


def test_without_keys_callers_are_told_apart_by_ip_or_key() -> None:
    p = policy()
    assert p.caller(request({})) == "ip:10.1.2.3"
    by_key = p.caller(request({"X-API-Key": "k1"}))
    assert by_key.startswith("key:") and "k1" not in by_key


def test_with_keys_a_known_key_is_required() -> None:
    p = policy("alpha")
    with pytest.raises(Unauthorized):
        p.caller(request({}))
    with pytest.raises(Unauthorized):
        p.caller(request({"Authorization": "Bearer wrong"}))
    assert p.caller(request({"Authorization": "Bearer alpha"})) == p.caller(
        request({"X-API-Key": "alpha"})
    )


def test_per_key_limits_override_the_global_ones() -> None:
    p = AccessPolicy(frozenset(), {key_digest("vip"): (100.0, 5.0)}, 10, 1, True)
    assert p.limits_for(p.caller(request({"X-API-Key": "vip"}))) == (100.0, 5.0)
    assert p.limits_for(p.caller(request({}))) == (10, 1)
