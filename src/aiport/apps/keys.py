"""API keys bound to one app, for programs that should run that app and nothing else.

An app key is an ordinary key of the user who made it, with an empty model list (so the
plain OpenAI API refuses every model) and a row in `app_keys` naming its app; runs of that
app through `app:<slug>` lift the model restriction for that app's own model only."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aiport.accounts.keys import CreatedKey, create_key, revoke_key
from aiport.domain.errors import NotFound
from aiport.store.apps import App, AppKey
from aiport.store.models import ApiKey, User


async def create_app_key(session: AsyncSession, user: User, app: App, name: str) -> CreatedKey:
    created = await create_key(session, user, name=name, allowed_models=[])
    session.add(AppKey(api_key_id=created.key.id, app_id=app.id))
    await session.flush()
    return created


async def list_app_keys(session: AsyncSession, app: App) -> list[ApiKey]:
    query = (
        select(ApiKey).join(AppKey, AppKey.api_key_id == ApiKey.id).where(AppKey.app_id == app.id).order_by(ApiKey.id)
    )
    return list((await session.execute(query)).scalars())


async def revoke_app_key(session: AsyncSession, app: App, key_id: str) -> ApiKey:
    link = await session.get(AppKey, key_id[:64])
    if link is None or link.app_id != app.id:
        raise NotFound("No API key with that id for this app.", code="key_not_found")
    return await revoke_key(session, app.org_id, key_id)
