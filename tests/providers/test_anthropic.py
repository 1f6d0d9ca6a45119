"""The Anthropic adapter against recorded Messages API wire examples served over real HTTP.

The fake upstream picks its answer by the upstream model name and records every request
body, so tests check both directions of the mapping and the error translation.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from aiport.config import ModelConfig, ProviderConfig
from aiport.domain.chat import ChatRequest, Delta, Usage
from aiport.domain.errors import (
    GatewayError,
    InvalidRequest,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from aiport.providers.anthropic import AnthropicProvider
from aiport.providers.anthropic_mapping import JSON_ONLY, to_anthropic
from tests.support.servers import ServerThread, free_port

FIXTURES = Path(__file__).parents[1] / "fixtures" / "anthropic"
KEY = "sk-ant-test-key"
WEATHER_PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER_DOC = "Current weather for a city"
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": WEATHER_DOC, "parameters": WEATHER_PARAMS},
}


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeAnthropic:
    """Serves fixture files; the upstream model name chooses which, like scenario names."""

    url = ""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.app = Starlette(routes=[Route("/v1/messages", self.messages, methods=["POST"])])

    async def messages(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(Recorded(request.url.path, dict(request.headers), body))
        model = body["model"]
        if model.startswith("error-"):
            status = int(model.removeprefix("error-"))
            headers = {"retry-after": "7"} if status == 429 else None
            return Response((FIXTURES / f"error_{status}.json").read_bytes(), status, headers, "application/json")
        if model == "slow":
            await asyncio.sleep(2)
        if model == "garbage":
            return Response(b"<html>oops</html>", media_type="text/html")
        if body.get("stream"):
            return StreamingResponse(self._events(model), media_type="text/event-stream")
        name = {"tools": "message_tool_use.json"}.get(model, "message_text.json")
        return Response((FIXTURES / name).read_bytes(), media_type="application/json")

    async def _events(self, model: str) -> AsyncIterator[bytes]:
        name = {"tools": "stream_tool_use.sse", "overloaded": "stream_error_overloaded.sse"}.get(model)
        events = (FIXTURES / (name or "stream_text.sse")).read_text().strip().split("\n\n")
        if model == "cut":
            events = events[:4]  # the connection ends after the first text, without message_delta
        for i, event in enumerate(events):
            yield (event + "\n\n").encode()
            await asyncio.sleep(0)
            if model == "stall" and i == 0:
                await asyncio.sleep(2)

    @property
    def last(self) -> Recorded:
        return self.requests[-1]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic()
    with ServerThread(fake.app) as server:
        fake.url = server.url
        yield fake


def make_provider(base_url: str, timeout: float = 5.0, **options: Any) -> AnthropicProvider:
    config = ProviderConfig(kind="anthropic", base_url=base_url, api_key=KEY, timeout_seconds=timeout, options=options)
    return AnthropicProvider("claude", config)


@pytest.fixture
async def provider(fake: FakeAnthropic) -> AsyncIterator[AnthropicProvider]:
    p = make_provider(fake.url)
    yield p
    await p.aclose()


def model(upstream: str = "text") -> ModelConfig:
    return ModelConfig(name="claude", provider="claude", upstream_model=upstream, max_output_tokens=1234)


def chat(text: str = "Hi", **params: Any) -> ChatRequest:
    return ChatRequest(model="claude", messages=[{"role": "user", "content": text}], params=params)


async def collect(deltas: AsyncIterator[Delta]) -> list[Delta]:
    return [d async for d in deltas]


async def test_complete_maps_the_request_and_the_text_answer(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    # Several system messages, same-role turns to merge, images, tool calls and results, and
    # parameters to rename (stop), clamp (temperature 1.5), default (max_tokens) or drop (seed).
    openai = json.loads((FIXTURES / "openai_request.json").read_text())
    request = ChatRequest(model="claude", messages=openai["messages"], params=openai["params"])
    completion = await provider.complete(request, model("text"))

    sent = fake.last
    assert sent.path == "/v1/messages"
    # SDK 2.x sends the key as a bearer token, older ones as x-api-key: either proves it is ours.
    assert KEY in (sent.headers.get("x-api-key"), sent.headers.get("authorization", "").removeprefix("Bearer "))
    assert sent.headers["anthropic-version"]
    assert sent.body == json.loads((FIXTURES / "openai_request_mapped.json").read_text())
    assert sent.body["max_tokens"] == 1234  # absent in the request: the model's max_output_tokens
    assert sent.body["temperature"] == 1.0  # OpenAI allows up to 2, Anthropic up to 1
    assert "seed" not in sent.body and "presence_penalty" not in sent.body
    assert completion.text == "Hi! My name is Claude. How can I help?"
    assert completion.finish_reason == "stop"
    assert completion.usage == Usage(prompt_tokens=2095, completion_tokens=503)
    assert completion.tool_calls is None
    assert completion.upstream_model == "claude-sonnet-4-5-20250929"


async def test_complete_maps_tool_use_and_cache_tokens(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    completion = await provider.complete(chat("Weather in SF?", max_tokens=50, tools=[WEATHER_TOOL]), model("tools"))
    assert fake.last.body["max_tokens"] == 50
    assert "tool_choice" not in fake.last.body
    assert completion.text == "I'll check the current weather in San Francisco for you."
    assert completion.finish_reason == "tool_calls"
    assert completion.tool_calls == [
        {
            "id": "toolu_01A09q90qw90lq917835lq9",
            "type": "function",
            "function": {
                "name": "get_weather",
                "arguments": json.dumps({"location": "San Francisco, CA", "unit": "celsius"}, separators=(",", ":")),
            },
        }
    ]
    assert completion.usage == Usage(prompt_tokens=472 + 100 + 2000, completion_tokens=89)


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ({"type": "function", "function": {"name": "get_weather"}}, None, {"type": "tool", "name": "get_weather"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        (None, None, None),
    ],
)
def test_tool_choice(choice: Any, parallel: bool | None, expected: dict[str, Any] | None) -> None:
    body = to_anthropic(chat(tools=[WEATHER_TOOL], tool_choice=choice, parallel_tool_calls=parallel), model())
    assert body.get("tool_choice") == expected


def test_response_format_becomes_a_system_instruction() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "place", "schema": schema}}
    request = ChatRequest(
        model="c",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where?"}],
        params={"response_format": fmt},
    )
    system = to_anthropic(request, model())["system"]
    assert system.startswith("Be brief.\n\n" + JSON_ONLY)
    assert json.loads(system.split("\n")[-1]) == schema
    assert to_anthropic(chat(response_format={"type": "json_object"}), model())["system"] == JSON_ONLY
    assert "system" not in to_anthropic(chat(response_format={"type": "text"}), model())
    assert to_anthropic(chat(max_completion_tokens=77), model())["max_tokens"] == 77


async def test_drop_params_option_keeps_them_off_the_wire(fake: FakeAnthropic) -> None:
    p = make_provider(fake.url + "/v1", drop_params=["temperature", "top_p"])
    try:
        await p.complete(chat(temperature=0.2, top_p=0.5, stop=["a", "b"]), model())
    finally:
        await p.aclose()
    assert fake.last.path == "/v1/messages"  # an OpenAI-style base URL ending in /v1 works too
    assert "temperature" not in fake.last.body and "top_p" not in fake.last.body
    assert fake.last.body["stop_sequences"] == ["a", "b"]


def user_part(part: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [part]}]


BAD_CALL = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
FIRST_PART = "messages[0].content[0]"


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        (user_part({"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}), FIRST_PART),
        (user_part({"type": "image_url", "image_url": {"url": "data:image/png,raw"}}), FIRST_PART),
        (user_part({"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}), FIRST_PART),
        (user_part({"type": "file", "file": {"file_id": "file-abc"}}), FIRST_PART),
        (
            [*user_part({"type": "text", "text": "hi"}), {"role": "assistant", "tool_calls": [BAD_CALL]}],
            "messages[1].tool_calls[0].function.arguments",
        ),
        ([{"role": "system", "content": "only a system prompt"}], "messages"),
    ],
)
async def test_requests_anthropic_cannot_express_are_refused_before_sending(
    provider: AnthropicProvider, fake: FakeAnthropic, messages: list[dict[str, Any]], param: str
) -> None:
    before = len(fake.requests)
    with pytest.raises(InvalidRequest) as info:
        await provider.complete(ChatRequest(model="c", messages=messages), model())
    assert info.value.param == param
    assert len(fake.requests) == before


async def test_stream_text(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    deltas = await collect(provider.stream(chat("Hello?", stop="x"), model("text")))
    assert fake.last.body["stream"] is True
    assert fake.last.body["stop_sequences"] == ["x"]
    assert fake.last.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hello?"}]}]
    assert [d.text for d in deltas[:-1]] == ["Hello", ", world", "!"]
    assert all(d.finish_reason is None and d.tool_calls is None for d in deltas[:-1])
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].usage == Usage(prompt_tokens=25 + 5, completion_tokens=15)


async def test_stream_tool_use_reassembles_in_openai_shape(provider: AnthropicProvider) -> None:
    deltas = await collect(provider.stream(chat("Weather?", tools=[WEATHER_TOOL]), model("tools")))
    assert "".join(d.text or "" for d in deltas) == "Okay, let's check the weather for San Francisco, CA:"
    fragments = [f for d in deltas for f in d.tool_calls or ()]
    assert fragments[0] == {
        "index": 0,
        "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert all(
        set(f) == {"index", "function"} and set(f["function"]) == {"arguments"} for f in fragments[1:] if "id" not in f
    )
    calls: dict[int, dict[str, str]] = {}
    for f in fragments:
        call = calls.setdefault(f["index"], {"id": "", "name": "", "arguments": ""})
        call["id"] = f.get("id", call["id"])
        call["name"] = f["function"].get("name", call["name"])
        call["arguments"] += f["function"]["arguments"]
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"location": "San Francisco, CA", "unit": "fahrenheit"}
    assert calls[1] == {"id": "toolu_01Bq7RZ3ab1HqSsvXyRpkNmc", "name": "get_time", "arguments": "{}"}
    assert deltas[-1].finish_reason == "tool_calls"
    assert deltas[-1].usage == Usage(prompt_tokens=472, completion_tokens=89)


ERROR_CASES = [
    (400, InvalidRequest, 400, "max_tokens: 100000 > 64000"),
    (401, UpstreamError, 502, "check its API key"),
    (403, UpstreamError, 502, "check its API key"),
    (404, UpstreamError, 502, "check upstream_model"),
    (413, InvalidRequest, 400, "maximum allowed number of bytes"),
    (429, RateLimited, 429, "per-minute rate limit"),
    (500, UpstreamError, 502, "Internal server error"),
    (529, UpstreamError, 502, "overloaded"),
]


@pytest.mark.parametrize(("upstream_status", "kind", "status", "text"), ERROR_CASES)
@pytest.mark.parametrize("streaming", [False, True])
async def test_upstream_errors_map_to_gateway_errors(
    provider: AnthropicProvider,
    fake: FakeAnthropic,
    streaming: bool,
    upstream_status: int,
    kind: type[GatewayError],
    status: int,
    text: str,
) -> None:
    before = len(fake.requests)
    with pytest.raises(GatewayError) as info:
        if streaming:
            await collect(provider.stream(chat(), model(f"error-{upstream_status}")))
        else:
            await provider.complete(chat(), model(f"error-{upstream_status}"))
    err = info.value
    assert type(err) is kind
    assert err.status == status
    assert text in err.message
    assert len(fake.requests) == before + 1  # the SDK does not retry: that is the gateway's job
    if upstream_status == 429:
        assert err.headers == {"retry-after": "7"}
    if upstream_status == 529:
        assert err.code == "upstream_overloaded"


async def test_error_event_mid_stream_raises_after_the_text_so_far(provider: AnthropicProvider) -> None:
    texts: list[str | None] = []
    with pytest.raises(UpstreamError) as info:
        async for delta in provider.stream(chat(), model("overloaded")):
            texts.append(delta.text)
    assert texts == ["Once upon"]
    assert info.value.status == 502
    assert info.value.code == "upstream_overloaded"
    assert "Overloaded" in info.value.message


async def test_stream_that_ends_early_is_an_error(provider: AnthropicProvider) -> None:
    with pytest.raises(UpstreamError, match="ended before"):
        await collect(provider.stream(chat(), model("cut")))


async def test_unreadable_answer_is_an_upstream_error(provider: AnthropicProvider) -> None:
    with pytest.raises(UpstreamError):
        await provider.complete(chat(), model("garbage"))


@pytest.mark.parametrize("streaming", [False, True])
async def test_timeout(fake: FakeAnthropic, streaming: bool) -> None:
    p = make_provider(fake.url, timeout=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(UpstreamTimeout):
            if streaming:
                await collect(p.stream(chat(), model("stall")))
            else:
                await p.complete(chat(), model("slow"))
    finally:
        await p.aclose()
    assert time.monotonic() - started < 1.5  # gave up on our timeout, not at the server's pace


async def test_connection_refused_is_an_upstream_error() -> None:
    p = make_provider(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(UpstreamError) as info:
            await p.complete(chat(), model())
        assert type(info.value) is UpstreamError
        assert "Could not reach" in info.value.message
        with pytest.raises(UpstreamError):
            await collect(p.stream(chat(), model()))
    finally:
        await p.aclose()


def test_missing_api_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIPORT_TEST_NO_SUCH_KEY", raising=False)
    config = ProviderConfig(kind="anthropic", api_key_env="AIPORT_TEST_NO_SUCH_KEY")
    with pytest.raises(ValueError, match="API key"):
        AnthropicProvider("claude", config)
