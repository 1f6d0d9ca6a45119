"""App builder screens (filled in below)."""

from __future__ import annotations

from fastapi import APIRouter

from aiport.web.ui.context import PageRoute

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=PageRoute)
