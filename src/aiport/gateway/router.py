"""The route stage: which configured model serves this call, and why.

An exact model name routes to that model. An alias from the catalog's `routes` (e.g.
`auto`) resolves through an ordered policy: explicit rules (required capabilities,
prompt length), then the complexity scorer against the alias's threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiport.config import AutoRoute, Catalog, ModelConfig
from aiport.domain.chat import ChatRequest
from aiport.domain.errors import InvalidRequest, NotFound, PermissionDenied
from aiport.domain.principal import Principal

if TYPE_CHECKING:
    from aiport.gateway.complexity import ComplexityScorer


@dataclass(frozen=True, slots=True)
class Route:
    model: ModelConfig
    reason: str
    score: float | None = None


class Router:
    def __init__(self, catalog: Catalog, scorer: ComplexityScorer | None = None) -> None:
        self._models = {m.name: m for m in catalog.models}
        self._routes = catalog.routes
        self._scorer = scorer  # built on first use of an alias: no aliases, no cost

    def model(self, name: str) -> ModelConfig:
        return self._models[name]

    def models_for(self, principal: Principal) -> list[ModelConfig]:
        return [m for m in self._models.values() if principal.may_use(m.name)]

    def aliases_for(self, principal: Principal) -> list[str]:
        return [alias for alias in self._routes if principal.may_use(alias)]

    def resolve(self, request: ChatRequest, principal: Principal) -> Route:
        alias = self._routes.get(request.model)
        if alias is not None:
            if not principal.may_use(request.model):
                raise PermissionDenied(f"This API key is not allowed to use '{request.model}'.", param="model")
            route = self._smart(request, alias)
        else:
            model = self._models.get(request.model)
            if model is None:
                known = sorted([*self._models, *self._routes])
                raise NotFound(
                    f"The model '{request.model}' does not exist. "
                    f"Available models: {', '.join(known) or 'none'} (GET /v1/models).",
                    param="model",
                )
            route = Route(model=model, reason="requested")
        if not principal.may_use(route.model.name) and alias is None:
            raise PermissionDenied(f"This API key is not allowed to use the model '{route.model.name}'.", param="model")
        self._check_capabilities(request, route.model)
        return route

    def _smart(self, request: ChatRequest, alias: AutoRoute) -> Route:
        cheap, strong = self._models[alias.cheap], self._models[alias.strong]
        fmt = (request.params.get("response_format") or {}).get("type")
        if request.params.get("tools") and not cheap.supports_tools:
            return Route(strong, f"{request.model}: tools requested, {cheap.name} has none -> {strong.name}")
        if fmt == "json_schema" and not cheap.supports_json_schema:
            return Route(strong, f"{request.model}: structured output needed -> {strong.name}")
        chars = sum(len(str(m.get("content") or "")) for m in request.messages)
        if chars // 3 > cheap.context_window * 0.8:
            return Route(strong, f"{request.model}: long prompt (~{chars // 3} tokens) -> {strong.name}")
        if self._scorer is None:
            from aiport.gateway.complexity import ComplexityScorer

            self._scorer = ComplexityScorer()
        scored = self._scorer.score(request)
        signals = ", ".join(scored.signals) or "no complexity signals"
        if scored.score >= alias.threshold:
            return Route(
                strong,
                f"{request.model}: complexity {scored.score:.2f} >= {alias.threshold:.2f} ({signals}) -> {strong.name}",
                scored.score,
            )
        return Route(
            cheap,
            f"{request.model}: complexity {scored.score:.2f} < {alias.threshold:.2f} ({signals}) -> {cheap.name}",
            scored.score,
        )

    @staticmethod
    def _check_capabilities(request: ChatRequest, model: ModelConfig) -> None:
        fmt = request.params.get("response_format") or {}
        if fmt.get("type") == "json_schema" and not model.supports_json_schema:
            raise InvalidRequest(
                f"The model '{model.name}' does not support response_format json_schema; "
                "use json_object or pick a model that supports structured output.",
                param="response_format",
            )
        max_tokens = request.max_tokens
        if max_tokens is not None and max_tokens > model.max_output_tokens:
            raise InvalidRequest(
                f"Invalid value for 'max_tokens': {max_tokens} is more than the model '{model.name}' "
                f"can produce (at most {model.max_output_tokens} tokens).",
                param="max_tokens",
            )
