"""One error mapper: domain errors and validation errors become OpenAI-shaped JSON bodies."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from polyllm.common.errors import (
    InvalidRequest,
    Overloaded,
    PolyLLMError,
    UnknownModel,
    install_error_handlers,
)
from polyllm.common.schemas import GenerateRequest


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    seen: list[str] = []
    install_error_handlers(app, lambda request: seen.append(request.url.path))
    app.state.client_errors = seen

    @app.post("/echo")
    async def echo(body: GenerateRequest) -> dict[str, str]:
        return {"prompt": body.prompt}

    @app.get("/raise/{kind}")
    async def boom(kind: str) -> None:
        errors: dict[str, PolyLLMError] = {
            "invalid": InvalidRequest("bad temp", param="temp"),
            "busy": Overloaded("queue full", retry_after=3),
            "model": UnknownModel("m9", ["m1", "m2"]),
        }
        raise errors[kind]

    return TestClient(app)


def test_domain_error_has_status_body_and_headers(client: TestClient) -> None:
    resp = client.get("/raise/busy")
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "3"
    assert resp.json() == {
        "error": {
            "message": "queue full",
            "type": "server_error",
            "param": None,
            "code": "overloaded",
        }
    }


def test_unknown_model_names_the_known_ones(client: TestClient) -> None:
    resp = client.get("/raise/model")
    assert resp.status_code == 404
    assert resp.json()["error"]["message"] == "unknown model 'm9'; available: m1, m2"
    assert resp.json()["error"]["param"] == "model"


def test_client_errors_are_reported_to_the_hook_but_server_errors_are_not(
    client: TestClient,
) -> None:
    client.get("/raise/invalid")
    client.get("/raise/busy")
    client.post("/echo", json={})
    assert client.app.state.client_errors == ["/raise/invalid", "/echo"]  # type: ignore[attr-defined]


def test_validation_error_names_the_field(client: TestClient) -> None:
    resp = client.post("/echo", json={"prompt": "hi", "temp": 9})
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["param"] == "temp"
    assert error["message"].startswith("temp: ")


def test_several_validation_errors_are_all_named(client: TestClient) -> None:
    resp = client.post("/echo", json={"temp": 9, "max_tokens": 0})
    message = resp.json()["error"]["message"]
    assert "temp" in message and "max_tokens" in message and "prompt" in message


def test_broken_json_is_400(client: TestClient) -> None:
    resp = client.post(
        "/echo", content=b'{"prompt": ', headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "body"


def test_unknown_route_is_json_404(client: TestClient) -> None:
    resp = client.get("/nope")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "http_404"


def test_a_bug_is_a_json_500_that_names_the_request() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/bug")
    async def bug() -> None:
        raise ZeroDivisionError("oops")

    resp = TestClient(app, raise_server_exceptions=False).get("/bug")
    assert resp.status_code == 500
    assert resp.json()["error"]["code"] == "internal_error"
    assert "oops" not in resp.text  # internals stay in the log
