"""The FastAPI application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy import text

from aiport import __version__
from aiport.config import Settings
from aiport.web import admin, admin_limits, auth, conversations, people, v1
from aiport.web import apps as apps_api
from aiport.web.errors import install_error_handlers
from aiport.web.fastlane import GatewayApp
from aiport.web.jobs import router as jobs_router
from aiport.web.knowledge import router as knowledge_router
from aiport.web.knowledge import traces_router
from aiport.web.middleware import RequestIdMiddleware
from aiport.web.openai_schema import ChatCompletionRequest
from aiport.web.runtime import Runtime
from aiport.web.ui import install as install_ui
from aiport.web.webhooks import router as webhooks_router


def _freeze_startup_heap() -> None:
    """Take everything built at startup (modules, SQLAlchemy/FastAPI/pydantic machinery, the
    catalog: ~150k objects) out of the cyclic collector's reach. Otherwise every full
    collection walks all of it and stalls the event loop ~100 ms every few seconds under load;
    it was the gateway's p99 (docs/benchmarks.md). Objects made later are collected as usual."""
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings | None = None, *, runtime: Runtime | None = None, warm_local: bool = False
) -> FastAPI:
    """Build the app. With `runtime`, the caller owns startup/shutdown (tests, embedding).
    `warm_local` loads embedded models in the background so the first call doesn't wait."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            app.state.runtime = runtime
            yield
            return
        rt = await Runtime.start(settings)
        app.state.runtime = rt
        _freeze_startup_heap()
        if warm_local:
            rt.warm_local_models()
        try:
            yield
        finally:
            await rt.close()

    app = GatewayApp(
        fast_routes={"/v1/chat/completions": v1.chat_completions},
        title="aiport",
        version=__version__,
        lifespan=lifespan,
        description="Self-hosted AI platform: OpenAI-compatible gateway with audit log.",
    )
    install_error_handlers(app)
    app.include_router(v1.router)
    app.include_router(admin.router)
    app.include_router(jobs_router)
    app.include_router(webhooks_router)
    app.include_router(admin_limits.router)
    app.include_router(auth.router)
    app.include_router(people.router)
    app.include_router(apps_api.router)
    app.include_router(conversations.router)
    app.include_router(knowledge_router)
    app.include_router(traces_router)
    install_ui(app)  # web UI pages and static files under /ui

    @app.get("/healthz", tags=["ops"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Readiness: database reachable, audit backlog")
    async def readyz() -> dict[str, Any]:
        rt: Runtime = app.state.runtime
        async with rt.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return {"status": "ready", "audit_pending": rt.audit.pending}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
            body = ChatCompletionRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            defs = body.pop("$defs", {})
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(defs)
            components["ChatCompletionRequest"] = body
            schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(RequestIdMiddleware)
    return app
