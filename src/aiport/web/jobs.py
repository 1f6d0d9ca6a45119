"""Jobs and notifications over HTTP (webhooks: web/webhooks.py).

/api/jobs: start long work (202 + a URL), watch it (GET, SSE events), cancel it, list it.
/api/notifications: the caller's in-app notifications, and an SSE stream of new ones.
Users see their own jobs; org owners/admins may see every job of their org.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from aiport.domain.chat import ChatRequest
from aiport.domain.errors import GatewayError, NotFound, PermissionDenied, Unprocessable
from aiport.domain.principal import Principal
from aiport.jobs import queries
from aiport.jobs.registry import KINDS, SubmitEnv, field_path
from aiport.jobs.service import JobService
from aiport.jobs.views import job_view, notification_view
from aiport.store.jobs import Job
from aiport.store.models import utcnow
from aiport.web.runtime import Runtime
from aiport.web.sse import SSEResponse
from aiport.web.v1 import identify, parse_chat_request, read_json_body, runtime

router = APIRouter()
jobs_router = APIRouter(prefix="/api/jobs", tags=["jobs"])
notifications_router = APIRouter(prefix="/api/notifications", tags=["notifications"])

ADMIN_ROLES = ("owner", "admin")


def jobs_service(rt: Runtime) -> JobService:
    assert rt.jobs is not None, "the jobs service starts with the runtime"
    return rt.jobs


def json_body(model: type[BaseModel], data: Any) -> Any:
    """Validate a JSON body; a bad field becomes a 422 naming it."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        param = field_path("", err["loc"]).lstrip(".") or None
        raise Unprocessable(f"Invalid value for '{param or 'body'}': {err['msg']}.", param=param) from exc


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
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
    openapi_extra=openapi_body(JobCreate),
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
    body: JobCreate = json_body(JobCreate, data)

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
    job, _ = await jobs_service(rt).submit(
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
async def getjobs_service(
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
    job = await jobs_service(rt).store.get(job_id) if len(job_id) <= 64 else None
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
    service = jobs_service(rt)
    events = queries.job_event_stream(rt.sessions, service.changed, job.id, start, rt.settings.jobs_poll_seconds)
    return SSEResponse(events, lambda: None)


@jobs_router.post("/{job_id}/cancel", summary="Cancel a queued or running job")
async def cancel_job(job_id: str, request: Request) -> dict[str, Any]:
    rt = runtime(request)
    job = await _visible_job(rt, await identify(request), job_id)
    cancelled = await jobs_service(rt).cancel(job.id)
    if cancelled is None:
        current = await jobs_service(rt).store.get(job.id)
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
        rt.sessions, jobs_service(rt).changed, principal.user_id, since, rt.settings.jobs_poll_seconds
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


router.include_router(jobs_router)
router.include_router(notifications_router)
