"""The fast lane answers POST /v1/chat/completions before FastAPI's stack: it must keep
request ids, OpenAI-shaped errors and the 500 for bugs, and leave every other route alone."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse

from aiport.domain.errors import InvalidRequest
from aiport.web.errors import install_error_handlers
from aiport.web.fastlane import GatewayApp
from aiport.web.middleware import RequestIdMiddleware
from tests.support.servers import ServerThread


async def _lane(request: Request) -> JSONResponse:
    body = await request.json()
    if body.get("fail") == "refuse":
        raise InvalidRequest("refused on purpose", param="fail")
    if body.get("fail") == "bug":
        raise RuntimeError("a bug")
    return JSONResponse({"echo": body, "request_id": request.scope["state"]["request_id"]})


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    app = GatewayApp(fast_routes={"/v1/chat/completions": _lane})
    install_error_handlers(app)

    @app.post("/v1/other")
    async def other() -> dict[str, str]:
        return {"via": "fastapi"}

    app.add_middleware(RequestIdMiddleware)
    with ServerThread(app) as s:
        yield s


def test_the_lane_answers_with_a_request_id(server: ServerThread) -> None:
    r = httpx.post(f"{server.url}/v1/chat/completions", json={"hi": 1})
    assert r.status_code == 200
    assert r.json()["echo"] == {"hi": 1}
    assert r.headers["x-request-id"] == r.json()["request_id"] and r.headers["x-request-id"].startswith("req_")


def test_refusals_and_bugs_leave_in_openai_shape(server: ServerThread) -> None:
    refused = httpx.post(f"{server.url}/v1/chat/completions", json={"fail": "refuse"})
    assert refused.status_code == 400
    assert refused.json()["error"] == {
        "message": "refused on purpose",
        "type": "invalid_request_error",
        "param": "fail",
        "code": refused.json()["error"]["code"],
    }
    bug = httpx.post(f"{server.url}/v1/chat/completions", json={"fail": "bug"})
    assert bug.status_code == 500
    assert bug.json()["error"]["code"] == "internal_error"
    assert bug.headers["x-request-id"] in bug.json()["error"]["message"]


def test_other_routes_and_methods_stay_with_fastapi(server: ServerThread) -> None:
    assert httpx.post(f"{server.url}/v1/other").json() == {"via": "fastapi"}
    wrong_method = httpx.get(f"{server.url}/v1/chat/completions")  # FastAPI's router: no GET route here
    assert wrong_method.status_code == 404 and "error" in wrong_method.json()
    assert wrong_method.headers["x-request-id"].startswith("req_")
