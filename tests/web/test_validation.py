"""Bad input gets a precise 400 (or 413) in OpenAI's error shape, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Gateway

OK_MESSAGES = [{"role": "user", "content": "hi"}]


def post(gateway: Gateway, body: Any, **kw: Any) -> Any:
    with gateway.client() as c:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return c.post("/v1/chat/completions", content=content, headers={"content-type": "application/json"}, **kw)


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"messages": OK_MESSAGES}, "model", "Field required"),
        ({"model": "echo"}, "messages", "Field required"),
        ({"model": "echo", "messages": []}, "messages", "at least 1"),
        ({"model": "echo", "messages": "hi"}, "messages", "list"),
        ({"model": 5, "messages": OK_MESSAGES}, "model", "string"),
        ({"model": "echo", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0]", "role"),
        ({"model": "echo", "messages": [{"role": "user"}]}, "messages[0].content", "Field required"),
        ({"model": "echo", "messages": [{"role": "user", "content": 3}]}, "messages[0].content", ""),
        ({"model": "echo", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id", "required"),
        ({"model": "echo", "messages": [{"role": "assistant"}]}, "messages[0]", "content or tool_calls"),
        ({"model": "echo", "messages": OK_MESSAGES, "temperature": 7}, "temperature", "less than or equal to 2"),
        ({"model": "echo", "messages": OK_MESSAGES, "temperature": "hot"}, "temperature", "number"),
        ({"model": "echo", "messages": OK_MESSAGES, "top_p": -1}, "top_p", "greater than or equal"),
        ({"model": "echo", "messages": OK_MESSAGES, "max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
        ({"model": "echo", "messages": OK_MESSAGES, "max_tokens": 10**12}, "max_tokens", "less than"),
        ({"model": "echo", "messages": OK_MESSAGES, "max_tokens": 2000}, "max_tokens", "at most 1000"),
        ({"model": "echo", "messages": OK_MESSAGES, "n": 3}, "n", "less than or equal to 1"),
        ({"model": "echo", "messages": OK_MESSAGES, "stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ({"model": "echo", "messages": OK_MESSAGES, "stream": "yes"}, "stream", "boolean"),
        ({"model": "echo", "messages": OK_MESSAGES, "stream_options": {"include_usage": True}}, None, "stream"),
        (
            {
                "model": "echo",
                "messages": OK_MESSAGES,
                "tools": [{"type": "function", "function": {"name": "bad name!"}}],
            },
            "tools[0].function.name",
            "pattern",
        ),
        ({"model": "echo", "messages": OK_MESSAGES, "tool_choice": "required"}, None, "tool_choice needs tools"),
        ({"model": "echo", "messages": OK_MESSAGES, "response_format": {"type": "xml"}}, "response_format", ""),
        ({"model": "echo", "messages": OK_MESSAGES, "seed": 2**70}, "seed", "integer"),
    ],
)
def test_invalid_fields_name_the_field(
    gateway: Gateway, body: dict[str, Any], param: str | None, fragment: str
) -> None:
    r = post(gateway, body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param, error
        assert f"'{param}'" in error["message"]
    assert fragment.lower() in error["message"].lower()


@pytest.mark.parametrize("raw", [b"{", b"not json", b"[1, 2]", b"null", b'"str"', b"", b"\xff\xfe"])
def test_malformed_bodies(gateway: Gateway, raw: bytes) -> None:
    r = post(gateway, raw)
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_body_too_large_is_413(gateway: Gateway) -> None:
    limit = gateway.runtime.settings.max_body_bytes
    big = {"model": "echo", "messages": [{"role": "user", "content": "x" * (limit + 10)}]}
    r = post(gateway, big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_unknown_top_level_fields_are_ignored(gateway: Gateway) -> None:
    r = post(gateway, {"model": "echo", "messages": OK_MESSAGES, "some_future_param": {"x": 1}, "user": "u-1"})
    assert r.status_code == 200


def test_invalid_request_leaves_an_audit_record(gateway: Gateway) -> None:
    r = post(gateway, {"model": "echo", "messages": OK_MESSAGES, "temperature": 9})
    assert r.status_code == 400
    rid = r.headers["x-request-id"]
    [record] = [x for x in gateway.logs(status="error") if x["request_id"] == rid]
    assert record["http_status"] == 400 and record["model_requested"] == "echo"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
fields = st.sampled_from(
    [
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "n",
        "seed",
        "tools",
        "tool_choice",
        "response_format",
        "stream",
        "stream_options",
        "max_completion_tokens",
    ]
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool", "x"]), "content": json_values}
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(fields, json_values | st.lists(message, max_size=3), max_size=6))
def test_fuzzed_bodies_never_500(gateway: Gateway, body: dict[str, Any]) -> None:
    body.setdefault("model", "echo")
    r = post(gateway, json.dumps(body, allow_nan=True).encode())
    assert r.status_code < 500, r.text
    if r.status_code != 200:
        assert set(r.json()["error"]) >= {"message", "type", "param", "code"}
