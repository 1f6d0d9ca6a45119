"""Who is calling: resolved once by the identify stage, read by every later stage."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class Principal:
    org_id: str
    user_id: str
    api_key_id: str | None = None
    team_id: str | None = None
    role: str = "member"
    allowed_models: frozenset[str] | None = None  # None: every model of the org

    def may_use(self, model_name: str) -> bool:
        return self.allowed_models is None or model_name in self.allowed_models
