"""The one pipeline every model call runs through, whatever its entry point.

    identify -> compose -> clarify -> route -> dedupe -> admit (rate limits, cache, quotas) -> call
    -> meter -> record

Entry points (OpenAI API, app runs, jobs, automations) identify the caller, build a
ChatRequest inside a Call and hand it here; they differ only in how they deliver the
answer. Stages with nothing to do cost nothing. The route is decided before admission
because a cost quota needs the chosen model's price; an idempotent replay is served
before admission because it is the answer already paid for; the cache is looked up inside
admission because a cached answer passes the rate limits but reserves no quota, and with
Redis all of admission is one round trip (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson

from aiport.config import ModelConfig
from aiport.domain.chat import Completion, Delta, Usage
from aiport.domain.errors import GatewayError, StoreUnavailable, Unprocessable, UpstreamError
from aiport.gateway.admit import Admission, Admitter, CacheLookup
from aiport.gateway.cache import CachedAnswer, ResponseCache, exact_key
from aiport.gateway.call import Call
from aiport.gateway.idempotency import IdempotencyStore, body_hash, scoped_key
from aiport.gateway.resilience import CircuitBreaker, RetryPolicy, retryable
from aiport.gateway.router import Route, Router
from aiport.gateway.tokens import count_text, estimate_prompt_tokens
from aiport.observe.audit import AuditWriter
from aiport.providers.registry import ProviderRegistry

log = logging.getLogger("aiport.pipeline")


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    idempotency_ttl: int = 86400
    idempotency_wait: float = 300.0


class Pipeline:
    def __init__(
        self,
        router: Router,
        providers: ProviderRegistry,
        audit: AuditWriter,
        *,
        admitter: Admitter,
        dedupe: IdempotencyStore,
        cache: ResponseCache,
        breaker: CircuitBreaker | None = None,
        retry: RetryPolicy | None = None,
        options: PipelineOptions | None = None,
    ) -> None:
        self.router = router
        self.providers = providers
        self.audit = audit
        self.admitter = admitter
        self.dedupe = dedupe
        self.cache = cache
        self.breaker = breaker or CircuitBreaker()
        self.retry = retry or RetryPolicy()
        self.options = options or PipelineOptions()

    # ---- non-streaming ------------------------------------------------------------------
    async def complete(self, call: Call) -> Completion:
        """Run a call to the end and return the whole answer."""
        admission: Admission | None = None
        try:
            route = self._route(call)
            stored = await self._dedupe(call)
            if stored is None:
                admission = await self.admitter.admit(call, route.model, self._cache_plan(call))
                stored = await self._cached(call, admission)
            if stored is not None:
                return self._serve_stored(call, stored)
            completion = await self._call(call, route)
            call.take_completion(completion)
            self._meter(call)
            await self._remember(call, completion, admission)
            return completion
        except BaseException as exc:
            await self._failed(call, exc)
            converted = self._as_gateway_error(exc)
            if converted is exc:
                raise
            raise converted from exc
        finally:
            await self.admitter.settle_soon(admission, call.model, self._billed(call))
            self._record(call)

    # ---- streaming ------------------------------------------------------------------------
    async def open_stream(self, call: Call) -> AsyncIterator[Delta]:
        """Start a streaming call and wait for its first delta.

        Failures before the first token raise here (after retries and fallbacks), so the
        entry point can answer with a proper HTTP error; later failures end the stream."""
        admission: Admission | None = None
        try:
            route = self._route(call)
            stored = await self._dedupe(call)
            if stored is None:
                admission = await self.admitter.admit(call, route.model, self._cache_plan(call))
                stored = await self._cached(call, admission)
            if stored is not None:
                completion = self._serve_stored(call, stored)
                self._record(call)
                return _replay(completion)
            first, upstream = await self._open(call, route)
        except BaseException as exc:
            await self._failed(call, exc)
            await self.admitter.settle_soon(admission, call.model, self._billed(call))
            self._record(call)
            converted = self._as_gateway_error(exc)
            if converted is exc:
                raise
            raise converted from exc
        return self._relay(call, first, upstream, admission)

    async def _relay(
        self, call: Call, first: Delta, upstream: AsyncIterator[Delta], admission: Admission | None
    ) -> AsyncIterator[Delta]:
        try:
            call.take_delta(first)
            yield first
            async for delta in upstream:
                call.take_delta(delta)
                yield delta
            call.finished_at = time.perf_counter()
            self._meter(call)
            await self._remember(call, call.as_completion(), admission)
        except BaseException as exc:
            self._meter(call)
            await self._failed(call, exc)
            converted = self._as_gateway_error(exc)
            if converted is exc:
                raise
            raise converted from exc
        finally:
            await _aclose(upstream)
            await self.admitter.settle_soon(admission, call.model, self._billed(call))
            self._record(call)

    # ---- stages ---------------------------------------------------------------------------
    def _route(self, call: Call) -> Route:
        """route: pick the model (rules, then complexity) and say why."""
        assert call.principal is not None, "identify must run before route"
        route = self.router.resolve(call.request, call.principal)
        call.model = route.model
        call.route_reason = route.reason
        call.route_score = route.score
        call.response_headers["x-aiport-model"] = route.model.name
        if route.score is not None:
            call.response_headers["x-aiport-route-score"] = f"{route.score:.3f}"
        call.response_headers["x-aiport-route-reason"] = route.reason.encode("ascii", "replace").decode()
        return route

    async def _dedupe(self, call: Call) -> CachedAnswer | None:
        """dedupe: a repeated Idempotency-Key replays the first answer instead of paying twice."""
        if not call.idempotency_key and call.request.entry_point != "api":
            call.idempotency_key = call.request.client_request_id  # automations dedupe on their event ids
        if not call.idempotency_key:
            return None
        p = call.principal
        assert p is not None
        key = scoped_key(p.org_id, p.user_id, call.idempotency_key)
        try:
            claim = await self.dedupe.claim(
                key, body_hash(call.request), call.request_id, self.options.idempotency_wait
            )
        except GatewayError:
            raise
        except Exception as exc:  # the shared store is down: at-most-once cannot be promised
            log.warning("idempotency store unavailable: %s", exc)
            raise StoreUnavailable(
                "Idempotency keys cannot be checked right now (the shared store is unreachable), so this "
                "request was not sent, to make sure it is never paid twice. Retry shortly with the same key.",
                code="idempotency_unavailable",
                headers={"retry-after": "5"},
            ) from exc
        if claim.state == "mismatch":
            raise Unprocessable(
                f"The Idempotency-Key '{call.idempotency_key}' was already used (request {claim.first_request_id}) "
                "with a different body. Use a new key for a different request.",
                code="idempotency_key_reused",
            )
        if claim.state == "replay":
            call.route_reason = f"idempotent replay of {claim.first_request_id}"
            call.replay_of = claim.first_request_id
            call.response_headers["x-aiport-idempotent-replay"] = "true"
            return claim.answer
        call.dedupe_key = key
        return None

    def _cache_plan(self, call: Call) -> CacheLookup | None:
        """cache: where an identical earlier answer would be; admission looks it up."""
        ttl = call.request.cache_ttl or (call.model.cache_ttl_seconds if call.model else None)
        if not ttl or call.request.cache_mode == "no-store":
            return None
        assert call.principal is not None and call.model is not None
        call.cache_key = exact_key(call.principal.org_id, call.model.name, call.request)
        call.cache_ttl = ttl
        if call.request.cache_mode == "no-cache":
            call.response_headers["x-aiport-cache"] = "bypass"
            return None
        return CacheLookup(call.cache_key, ttl)

    async def _cached(self, call: Call, admission: Admission | None) -> CachedAnswer | None:
        """The cached answer admission found; a call leading an Idempotency-Key stores it
        for the duplicates waiting on it."""
        answer = admission.cached if admission is not None else None
        if answer is not None:
            try:
                await self._finish_lead(call, answer)
            except Exception as exc:  # the claim expires by itself; duplicates then call again
                log.warning("could not store the answer for the idempotency key: %s", exc)
        return answer

    async def _finish_lead(self, call: Call, answer: CachedAnswer) -> None:
        """Hand the answer to the duplicates waiting on this call's Idempotency-Key, if it leads one."""
        if call.dedupe_key is None:
            return
        key, call.dedupe_key = call.dedupe_key, None
        await self.dedupe.finish(key, body_hash(call.request), answer, call.request_id, self.options.idempotency_ttl)

    async def _call(self, call: Call, route: Route) -> Completion:
        """call: the provider, with retries and the model's fallback chain."""
        return await self._attempts(call, route, stream=False)  # type: ignore[return-value]

    async def _open(self, call: Call, route: Route) -> tuple[Delta, AsyncIterator[Delta]]:
        return await self._attempts(call, route, stream=True)  # type: ignore[return-value]

    async def _attempts(self, call: Call, route: Route, *, stream: bool) -> object:
        chain = [route.model, *(self.router.model(name) for name in route.model.fallbacks)]
        last: GatewayError | None = None
        for model in chain:
            if not self.breaker.allow(model.name):
                call.attempts.append({"model": model.name, "outcome": "skipped", "error": "circuit open"})
                last = last or UpstreamError(
                    f"The model '{model.name}' is resting after repeated failures; "
                    f"retry in {self.breaker.retry_in(model.name):.0f} s.",
                    headers={"retry-after": "5"},
                )
                continue
            provider = self.providers.get(model.provider)
            for attempt in range(self.retry.attempts_per_model):
                started = time.perf_counter()
                try:
                    if stream:
                        upstream = provider.stream(call.request, model)
                        try:
                            first = await anext(upstream)
                        except StopAsyncIteration:
                            first, upstream = Delta(finish_reason="stop"), _empty()
                        result: object = (first, upstream)
                    else:
                        result = await provider.complete(call.request, model)
                except GatewayError as exc:
                    self._attempt(call, model, started, exc)
                    if not retryable(exc):
                        raise
                    self.breaker.failure(model.name)
                    last = exc
                    wait = self.retry.delay(attempt, exc)
                    if wait is None:
                        break
                    await asyncio.sleep(wait)
                    continue
                self._attempt(call, model, started, None)
                self.breaker.success(model.name)
                if model is not route.model:
                    call.model = model
                    call.route_reason = f"{call.route_reason}; fell back to {model.name}"
                    call.response_headers["x-aiport-model"] = model.name
                return result
        assert last is not None
        raise last

    @staticmethod
    def _attempt(call: Call, model: ModelConfig, started: float, error: GatewayError | None) -> None:
        call.attempts.append(
            {
                "model": model.name,
                "provider": model.provider,
                "outcome": "ok" if error is None else "error",
                "status": 200 if error is None else error.status,
                "error": None if error is None else error.message[:300],
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            }
        )

    @staticmethod
    def _meter(call: Call) -> None:
        """meter: cost from the provider-reported usage and the model's prices.

        A stream stopped or broken before the provider's usage arrived is billed by our own
        count of the prompt and the text already sent, so disconnecting never escapes a quota."""
        if call.usage is None and not call.cache_hit and (call.text_parts or call.tool_calls):
            sent = "".join(call.text_parts) + (orjson.dumps(call.tool_calls).decode() if call.tool_calls else "")
            call.usage = Usage(estimate_prompt_tokens(call.request), count_text(sent))
            call.usage_estimated = True
        if call.model is not None and call.usage is not None and not call.cache_hit:
            call.cost_usd = call.model.price.cost(call.usage.prompt_tokens, call.usage.completion_tokens)

    def _serve_stored(self, call: Call, answer: CachedAnswer) -> Completion:
        """A cache hit or an idempotent replay: the stored answer, billed at nothing."""
        call.cache_hit = True
        call.saved_cost_usd = answer.cost_usd
        call.take_completion(answer.completion)
        call.usage = Usage()
        return answer.completion

    async def _remember(self, call: Call, completion: Completion, admission: Admission | None) -> None:
        """Store the answer for the cache (with Redis: when the quota is settled, in the same
        round trip) and for duplicates waiting on the idempotency key."""
        if call.cache_key is None and call.dedupe_key is None:
            return
        answer = CachedAnswer(completion, call.cost_usd, call.model.name if call.model else "", time.time())
        try:
            key, ttl = call.cache_key, call.cache_ttl
            if key is not None and call.request.cache_mode != "no-store" and ttl:
                if not self.admitter.store_on_settle(admission, key, answer, ttl):
                    await self.cache.put(key, answer, ttl)
            await self._finish_lead(call, answer)
        except Exception as exc:  # the answer is delivered anyway; only its reuse is lost
            log.warning("could not store the answer for reuse: %s", exc)
            call.degrade("cache")
        finally:
            call.dedupe_key = None

    async def _failed(self, call: Call, exc: BaseException) -> None:
        converted = self._as_gateway_error(exc)
        if isinstance(converted, GatewayError):
            call.fail(converted)
        else:
            call.client_closed()
        if call.dedupe_key is not None:  # let a retry run instead of waiting on a failed leader
            key, call.dedupe_key = call.dedupe_key, None
            try:
                await asyncio.shield(self.dedupe.abandon(key))
            except Exception as abandon_error:  # the claim expires by itself
                log.warning("could not release idempotency key: %s", abandon_error)

    @staticmethod
    def _as_gateway_error(exc: BaseException) -> BaseException:
        if isinstance(exc, GatewayError | asyncio.CancelledError | GeneratorExit | KeyboardInterrupt | SystemExit):
            return exc
        return UpstreamError(f"The provider failed unexpectedly: {type(exc).__name__}: {exc}")

    @staticmethod
    def _billed(call: Call) -> Usage | None:
        return None if call.cache_hit else call.usage

    def _record(self, call: Call) -> None:
        """record: hand the audit row to the batch writer (never blocks), exactly once."""
        if not call.recorded:
            call.recorded = True
            self.audit.submit(call.to_audit_row())

    def finalize(self, call: Call) -> None:
        """For entry points: a stream dropped before it was ever read is still recorded."""
        if not call.recorded:
            if call.status == "ok" and call.finish_reason is None:
                call.client_closed()
            self._record(call)


async def _replay(completion: Completion) -> AsyncIterator[Delta]:
    """Serve a stored answer as a stream: word-sized pieces, then the end."""
    text = completion.text or ""
    start = 0
    while start < len(text):
        end = text.find(" ", start + 1)
        end = len(text) if end == -1 else end
        yield Delta(text=text[start:end])
        start = end
    if completion.tool_calls:
        yield Delta(tool_calls=[{"index": i, **c} for i, c in enumerate(completion.tool_calls)])
    yield Delta(finish_reason=completion.finish_reason, usage=Usage())


async def _empty() -> AsyncIterator[Delta]:
    return
    yield  # pragma: no cover


async def _aclose(stream: AsyncIterator[Delta]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # closing a broken upstream must not hide the record
            pass
