"""Retries with backoff, fallback chains and circuit breakers for provider calls."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from aiport.domain.errors import GatewayError, RateLimited, UpstreamError, UpstreamTimeout


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts_per_model: int = 2
    base_delay: float = 0.2
    max_delay: float = 2.0
    max_retry_after: float = 5.0  # a longer Retry-After skips to the next fallback instead of waiting

    def delay(self, attempt: int, error: GatewayError) -> float | None:
        """Seconds to wait before retrying the same model, or None to move on to the next one."""
        if attempt + 1 >= self.attempts_per_model:
            return None
        retry_after = error.headers.get("retry-after") if error.headers else None
        if retry_after is not None:
            try:
                wait = float(retry_after)
            except ValueError:
                wait = self.max_delay
            return wait if wait <= self.max_retry_after else None
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))  # full jitter


def retryable(error: GatewayError) -> bool:
    """Provider-side trouble is worth another try; a request the provider refused is not."""
    return isinstance(error, UpstreamError | UpstreamTimeout | RateLimited)


class CircuitBreaker:
    """Rests a model after `threshold` consecutive failures for `cooldown` seconds, then lets
    one probe through (half-open): success closes the circuit, failure rests it again."""

    def __init__(self, threshold: int = 5, cooldown: float = 30.0) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, float] = {}
        self._probing: set[str] = set()

    def allow(self, name: str) -> bool:
        until = self._open_until.get(name)
        if until is None:
            return True
        if time.monotonic() < until or name in self._probing:
            return False
        self._probing.add(name)  # half-open: this caller is the probe
        return True

    def retry_in(self, name: str) -> float:
        return max(0.0, self._open_until.get(name, 0.0) - time.monotonic())

    def success(self, name: str) -> None:
        self._failures.pop(name, None)
        self._open_until.pop(name, None)
        self._probing.discard(name)

    def failure(self, name: str) -> None:
        count = self._failures.get(name, 0) + 1
        self._failures[name] = count
        if name in self._probing or count >= self.threshold:
            self._open_until[name] = time.monotonic() + self.cooldown
            self._probing.discard(name)

    def state(self, name: str) -> str:
        if name not in self._open_until:
            return "closed"
        return "half-open" if time.monotonic() >= self._open_until[name] else "open"
