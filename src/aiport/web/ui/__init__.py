"""The web UI: server-rendered pages (Jinja2) with small vanilla JavaScript modules, served
by aiport itself (no build step, no CDN). `install(app)` adds the pages and static files."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    from aiport.web.ui.admin_pages import router as admin_router
    from aiport.web.ui.builder_pages import router as builder_router
    from aiport.web.ui.pages import router as pages_router

    for router in (pages_router, builder_router, admin_router):
        app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return RedirectResponse("/ui/", status_code=307)
