"""Outbound webhooks over real HTTP: signed deliveries, retries with backoff, the delivery
log, manual redelivery, secrets never stored, SSRF protection, and the documented verifier."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from aiport.jobs import ssrf
from aiport.jobs.dispatcher import MAX_BACKOFF, backoff
from aiport.jobs.signing import sign, verify
from tests.conftest import Gateway
from tests.jobs.conftest import jobs_settings, member_key, start_jobs_gateway, wait_for, wait_job
from tests.jobs.fakes import JobsUpstream, WebhookReceiver

DOCS = Path(__file__).resolve().parents[2] / "docs" / "jobs.md"


def _batch(text: str, model: str = "echo") -> dict[str, Any]:
    return {
        "kind": "chat_batch",
        "input": {"requests": [{"model": model, "messages": [{"role": "user", "content": text}]}]},
    }


def _subscribe(c: Any, receiver: WebhookReceiver, name: str, events: list[str], **extra: Any) -> dict[str, Any]:
    r = c.post("/api/webhooks", json={"url": receiver.hook(name, **extra.pop("hook", {})), "events": events, **extra})
    assert r.status_code == 201, r.text
    sub: dict[str, Any] = r.json()
    receiver.set_secret(name, sub["secret"])
    return sub


def _deliveries(c: Any, sub_id: str) -> list[dict[str, Any]]:
    return list(c.get(f"/api/webhooks/{sub_id}/deliveries").json()["data"])


def _settled(c: Any, sub_id: str, n: int = 1) -> Callable[[], list[dict[str, Any]] | None]:
    def check() -> list[dict[str, Any]] | None:
        rows = _deliveries(c, sub_id)
        return rows if len(rows) >= n and all(d["status"] != "pending" for d in rows) else None

    return check


@pytest.fixture(scope="module")
def hooks_gateway(tmp_path_factory: pytest.TempPathFactory, jobs_upstream: JobsUpstream) -> Iterator[Gateway]:
    """aiport for this module alone: org-wide subscriptions see every job of the org, so no
    other module's job may end while these tests count deliveries."""
    settings = jobs_settings(tmp_path_factory.mktemp("hooks"), jobs_upstream.url, None)  # type: ignore[attr-defined]
    gw = start_jobs_gateway(settings, "sqlite")
    yield gw
    gw.server.stop()


@pytest.fixture
def name() -> str:
    return "h" + secrets.token_hex(4)


def test_receiver_failing_twice_gets_exactly_one_successful_delivery(
    hooks_gateway: Gateway, receiver: WebhookReceiver, name: str
) -> None:
    with hooks_gateway.client() as c:
        sub = _subscribe(c, receiver, name, ["job.succeeded"], hook={"plan": [500, 503]})
        job = wait_job(c, c.post("/api/jobs", json=_batch("hooked")).json()["id"])
        (delivery,) = wait_for(_settled(c, sub["id"]), what="the delivery to settle")
        assert delivery["status"] == "succeeded" and delivery["attempts"] == 3
        assert delivery["event_type"] == "job.succeeded" and delivery["last_status_code"] == 200
        full = c.get(f"/api/webhooks/deliveries/{delivery['id']}").json()
    got = receiver.received(name)
    assert [g.status for g in got] == [500, 503, 200]
    assert sum(1 for g in got if 200 <= g.status < 300) == 1
    assert all(g.valid_signature for g in got)
    assert len({g.headers["x-aiport-delivery"] for g in got}) == 1  # the same delivery, retried
    assert len({g.body for g in got}) == 1 and job["id"].encode() in got[0].body
    assert got[0].headers["x-aiport-event"] == "job.succeeded"
    # the delivery log: one row per attempt, with status, latency and the response's start
    log = full["log"]
    assert [(x["attempt"], x["status_code"], x["trigger"]) for x in log] == [
        (1, 500, "auto"),
        (2, 503, "auto"),
        (3, 200, "auto"),
    ]
    assert all(x["latency_ms"] > 0 for x in log)
    assert '"status":500' in log[0]["response_excerpt"] and log[0]["error"] == "HTTP 500"
    assert full["body"].encode() == got[0].body


def test_manual_redeliver_sends_again_and_is_logged(
    hooks_gateway: Gateway, receiver: WebhookReceiver, name: str
) -> None:
    with hooks_gateway.client() as c:
        sub = _subscribe(c, receiver, name, ["webhook.ping"])
        ping = c.post(f"/api/webhooks/{sub['id']}/ping")
        assert ping.status_code == 202
        (delivery,) = wait_for(_settled(c, sub["id"]), what="the ping")
        assert delivery["status"] == "succeeded" and delivery["attempts"] == 1
        again = c.post(f"/api/webhooks/deliveries/{delivery['id']}/redeliver")
        assert again.status_code == 200, again.text
        body = again.json()
        assert body["status"] == "succeeded" and body["attempts"] == 2
        assert [x["trigger"] for x in body["log"]] == ["auto", "manual"]
        assert c.post("/api/webhooks/deliveries/whd_nope/redeliver").status_code == 404
    assert len(receiver.received(name)) == 2


def test_failed_jobs_and_app_scoped_subscriptions(hooks_gateway: Gateway, receiver: WebhookReceiver, name: str) -> None:
    with hooks_gateway.client() as c:
        failed = _subscribe(c, receiver, name, ["job.failed"])
        other = _subscribe(c, receiver, name + "app", ["*"], app_id="app_elsewhere")
        job = wait_job(c, c.post("/api/jobs", json=_batch("nope", model="rejecting")).json()["id"])
        assert job["status"] == "failed"
        ok = wait_job(c, c.post("/api/jobs", json=_batch("fine")).json()["id"])
        assert ok["status"] == "succeeded"
        (delivery,) = wait_for(_settled(c, failed["id"]), what="the job.failed delivery")
        assert delivery["event_type"] == "job.failed"
        time.sleep(0.5)
        assert _deliveries(c, other["id"]) == []  # a job of no app: not for an app's subscription
    (got,) = receiver.received(name)
    assert b'"job.failed"' in got.body and job["id"].encode() in got.body


def test_redirects_are_not_followed(hooks_gateway: Gateway, receiver: WebhookReceiver, name: str) -> None:
    with hooks_gateway.client() as c:
        sub = _subscribe(c, receiver, name, ["webhook.ping"], hook={"redirect_to": "http://169.254.169.254/latest"})
        c.post(f"/api/webhooks/{sub['id']}/ping")
        wait_for(lambda: _deliveries(c, sub["id"])[0]["attempts"] >= 1, what="the first attempt")
        c.patch(f"/api/webhooks/{sub['id']}", json={"active": False})  # stop the retries
        delivery = _deliveries(c, sub["id"])[0]
    assert delivery["status"] in ("pending", "failed") and delivery["last_status_code"] == 302
    assert "redirects are not followed" in delivery["last_error"]
    assert all(g.status == 302 for g in receiver.received(name))


def test_secret_is_shown_once_and_never_stored(hooks_gateway: Gateway, receiver: WebhookReceiver, name: str) -> None:
    with hooks_gateway.client() as c:
        sub = _subscribe(c, receiver, name, ["webhook.ping"])
        secret = sub["secret"]
        assert secret.startswith("whsec_") and len(secret) > 40 and sub["secret_prefix"] == secret[:12]
        assert "secret" not in c.get(f"/api/webhooks/{sub['id']}").json()
        assert all("secret" not in s for s in c.get("/api/webhooks").json()["data"])

        async def row() -> list[Any]:
            async with hooks_gateway.runtime.sessions() as s:
                q = text("SELECT * FROM webhook_subscriptions WHERE id = :id")
                return list((await s.execute(q, {"id": sub["id"]})).one())

        stored = " ".join(str(v) for v in hooks_gateway.server.run(row()))
        assert secret not in stored and secret.removeprefix("whsec_") not in stored
        # rotating makes a new secret; deliveries are signed with it from then on
        rotated = c.post(f"/api/webhooks/{sub['id']}/rotate-secret").json()["secret"]
        assert rotated != secret
        receiver.set_secret(name, secret)  # the receiver still has the old one: refused
        c.post(f"/api/webhooks/{sub['id']}/ping")
        wait_for(lambda: receiver.received(name), what="a signed ping")
        assert receiver.received(name)[0].status == 401 and not receiver.received(name)[0].valid_signature
        receiver.set_secret(name, rotated)
        wait_for(lambda: any(g.valid_signature for g in receiver.received(name)), timeout=30, what="a retry")
        c.delete(f"/api/webhooks/{sub['id']}")


def test_a_process_with_another_master_key_does_not_send_badly_signed_deliveries(
    hooks_gateway: Gateway, receiver: WebhookReceiver, name: str
) -> None:
    """Workers on another machine without AIPORT_WEBHOOK_MASTER_KEY would derive other
    secrets: they must refuse to send (and say why), not send signatures that never verify."""
    dispatcher = hooks_gateway.runtime.jobs.webhooks
    with hooks_gateway.client() as c:
        sub = _subscribe(c, receiver, name, ["webhook.ping"])
        right = dispatcher.master_key
        dispatcher.master_key = b"another-machine"
        try:
            c.post(f"/api/webhooks/{sub['id']}/ping")
            wait_for(lambda: _deliveries(c, sub["id"])[0]["attempts"] >= 1, what="the first attempt")
        finally:
            dispatcher.master_key = right
        (done,) = wait_for(_settled(c, sub["id"]), what="the retry with the right key")
        log = c.get(f"/api/webhooks/deliveries/{done['id']}").json()["log"]
    assert done["status"] == "succeeded"
    assert "AIPORT_WEBHOOK_MASTER_KEY" in log[0]["error"] and log[0]["status_code"] is None
    assert [g.valid_signature for g in receiver.received(name)] == [True]  # nothing sent with the wrong key


def test_only_admins_manage_webhooks_and_bad_bodies_are_422(hooks_gateway: Gateway, receiver: WebhookReceiver) -> None:
    with hooks_gateway.client(member_key(hooks_gateway)) as member:
        r = member.post("/api/webhooks", json={"url": receiver.hook("member"), "events": ["job.succeeded"]})
        assert r.status_code == 403 and r.json()["error"]["code"] == "admin_only"
    with hooks_gateway.client() as c:
        cases = [
            ({"url": receiver.hook("x"), "events": ["job.exploded"]}, "events[0]"),
            ({"url": receiver.hook("x"), "events": []}, "events"),
            ({"url": receiver.hook("x")}, "events"),
            ({"url": "ftp://example.com/hook", "events": ["*"]}, "url"),
            ({"url": "http://user:pw@example.com/hook", "events": ["*"]}, "url"),
            ({"url": receiver.hook("x"), "events": ["*"], "colour": "red"}, "colour"),
        ]
        for body, param in cases:
            r = c.post("/api/webhooks", json=body)
            assert r.status_code == 422, (body, r.text)
            assert r.json()["error"]["param"] == param, (body, r.json())


# ---- SSRF ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict_gateway(tmp_path_factory: pytest.TempPathFactory, jobs_upstream: JobsUpstream) -> Iterator[Gateway]:
    """aiport with the SSRF guard on, as deployed."""
    settings = jobs_settings(
        tmp_path_factory.mktemp("strict"),
        jobs_upstream.url,  # type: ignore[attr-defined]
        None,
        webhook_allow_private=False,
    )
    gw = start_jobs_gateway(settings, "sqlite")
    yield gw
    gw.server.stop()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://0.0.0.0/hook", "unspecified"),
    ],
)
def test_private_targets_are_refused(strict_gateway: Gateway, url: str, why: str) -> None:
    with strict_gateway.client() as c:
        r = c.post("/api/webhooks", json={"url": url, "events": ["*"]})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["param"] == "url" and error["code"] == "unsafe_url"
    assert why in error["message"] and "AIPORT_WEBHOOK_ALLOW_PRIVATE" in error["message"]


async def test_ssrf_guard_checks_every_address_and_pins_the_one_it_checked() -> None:
    target = await ssrf.vet("https://93.184.216.34:8443/x?y=1", allow_private=False)
    assert target.pinned_url() == "https://93.184.216.34:8443/x?y=1" and target.host_header == "93.184.216.34:8443"
    with pytest.raises(ssrf.UnsafeTarget, match="loopback"):
        await ssrf.vet("http://127.0.0.1/", allow_private=False)
    allowed = await ssrf.vet("http://localhost:9/", allow_private=True)  # the test-only setting
    assert allowed.address in ("127.0.0.1", "::1") and allowed.host_header == "localhost:9"
    with pytest.raises(ssrf.UnsafeTarget, match="does not resolve"):
        await ssrf.vet("http://no-such-host.invalid/", allow_private=True)


def test_backoff_doubles_up_to_an_hour() -> None:
    delays = [backoff(10, n) for n in range(1, 16)]
    for n, d in enumerate(delays, start=1):
        assert 0.9 * min(10 * 2 ** (n - 1), MAX_BACKOFF) <= d <= 1.1 * min(10 * 2 ** (n - 1), MAX_BACKOFF)
    assert max(delays) <= 1.1 * 3600


def test_deliveries_give_up_after_the_retry_window(
    tmp_path: Path, jobs_upstream: JobsUpstream, receiver: WebhookReceiver, name: str
) -> None:
    settings = jobs_settings(tmp_path, jobs_upstream.url, None, webhook_retry_window_seconds=1.0)  # type: ignore[attr-defined]
    gw = start_jobs_gateway(settings, "sqlite")
    try:
        with gw.client() as c:
            sub = _subscribe(c, receiver, name, ["webhook.ping"], hook={"plan": [500] * 50})
            c.post(f"/api/webhooks/{sub['id']}/ping")
            (delivery,) = wait_for(_settled(c, sub["id"]), what="the delivery to give up")
    finally:
        gw.server.stop()
    assert delivery["status"] == "failed" and delivery["last_status_code"] == 500
    assert 2 <= delivery["attempts"] == len(receiver.received(name)) <= 6


# ---- the documented verifier ----------------------------------------------------------------


def _documented_verifier() -> Callable[..., bool]:
    """The Python snippet from docs/jobs.md, run as a receiver would copy it."""
    block = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert block, "docs/jobs.md has no Python verification snippet"
    namespace: dict[str, Any] = {}
    exec(block.group(1), namespace)
    return namespace["verify_aiport_signature"]  # type: ignore[no-any-return]


def test_documented_verifier_accepts_real_deliveries_and_rejects_forged_ones(
    hooks_gateway: Gateway, receiver: WebhookReceiver, name: str
) -> None:
    documented = _documented_verifier()
    with hooks_gateway.client() as c:
        sub = _subscribe(c, receiver, name, ["webhook.ping"])
        c.post(f"/api/webhooks/{sub['id']}/ping")
        (got,) = wait_for(lambda: receiver.received(name), what="a ping")
    secret, body = sub["secret"], got.body
    ts, sig = got.headers["x-aiport-timestamp"], got.headers["x-aiport-signature"]
    assert sig.startswith("v1=")
    for check in (documented, verify):
        assert check(secret, body, ts, sig)
        assert not check(secret, body + b" ", ts, sig)  # tampered body
        assert not check(secret, body, str(int(ts) + 1), sig)  # tampered timestamp
        assert not check("whsec_wrong", body, ts, sig)  # wrong secret
        assert not check(secret, body, ts, "v1=" + "0" * 64)  # bad signature
        assert not check(secret, body, ts, None) and not check(secret, body, None, sig)
        old = str(int(time.time()) - 3600)
        assert not check(secret, body, old, sign(secret, old, body))  # a replay from an hour ago
        assert check(secret, body, ts, f"v1=deadbeef, {sig}")  # several signatures during rotation
