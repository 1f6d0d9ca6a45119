"""People tests use the same fixtures as the apps tests."""

from tests.apps.conftest import any_apps_gateway, any_world, apps_gateway, apps_pg_gateway, scripted, world

__all__ = ["any_apps_gateway", "any_world", "apps_gateway", "apps_pg_gateway", "scripted", "world"]
