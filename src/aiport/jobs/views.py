"""How jobs, notifications and webhooks look to API clients (and in webhook payloads)."""

from __future__ import annotations

from typing import Any

from aiport.store.jobs import TERMINAL_STATUSES, Job, Notification, WebhookAttempt, WebhookDelivery, WebhookSubscription
from aiport.store.models import iso_utc


def job_url(job_id: str) -> str:
    return f"/api/jobs/{job_id}"


def job_view(job: Job, *, full: bool = True) -> dict[str, Any]:
    """`full` adds the input and the result (lists leave them out: they can be large)."""
    view: dict[str, Any] = {
        "id": job.id,
        "object": "job",
        "kind": job.kind,
        "status": job.status,
        "progress": {"done": job.progress_done, "total": job.progress_total, "message": job.progress_message},
        "attempt": job.attempt,
        "user_id": job.user_id,
        "app_id": job.app_id,
        "created_at": iso_utc(job.created_at),
        "started_at": iso_utc(job.started_at),
        "finished_at": iso_utc(job.finished_at),
        "updated_at": iso_utc(job.updated_at),
        "error": {"message": job.error_message, "code": job.error_code} if job.error_message else None,
        "url": job_url(job.id),
        "events_url": job_url(job.id) + "/events",
    }
    if full:
        view["input"] = job.input
        view["result"] = job.result
    return view


def job_event_data(job: Job) -> dict[str, Any]:
    """A status event: enough to render the job without another request."""
    data: dict[str, Any] = {"status": job.status, "attempt": job.attempt}
    if job.status in TERMINAL_STATUSES:
        data["finished_at"] = iso_utc(job.finished_at)
        if job.error_message:
            data["error"] = {"message": job.error_message, "code": job.error_code}
    return data


def notification_view(n: Notification) -> dict[str, Any]:
    return {
        "id": n.id,
        "object": "notification",
        "type": n.type,
        "title": n.title,
        "body": n.body,
        "data": n.data,
        "created_at": iso_utc(n.created_at),
        "read_at": iso_utc(n.read_at),
    }


def subscription_view(sub: WebhookSubscription) -> dict[str, Any]:
    """Never the secret: it is shown once, when created or rotated."""
    return {
        "id": sub.id,
        "object": "webhook",
        "url": sub.url,
        "events": sub.events,
        "app_id": sub.app_id,
        "description": sub.description,
        "active": sub.active,
        "secret_prefix": sub.secret_prefix,
        "created_at": iso_utc(sub.created_at),
        "updated_at": iso_utc(sub.updated_at),
    }


def delivery_view(d: WebhookDelivery, attempts: list[WebhookAttempt] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": d.id,
        "object": "webhook_delivery",
        "webhook_id": d.subscription_id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "next_attempt_at": iso_utc(d.next_attempt_at) if d.status == "pending" else None,
        "give_up_at": iso_utc(d.give_up_at),
        "created_at": iso_utc(d.created_at),
        "delivered_at": iso_utc(d.delivered_at),
    }
    if attempts is not None:
        view["body"] = d.body
        view["log"] = [
            {
                "attempt": a.attempt,
                "trigger": a.trigger,
                "status_code": a.status_code,
                "latency_ms": a.latency_ms,
                "response_excerpt": a.response_excerpt,
                "error": a.error,
                "created_at": iso_utc(a.created_at),
            }
            for a in attempts
        ]
    return view
