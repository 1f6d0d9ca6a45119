"""Jobs, webhooks and notifications over HTTP.

/api/jobs: start long work (202 + a URL), watch it (GET, SSE events), cancel it, list it.
/api/webhooks: an org's outbound webhooks (owners/admins), their delivery log, redeliver.
/api/notifications: the caller's in-app notifications, and an SSE stream of new ones.
Users see their own jobs; org owners/admins may see every job of their org.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from starlette.responses import Response

from aiport.domain.chat import ChatRequest
from aiport.domain.errors import GatewayError, NotFound, PermissionDenied, Unprocessable
from aiport.domain.ids import new_id
from aiport.domain.principal import Principal
from aiport.jobs import queries, ssrf
from aiport.jobs.registry import KINDS, SubmitEnv, field_path
from aiport.jobs.service import JobService
from aiport.jobs.views import delivery_view, job_view, notification_view, subscription_view
from aiport.jobs.webhook_secrets import derive_secret, new_salt
from aiport.jobs.webhooks import EVENTS, ping_delivery
from aiport.store.jobs import Job, WebhookDelivery, WebhookSubscription
from aiport.store.models import utcnow
from aiport.web.runtime import Runtime
from aiport.web.sse import SSEResponse
from aiport.web.v1 import identify, parse_chat_request, read_json_body, runtime

router = APIRouter()
jobs_router = APIRouter(prefix="/api/jobs", tags=["jobs"])
webhooks_router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])
notifications_router = APIRouter(prefix="/api/notifications", tags=["notifications"])

ADMIN_ROLES = ("owner", "admin")
Id = Annotated[str, Field(max_length=64)]


def _jobs(rt: Runtime) -> JobService:
    assert rt.jobs is not None, "the jobs service starts with the runtime"
    return rt.jobs


def _body(model: type[BaseModel], data: Any) -> Any:
    """Validate a JSON body; a bad field becomes a 422 naming it."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        param = field_path("", err["loc"]).lstrip(".") or None
        raise Unprocessable(f"Invalid value for '{param or 'body'}': {err['msg']}.", param=param) from exc


def _json_schema(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


# ---- jobs ------------------------------------------------------------------------------


class JobCreate(BaseModel):
    """POST /api/jobs: `kind` names the work (GET /api/jobs/kinds), `input` is its input."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(description="chat_batch | summarize | app_run (GET /api/jobs/kinds)")
    input: dict[str, Any]


@jobs_router.post(
    "",
    status_code=202,
    summary="Start a job; answers 202 with its id and URL at once",
    openapi_extra=_json_schema(JobCreate),
    responses={202: {"description": "The job, queued"}, 422: {"description": "Bad input, naming the field"}},
)
async def create_job(request: Request) -> Response:
    rt = runtime(request)
    principal = await identify(request)
    data = await read_json_body(request, rt.settings.max_body_bytes)
    if not isinstance(data, dict):
        raise Unprocessable("The body must be a JSON object with 'kind' and 'input'.")
    name = data.get("kind")
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        known = ", ".join(k.name for k in KINDS.all())
        what = f"Unknown job kind {name!r}" if isinstance(name, str) else "'kind' is required"
        raise Unprocessable(f"{what}; choose one of: {known}.", param="kind", code="unknown_kind")
    body: JobCreate = _body(JobCreate, data)

    def check_route(req: ChatRequest) -> None:
        rt.router.resolve(req, principal)

    env = SubmitEnv(
        principal=principal,
        parse_chat=lambda raw: parse_chat_request(raw, None),
        check_route=check_route,
        sessions=rt.sessions,
        router=rt.router,
        max_prompt_chars=rt.settings.app_template_max_chars,
    )
    stored = await kind.check(body.input, env)
    idem = request.headers.get("idempotency-key")
    if idem is not None and not 0 < len(idem) <= 200:
        raise Unprocessable("The Idempotency-Key header must be 1 to 200 characters.", param="Idempotency-Key")
    job, _ = await _jobs(rt).submit(
        principal,
        kind=kind.name,
        input=stored,
        idempotency_key=idem,
        request_id=request.scope["state"]["request_id"],
        app_id=stored.get("app_id"),
    )
    return Response(
        orjson.dumps(job_view(job, full=False)),
        status_code=202,
        media_type="application/json",
        headers={"location": f"/api/jobs/{job.id}"},
    )


@jobs_router.get("/kinds", summary="The job kinds this server runs, with their input schemas")
async def get_kinds(request: Request) -> dict[str, Any]:
    await identify(request)
    data = [
        {"name": k.name, "description": k.description, "input_schema": k.input_model.model_json_schema()}
        for k in KINDS.all()
    ]
    return {"object": "list", "data": data}


@jobs_router.get("", summary="My jobs, newest first (org admins: all=true for everyone's)")
async def get_jobs(
    request: Request,
    status: Annotated[str | None, Query(pattern="^(queued|running|succeeded|failed|cancelled)$")] = None,
    kind: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    before: Annotated[str | None, Query(max_length=64, description="id of the last job seen")] = None,
    all: Annotated[bool, Query(description="every job of the organization (owners/admins)")] = False,
) -> dict[str, Any]:
    rt = runtime(request)
    principal = await identify(request)
    if all and principal.role not in ADMIN_ROLES:
        raise PermissionDenied("Only organization owners and admins may list everyone's jobs.", code="admin_only")
    async with rt.sessions() as session:
        rows = await queries.list_jobs(
            session,
            org_id=principal.org_id,
            user_id=None if all else principal.user_id,
            status=status,
            kind=kind,
            before=before,
            limit=limit,
        )
    data = [job_view(j, full=False) for j in rows]
    return {"object": "list", "data": data, "next_before": data[-1]["id"] if len(data) == limit else None}


async def _visible_job(rt: Runtime, principal: Principal, job_id: str) -> Job:
    """The job, if this caller may see it; otherwise the same 404 whether or not it exists."""
    job = await _jobs(rt).store.get(job_id) if len(job_id) <= 64 else None
    if (
        job is None
        or job.org_id != principal.org_id
        or (job.user_id != principal.user_id and principal.role not in ADMIN_ROLES)
    ):
        raise NotFound(f"No job {job_id[:64]}.", param="job_id", code="job_not_found")
    return job


@jobs_router.get("/{job_id}", summary="A job: status, progress, timestamps, input, result or error")
async def get_job(job_id: str, request: Request) -> dict[str, Any]:
    rt = runtime(request)
    return job_view(await _visible_job(rt, await identify(request), job_id))


@jobs_router.get(
    "/{job_id}/events",
    summary="Server-sent events: the job's status and progress until it ends (Last-Event-ID resumes)",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def get_job_events(job_id: str, request: Request, after: Annotated[int, Query(ge=0)] = 0) -> Response:
    rt = runtime(request)
    job = await _visible_job(rt, await identify(request), job_id)
    last = request.headers.get("last-event-id", "")
    start = int(last) if last.isdigit() else after
    service = _jobs(rt)
    events = queries.job_event_stream(rt.sessions, service.changed, job.id, start, rt.settings.jobs_poll_seconds)
    return SSEResponse(events, lambda: None)


@jobs_router.post("/{job_id}/cancel", summary="Cancel a queued or running job")
async def cancel_job(job_id: str, request: Request) -> dict[str, Any]:
    rt = runtime(request)
    job = await _visible_job(rt, await identify(request), job_id)
    cancelled = await _jobs(rt).cancel(job.id)
    if cancelled is None:
        current = await _jobs(rt).store.get(job.id)
        status = current.status if current else job.status
        raise GatewayError(
            f"Job {job.id} already {status}; only queued or running jobs can be cancelled.",
            status=409,
            code="job_not_cancellable",
        )
    return job_view(cancelled)


# ---- notifications -----------------------------------------------------------------------


@notifications_router.get("", summary="My notifications, newest first")
async def get_notifications(
    request: Request,
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    rt = runtime(request)
    principal = await identify(request)
    async with rt.sessions() as session:
        rows = await queries.list_notifications(session, principal.user_id, unread=unread, before=before, limit=limit)
    return {"object": "list", "data": [notification_view(n) for n in rows]}


@notifications_router.get(
    "/stream",
    summary="Server-sent events: my new notifications as they happen (Last-Event-ID resumes)",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_notifications(request: Request) -> Response:
    rt = runtime(request)
    principal = await identify(request)
    since = utcnow()
    last = request.headers.get("last-event-id")
    if last:
        async with rt.sessions() as session:
            since = await queries.notification_created_at(session, principal.user_id, last[:64]) or since
    events = queries.notification_stream(
        rt.sessions, _jobs(rt).changed, principal.user_id, since, rt.settings.jobs_poll_seconds
    )
    return SSEResponse(events, lambda: None)


@notifications_router.post("/{notification_id}/read", summary="Mark a notification read")
async def read_notification(notification_id: str, request: Request) -> dict[str, Any]:
    rt = runtime(request)
    principal = await identify(request)
    async with rt.sessions() as session, session.begin():
        n = await queries.mark_read(session, principal.user_id, notification_id[:64])
    if n is None:
        raise NotFound(f"No notification {notification_id[:64]}.", code="notification_not_found")
    return notification_view(n)


# ---- webhooks ----------------------------------------------------------------------------


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[str, Field(min_length=1, max_length=2000)]
    events: Annotated[list[str], Field(min_length=1, max_length=20, description=f"any of {', '.join(EVENTS)}, or *")]
    description: Annotated[str, Field(max_length=200)] = ""
    app_id: Annotated[str | None, Field(max_length=40)] = None
    active: bool = True


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[str | None, Field(min_length=1, max_length=2000)] = None
    events: Annotated[list[str] | None, Field(min_length=1, max_length=20)] = None
    description: Annotated[str | None, Field(max_length=200)] = None
    active: bool | None = None


async def _require_admin(request: Request) -> Principal:
    principal = await identify(request)
    if principal.role not in ADMIN_ROLES:
        raise PermissionDenied("Only organization owners and admins may manage webhooks.", code="admin_only")
    return principal


async def _check_target(rt: Runtime, url: str, events: list[str]) -> None:
    for i, event in enumerate(events):
        if event != "*" and event not in EVENTS:
            raise Unprocessable(
                f"Unknown event {event!r}; choose from {', '.join(EVENTS)} or '*'.", param=f"events[{i}]"
            )
    try:
        await ssrf.vet(url, allow_private=rt.settings.webhook_allow_private)
    except ssrf.UnsafeTarget as exc:
        raise Unprocessable(str(exc), param="url", code="unsafe_url") from exc


async def _subscription(rt: Runtime, principal: Principal, webhook_id: str) -> WebhookSubscription:
    async with rt.sessions() as session:
        sub = await session.get(WebhookSubscription, webhook_id[:64])
    if sub is None or sub.org_id != principal.org_id:
        raise NotFound(f"No webhook {webhook_id[:64]}.", code="webhook_not_found")
    return sub


def _with_secret(rt: Runtime, sub: WebhookSubscription) -> dict[str, Any]:
    secret = derive_secret(_jobs(rt).webhooks.master_key, sub.id, sub.secret_salt)
    return {**subscription_view(sub), "secret": secret}


@webhooks_router.post(
    "",
    status_code=201,
    summary="Add a webhook; its signing secret is shown only in this answer",
    openapi_extra=_json_schema(WebhookCreate),
)
async def create_webhook(request: Request) -> dict[str, Any]:
    rt = runtime(request)
    principal = await _require_admin(request)
    body: WebhookCreate = _body(WebhookCreate, await read_json_body(request, 64 * 1024))
    await _check_target(rt, body.url, body.events)
    sub = WebhookSubscription(
        id=new_id("whk_"),
        org_id=principal.org_id,
        app_id=body.app_id,
        created_by=principal.user_id,
        url=body.url,
        events=body.events,
        description=body.description,
        secret_salt=new_salt(),
        active=body.active,
    )
    sub.secret_prefix = derive_secret(_jobs(rt).webhooks.master_key, sub.id, sub.secret_salt)[:12]
    async with rt.sessions() as session, session.begin():
        session.add(sub)
    return _with_secret(rt, sub)


@webhooks_router.get("", summary="The organization's webhooks (never their secrets)")
async def get_webhooks(request: Request) -> dict[str, Any]:
    rt = runtime(request)
    principal = await _require_admin(request)
    async with rt.sessions() as session:
        rows = await session.execute(
            select(WebhookSubscription)
            .where(WebhookSubscription.org_id == principal.org_id)
            .order_by(WebhookSubscription.id)
        )
        return {"object": "list", "data": [subscription_view(s) for s in rows.scalars()]}


@webhooks_router.get("/{webhook_id}", summary="One webhook")
async def get_webhook(webhook_id: str, request: Request) -> dict[str, Any]:
    rt = runtime(request)
    return subscription_view(await _subscription(rt, await _require_admin(request), webhook_id))


@webhooks_router.patch(
    "/{webhook_id}",
    summary="Change a webhook's URL, events, description or state",
    openapi_extra=_json_schema(WebhookUpdate),
)
async def update_webhook(webhook_id: str, request: Request) -> dict[str, Any]:
    rt = runtime(request)
    principal = await _require_admin(request)
    sub = await _subscription(rt, principal, webhook_id)
    body: WebhookUpdate = _body(WebhookUpdate, await read_json_body(request, 64 * 1024))
    changes = body.model_dump(exclude_none=True)
    await _check_target(rt, changes.get("url", sub.url), changes.get("events", sub.events))
    async with rt.sessions() as session, session.begin():
        fresh = await session.get(WebhookSubscription, sub.id)
        assert fresh is not None
        for name, value in changes.items():
            setattr(fresh, name, value)
        fresh.updated_at = utcnow()
    return subscription_view(fresh)


@webhooks_router.delete("/{webhook_id}", summary="Delete a webhook and its delivery log")
async def delete_webhook(webhook_id: str, request: Request) -> dict[str, Any]:
    rt = runtime(request)
    sub = await _subscription(rt, await _require_admin(request), webhook_id)
    async with rt.sessions() as session, session.begin():
        fresh = await session.get(WebhookSubscription, sub.id)
        if fresh is not None:
            await session.delete(fresh)
    return {"id": sub.id, "object": "webhook", "deleted": True}


@webhooks_router.post("/{webhook_id}/rotate-secret", summary="Replace the signing secret; shown only in this answer")
async def rotate_secret(webhook_id: str, request: Request) -> dict[str, Any]:
    rt = runtime(request)
    sub = await _subscription(rt, await _require_admin(request), webhook_id)
    async with rt.sessions() as session, session.begin():
        fresh = await session.get(WebhookSubscription, sub.id)
        assert fresh is not None
        fresh.secret_salt = new_salt()
        fresh.secret_prefix = derive_secret(_jobs(rt).webhooks.master_key, fresh.id, fresh.secret_salt)[:12]
        fresh.updated_at = utcnow()
    return _with_secret(rt, fresh)


@webhooks_router.post("/{webhook_id}/ping", status_code=202, summary="Send a webhook.ping event now")
async def ping_webhook(webhook_id: str, request: Request) -> dict[str, Any]:
    rt = runtime(request)
    sub = await _subscription(rt, await _require_admin(request), webhook_id)
    delivery = ping_delivery(sub, window=rt.settings.webhook_retry_window_seconds)
    async with rt.sessions() as session, session.begin():
        session.add(delivery)
    _jobs(rt).webhooks.pulse.fire()
    return delivery_view(delivery)


@webhooks_router.get("/{webhook_id}/deliveries", summary="The webhook's deliveries, newest first")
async def get_deliveries(
    webhook_id: str,
    request: Request,
    status: Annotated[str | None, Query(pattern="^(pending|succeeded|failed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    rt = runtime(request)
    sub = await _subscription(rt, await _require_admin(request), webhook_id)
    async with rt.sessions() as session:
        rows = await queries.list_deliveries(session, sub.id, status=status, before=before, limit=limit)
    data = [delivery_view(d) for d in rows]
    return {"object": "list", "data": data, "next_before": data[-1]["id"] if len(data) == limit else None}


async def _delivery(rt: Runtime, principal: Principal, delivery_id: str) -> WebhookDelivery:
    async with rt.sessions() as session:
        d = await session.get(WebhookDelivery, delivery_id[:64])
    if d is None or d.org_id != principal.org_id:
        raise NotFound(f"No webhook delivery {delivery_id[:64]}.", code="delivery_not_found")
    return d


@webhooks_router.get("/deliveries/{delivery_id}", summary="One delivery: body and every attempt")
async def get_delivery(delivery_id: str, request: Request) -> dict[str, Any]:
    rt = runtime(request)
    d = await _delivery(rt, await _require_admin(request), delivery_id)
    async with rt.sessions() as session:
        attempts = await queries.delivery_attempts(session, d.id)
    return delivery_view(d, attempts)


@webhooks_router.post("/deliveries/{delivery_id}/redeliver", summary="Send a delivery again now (whatever its state)")
async def redeliver(delivery_id: str, request: Request) -> dict[str, Any]:
    rt = runtime(request)
    d = await _delivery(rt, await _require_admin(request), delivery_id)
    fresh = await _jobs(rt).webhooks.attempt(d.id, manual=True)
    if fresh is None:
        raise GatewayError(
            "An attempt of this delivery is in progress; try again in a moment.", status=409, code="delivery_busy"
        )
    async with rt.sessions() as session:
        attempts = await queries.delivery_attempts(session, fresh.id)
    return delivery_view(fresh, attempts)


router.include_router(jobs_router)
router.include_router(notifications_router)
router.include_router(webhooks_router)
