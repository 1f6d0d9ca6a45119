"""Tools (calculator without eval, HTTP GET to an allowlist, time) and the agent loop:
step limit, tool errors returned to the model, spans for each tool call."""

from __future__ import annotations

import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.routing import Route

from aiport.tools.base import ToolContext, ToolError
from aiport.tools.builtin import CURRENT_TIME, HTTP_GET
from aiport.tools.calculator import evaluate
from tests.apps.harness import World
from tests.knowledge.agent_model import AgentModel
from tests.support.servers import ServerThread


@pytest.mark.parametrize(
    ("expr", "value"), [("2+3*4", 14), ("(1250 * 1.1) / 10", 137.5), ("2^10", 1024), ("sqrt(16) + abs(-2)", 6.0)]
)
def test_calculator(expr: str, value: float) -> None:
    assert evaluate(expr) == value


@pytest.mark.parametrize(
    "expr", ["__import__('os').system('id')", "().__class__", "9**9**9", "1/0", "x + 1", "open('f')", "a" * 400]
)
def test_calculator_refuses_anything_but_arithmetic(expr: str) -> None:
    with pytest.raises(ToolError):
        evaluate(expr)


@pytest.fixture(scope="module")
def site() -> ServerThread:  # type: ignore[misc]
    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse("exchange rate: 1 USD = 1380 KRW")

    async def hop(request: Request) -> RedirectResponse:
        return RedirectResponse("http://169.254.169.254/latest/meta-data")

    server = ServerThread(Starlette(routes=[Route("/rate", page), Route("/hop", hop)])).start()
    yield server
    server.stop()


async def test_http_get_allowlist_ssrf_and_redirects(site: ServerThread) -> None:
    host = f"127.0.0.1:{site.port}"
    ok = ToolContext(http_allowlist=[host], http_allow_private=True)
    result = json.loads(await HTTP_GET.run({"url": f"http://{host}/rate"}, ok))
    assert result == {"status": 200, "body": "exchange rate: 1 USD = 1380 KRW"}
    with pytest.raises(ToolError, match="not on the admin's allowlist"):
        await HTTP_GET.run({"url": "http://example.org/"}, ok)
    with pytest.raises(ToolError, match="redirect"):
        await HTTP_GET.run({"url": f"http://{host}/hop"}, ok)
    strict = ToolContext(http_allowlist=[host])  # allowlisted, but loopback is not public
    with pytest.raises(ToolError, match="loopback"):
        await HTTP_GET.run({"url": f"http://{host}/rate"}, strict)
    with pytest.raises(ToolError, match="http"):
        await HTTP_GET.run({"url": "file:///etc/passwd"}, ok)


async def test_current_time() -> None:
    value = json.loads(await CURRENT_TIME.run({"timezone": "Asia/Seoul"}, ToolContext()))
    assert value["iso"].endswith("+09:00")
    with pytest.raises(ToolError, match="IANA"):
        await CURRENT_TIME.run({"timezone": "Mars/Base"}, ToolContext())


def _ask(world: World, message: str, tools: list[str]) -> dict:  # type: ignore[type-arg]
    with world.client("a_member") as c:
        r = c.post("/api/knowledge/ask", json={"message": message, "model": "agent", "tools": tools,
                                               "collection_ids": []})  # fmt: skip
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


def test_agent_calls_a_tool_and_answers(world: World, agent_model: AgentModel) -> None:
    body = _ask(world, 'use calculator {"expression": "2+3*4"}', ["calculator", "current_time"])
    assert body["answer"] == "final: 14"
    assert body["agent"]["steps"] == 2 and body["agent"]["stopped"] == "answer"
    offered = {t["function"]["name"] for t in agent_model.requests[-1]["tools"]}
    assert offered == {"calculator", "current_time"}
    with world.client("a_member") as c:
        spans = c.get(f"/api/traces/{body['request_id']}").json()["spans"]
    tool = next(s for s in spans if s["name"] == "tool:calculator")
    assert tool["kind"] == "tool" and tool["status"] == "ok" and tool["result_preview"] == "14"
    assert tool["args"] == {"arguments": '{"expression": "2+3*4"}'} and tool["duration_ms"] >= 0
    assert [s["name"] for s in spans if s["kind"] == "model"] == ["model step 1", "model step 2"]


def test_tool_errors_go_back_to_the_model(world: World) -> None:
    body = _ask(world, 'use calculator {"expression": "__import__(\'os\')"}', ["calculator"])
    assert body["answer"].startswith("final: error: Only numbers")
    body = _ask(world, "use http_get {not json}", ["http_get"])
    assert body["answer"].startswith("final: error: The arguments are not valid JSON")
    body = _ask(world, 'use http_get {"url": "http://10.0.0.1/admin"}', ["http_get"])
    assert "allowlist" in body["answer"]


def test_step_limit_and_unknown_tools(world: World) -> None:
    body = _ask(world, "loop forever", ["current_time"])
    assert body["agent"]["stopped"] == "step_limit" and body["agent"]["steps"] == 6
    assert body["finish_reason"] == "length" and "step limit" in body["answer"]
    with world.client("a_member") as c:
        r = c.post("/api/knowledge/ask", json={"message": "hi", "model": "agent", "tools": ["shell"]})
    assert r.status_code == 404 and r.json()["error"]["param"] == "tools"
