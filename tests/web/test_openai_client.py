"""The official `openai` client against aiport over real HTTP: the wire format must be right."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.conftest import Gateway


@pytest.fixture
def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.key, max_retries=0, timeout=30)


def test_non_streaming_completion(client: openai.OpenAI, gateway: Gateway) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="echo",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello world"}],
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        seed=7,
        stop=["\n\n"],
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello world"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "echo"
    assert completion.usage is not None and completion.usage.total_tokens == completion.usage.prompt_tokens + 3
    request_id = raw.headers["x-request-id"]
    assert request_id.startswith("req_")
    [record] = [r for r in gateway.logs() if r["request_id"] == request_id]
    assert record["status"] == "ok" and record["model_used"] == "echo"
    assert record["prompt_tokens"] == completion.usage.prompt_tokens
    assert record["cost_usd"] == pytest.approx((record["prompt_tokens"] * 1 + record["completion_tokens"] * 2) / 1e6)
    full = gateway.log(record["id"])
    assert full["input_messages"][1]["content"] == "hello world"
    assert full["output_text"] == "echo: hello world"
    assert full["request_params"]["seed"] == 7 and full["request_params"]["max_tokens"] == 50


def test_content_parts_and_max_completion_tokens(client: openai.OpenAI, fake_upstream) -> None:
    completion = client.chat.completions.create(
        model="echo",
        max_completion_tokens=20,
        messages=[{"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "two"}]}],
    )
    assert completion.choices[0].message.content == "echo: part one two"
    assert fake_upstream.requests[-1]["max_tokens"] == 20


def test_streaming_with_usage(client: openai.OpenAI, gateway: Gateway) -> None:
    stream = client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 3  # relayed piece by piece
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    record = next(r for r in gateway.logs() if r["stream"] and r["output_preview"] == text)
    assert record["ttft_ms"] is not None and record["ttft_ms"] <= record["latency_ms"]
    assert record["completion_tokens"] == 4


def test_streaming_without_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}], stream=True)
    )
    assert all(c.usage is None for c in chunks)


def test_tools_pass_through(client: openai.OpenAI, fake_upstream, gateway: Gateway) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    completion = client.chat.completions.create(
        model="tools", messages=[{"role": "user", "content": "weather?"}], tools=tools, tool_choice="auto"
    )
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Seoul"}
    assert completion.choices[0].finish_reason == "tool_calls"
    assert fake_upstream.requests[-1]["tools"] == tools and fake_upstream.requests[-1]["tool_choice"] == "auto"
    # streamed: fragments relayed and reassembled in the audit record
    chunks = list(
        client.chat.completions.create(
            model="tools", messages=[{"role": "user", "content": "w"}], tools=tools, stream=True
        )
    )
    args = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert json.loads(args) == {"city": "Seoul"}
    record = next(r for r in gateway.logs(model="tools") if r["stream"])
    full = gateway.log(record["id"])
    assert json.loads(full["output_tool_calls"][0]["function"]["arguments"]) == {"city": "Seoul"}
    assert full["finish_reason"] == "tool_calls"


def test_tool_result_round_trip(client: openai.OpenAI, fake_upstream) -> None:
    client.chat.completions.create(
        model="echo",
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
    )
    assert fake_upstream.requests[-1]["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


def test_response_format_json_schema(client: openai.OpenAI, fake_upstream) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}
    client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}], response_format=fmt)
    assert fake_upstream.requests[-1]["response_format"] == fmt


def test_json_schema_refused_for_model_without_support(client: openai.OpenAI) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tools", messages=[{"role": "user", "content": "x"}], response_format=fmt)
    assert err.value.body["param"] == "response_format"


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert "echo" in ids and "tools" in ids
    assert client.models.retrieve("echo").owned_by == "fake"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_missing_and_unknown_key(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url) as c:
        r = c.post("/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
        assert r.headers["x-request-id"].startswith("req_")
    bad = openai.OpenAI(base_url=gateway.url + "/v1", api_key="aip_not-a-real-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        bad.models.list()
    assert err.value.status_code == 401 and err.value.body["type"] == "authentication_error"


def test_unknown_model_is_404_and_recorded(client: openai.OpenAI, gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert "gpt-9" in err.value.message and err.value.body["param"] == "model"
    assert any(r["model_requested"] == "gpt-9" and r["http_status"] == 404 for r in gateway.logs(status="error"))


@pytest.mark.parametrize(
    ("model", "error", "status"),
    [
        ("broken", openai.InternalServerError, 502),
        ("limited", openai.RateLimitError, 429),
        ("rejecting", openai.BadRequestError, 400),
        ("badkey", openai.InternalServerError, 502),
        ("garbage", openai.InternalServerError, 502),
        ("slow", openai.InternalServerError, 504),
    ],
)
def test_upstream_failures_map_to_statuses(
    client: openai.OpenAI, gateway: Gateway, model: str, error: type[Exception], status: int
) -> None:
    with pytest.raises(error) as err:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == status  # type: ignore[attr-defined]
    if model == "limited":
        assert err.value.response.headers["retry-after"] == "7"  # type: ignore[attr-defined]
    record = next(r for r in gateway.logs(model=model))
    assert record["status"] == "error" and record["http_status"] == status and record["error"]


def test_stream_failing_before_first_token_is_a_real_http_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        list(client.chat.completions.create(model="broken", messages=[{"role": "user", "content": "x"}], stream=True))
    assert err.value.status_code == 502


def test_stream_dropped_mid_way_ends_with_error_event_and_partial_record(gateway: Gateway) -> None:
    with gateway.client() as c:
        r = c.post(
            "/v1/chat/completions",
            json={"model": "drop", "stream": True, "messages": [{"role": "user", "content": "a b c d e"}]},
        )
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert r.status_code == 200
    assert json.loads(events[-1])["error"]["type"] == "upstream_error"
    record = gateway.logs(model="drop")[0]
    assert record["status"] == "error" and record["output_preview"] == "echo: a"


def test_client_request_id_is_recorded_but_never_the_key(gateway: Gateway) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "dup"}]}
    with gateway.client() as c:
        ids = [
            c.post("/v1/chat/completions", json=body, headers={"x-request-id": "client-fixed-id"}).headers[
                "x-request-id"
            ]
            for _ in range(2)
        ]
    assert ids[0] != ids[1]
    records = [r for r in gateway.logs() if r["request_id"] in ids]
    assert len(records) == 2
    assert {gateway.log(r["id"])["client_request_id"] for r in records} == {"client-fixed-id"}
