"""Sends webhook deliveries and retries them with exponential backoff.

Deliveries are rows; any process that runs a dispatcher (the server, every Celery worker)
may send them, and a lease on the row makes sure only one sends a given attempt. The
schedule lives in the database, so retries survive restarts for the whole window
(24 hours by default). Receivers should still dedupe on X-Aiport-Delivery: a process
killed after the receiver answered but before the answer was recorded sends again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import timedelta

import httpx
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiport import __version__
from aiport.jobs import ssrf
from aiport.jobs.pulse import Pulse
from aiport.jobs.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from aiport.jobs.store import as_utc
from aiport.jobs.webhook_secrets import derive_secret
from aiport.store.jobs import WebhookAttempt, WebhookDelivery, WebhookSubscription
from aiport.store.models import utcnow

log = logging.getLogger("aiport.webhooks")

EXCERPT_BYTES = 1024
WRONG_KEY = (
    "not sent: this process's webhook master key is not the one that created the webhook, so its "
    "signature would not verify; set AIPORT_WEBHOOK_MASTER_KEY to the same value on every server and worker"
)
MAX_BACKOFF = 3600.0


class WebhookDispatcher:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        master_key: bytes,
        allow_private: bool,
        timeout: float,
        retry_base: float,
        retry_window: float,
        poll_seconds: float,
        concurrency: int = 8,
    ) -> None:
        self.sessions = sessions
        self.master_key = master_key
        self.allow_private = allow_private
        self.timeout = timeout
        self.retry_base = retry_base
        self.retry_window = retry_window
        self.poll_seconds = poll_seconds
        self.pulse = Pulse()
        self._slots = asyncio.Semaphore(concurrency)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: the vetted address is the one we call
            headers={"user-agent": f"aiport-webhooks/{__version__}"},
        )

    async def run(self) -> None:
        """Send whatever is due, then sleep until woken or the next poll."""
        while True:
            try:
                due = await self._due(limit=50)
                if due:
                    await asyncio.gather(*(self._send_bounded(d) for d in due))
                    if len(due) == 50:
                        continue
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: try again later
                log.exception("webhook dispatcher: sweep failed")
            await self.pulse.wait(self.poll_seconds)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _due(self, limit: int) -> list[str]:
        now = utcnow()
        async with self.sessions() as session:
            rows = await session.execute(
                select(WebhookDelivery.id)
                .where(
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at <= now,
                    or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
            )
            return list(rows.scalars())

    async def _send_bounded(self, delivery_id: str) -> None:
        async with self._slots:
            try:
                await self.attempt(delivery_id)
            except Exception:
                log.exception("webhook delivery %s: attempt failed unexpectedly", delivery_id)

    async def attempt(self, delivery_id: str, *, manual: bool = False) -> WebhookDelivery | None:
        """Claim one delivery and send it once. `manual` (redeliver) sends it whatever its
        state and gives it a fresh retry window. None: another process holds it."""
        now = utcnow()
        lease = now + timedelta(seconds=self.timeout + 30)
        free = or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now)
        due = (
            free if manual else and_(free, WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
        )
        values: dict[str, object] = {"lease_until": lease, "attempts": WebhookDelivery.attempts + 1}
        if manual:
            values.update(status="pending", give_up_at=now + timedelta(seconds=self.retry_window))
        async with self.sessions() as session, session.begin():
            claimed = await session.execute(
                update(WebhookDelivery).where(WebhookDelivery.id == delivery_id, due).values(**values)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            delivery = await session.get(WebhookDelivery, delivery_id, populate_existing=True)
            assert delivery is not None
            sub = await session.get(WebhookSubscription, delivery.subscription_id)
        status, excerpt, error, latency = await self._post(delivery, sub)
        return await self._record(delivery, status, excerpt, error, latency, trigger="manual" if manual else "auto")

    async def _post(
        self, delivery: WebhookDelivery, sub: WebhookSubscription | None
    ) -> tuple[int | None, str | None, str | None, float]:
        started = time.perf_counter()
        if sub is None or not sub.active:
            return None, None, "the webhook was disabled or deleted", 0.0
        body = delivery.body.encode()
        timestamp = str(int(time.time()))
        secret = derive_secret(self.master_key, sub.id, sub.secret_salt)
        if not secret.startswith(sub.secret_prefix):  # the prefix shown at creation is a fingerprint
            log.error("webhook %s: %s", sub.id, WRONG_KEY)
            return None, None, WRONG_KEY, 0.0
        headers = {
            "content-type": "application/json",
            "x-aiport-event": delivery.event_type,
            "x-aiport-delivery": delivery.id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        }
        try:
            target = await ssrf.vet(sub.url, allow_private=self.allow_private)  # again: DNS may have changed
            headers["host"] = target.host_header
            extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
            async with self._client.stream(
                "POST", target.pinned_url(), content=body, headers=headers, extensions=extensions
            ) as resp:
                raw = b""
                async for chunk in resp.aiter_bytes():
                    raw += chunk
                    if len(raw) >= EXCERPT_BYTES:
                        break
                excerpt = raw[:EXCERPT_BYTES].decode("utf-8", "replace") or None
                return resp.status_code, excerpt, None, _ms(started)
        except ssrf.UnsafeTarget as exc:
            return None, None, f"refused: {exc}", _ms(started)
        except httpx.TimeoutException:
            return None, None, f"timed out after {self.timeout:g}s", _ms(started)
        except httpx.HTTPError as exc:
            return None, None, f"{type(exc).__name__}: {exc}"[:500], _ms(started)

    async def _record(
        self,
        delivery: WebhookDelivery,
        status: int | None,
        excerpt: str | None,
        error: str | None,
        latency: float,
        *,
        trigger: str,
    ) -> WebhookDelivery:
        now = utcnow()
        ok = status is not None and 200 <= status < 300
        if error is None and not ok:
            error = f"HTTP {status}" + (" (redirects are not followed)" if status and 300 <= status < 400 else "")
        values: dict[str, object] = {"lease_until": None, "last_status_code": status, "last_error": error}
        if ok:
            values.update(status="succeeded", delivered_at=now)
        else:
            next_at = now + timedelta(seconds=backoff(self.retry_base, delivery.attempts))
            if next_at > as_utc(delivery.give_up_at):
                values.update(status="failed")
            else:
                values.update(status="pending", next_attempt_at=next_at)
        async with self.sessions() as session, session.begin():
            session.add(
                WebhookAttempt(
                    delivery_id=delivery.id,
                    attempt=delivery.attempts,
                    status_code=status,
                    latency_ms=round(latency, 3),
                    response_excerpt=excerpt,
                    error=error,
                    trigger=trigger,
                )
            )
            await session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery.id).values(**values))
            fresh = await session.get(WebhookDelivery, delivery.id, populate_existing=True)
            assert fresh is not None
        if not ok:
            log.info("webhook delivery %s attempt %d failed: %s", delivery.id, delivery.attempts, error)
        return fresh


def backoff(base: float, attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: base, 2x, 4x, ... at most an
    hour, with 10% jitter so receivers coming back are not hit by every sender at once. With
    the default 10 s base a delivery is tried about 30 times over its 24 h window."""
    return min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF) * random.uniform(0.9, 1.1)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
