"""Settings, read in one place: environment variables AIPORT_* and the models/providers YAML."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_CATALOG = Path(__file__).parent / "defaults" / "models.yaml"


class Price(BaseModel):
    """US dollars per million tokens."""

    input_per_million: float = Field(0.0, ge=0)
    output_per_million: float = Field(0.0, ge=0)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million) / 1e6


class ProviderConfig(BaseModel):
    kind: Literal["local", "openai_compat", "anthropic"]
    base_url: str | None = None
    api_key: str | None = None
    api_key_env: str | None = None  # read the key from this environment variable (preferred)
    timeout_seconds: float = Field(120.0, gt=0)
    connect_timeout_seconds: float = Field(5.0, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)

    def resolved_api_key(self) -> str | None:
        if self.api_key_env:
            return os.environ.get(self.api_key_env) or self.api_key
        return self.api_key


class ModelConfig(BaseModel):
    name: str = Field(min_length=1)
    provider: str
    upstream_model: str | None = None  # the name the provider knows it by; default: name
    price: Price = Field(default_factory=Price)
    context_window: int = Field(8192, gt=0)
    max_output_tokens: int = Field(4096, gt=0)
    supports_tools: bool = False
    supports_json_schema: bool = False
    description: str = ""
    fallbacks: list[str] = Field(default_factory=list)  # tried in order when this model fails
    cache_ttl_seconds: int | None = Field(None, gt=0)  # cache every answer of this model (opt-in)

    @property
    def upstream(self) -> str:
        return self.upstream_model or self.name


class AutoRoute(BaseModel):
    """A model alias (e.g. `auto`) that the smart router resolves per request."""

    cheap: str
    strong: str
    threshold: float = Field(0.5, ge=0, le=1)
    description: str = ""


class Catalog(BaseModel):
    """The providers and models this deployment offers, from one YAML file."""

    providers: dict[str, ProviderConfig]
    models: list[ModelConfig]
    routes: dict[str, AutoRoute] = Field(default_factory=dict)

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ModelConfig]) -> list[ModelConfig]:
        names = [m.name for m in models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; duplicated: {', '.join(dupes)}")
        return models

    def model_post_init(self, _context: Any) -> None:
        names = {m.name for m in self.models}
        for model in self.models:
            if model.provider not in self.providers:
                raise ValueError(f"model {model.name!r} names unknown provider {model.provider!r}")
            for fallback in model.fallbacks:
                if fallback not in names or fallback == model.name:
                    raise ValueError(f"model {model.name!r} has an unknown fallback {fallback!r}")
        for alias, route in self.routes.items():
            if alias in names:
                raise ValueError(f"route {alias!r} has the name of a model")
            for tier in (route.cheap, route.strong):
                if tier not in names:
                    raise ValueError(f"route {alias!r} names unknown model {tier!r}")

    @classmethod
    def load(cls, path: Path) -> Catalog:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError as exc:
            raise ConfigError(f"catalog file not found: {path}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"catalog file {path} is not valid YAML: {exc}") from exc
        try:
            return cls.model_validate(raw)
        except (ValidationError, ValueError) as exc:
            raise ConfigError(f"catalog file {path} is invalid: {exc}") from exc


class ConfigError(RuntimeError):
    """The configuration cannot be used; the message says what to fix."""


class Settings(BaseSettings):
    """Every knob, with a safe default. Environment: AIPORT_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="AIPORT_", env_file=".env", extra="ignore")

    data_dir: Path = Path(".aiport")
    database_url: str | None = None
    catalog_path: Path | None = Field(None, alias="AIPORT_CONFIG")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    audit_batch_size: int = Field(500, gt=0)
    audit_flush_interval: float = Field(0.05, gt=0)
    audit_max_buffer: int = Field(100_000, gt=0)
    key_cache_seconds: float = Field(60.0, ge=0)
    revocation_poll_seconds: float = Field(1.0, ge=0)
    redis_url: str | None = None  # shared counters, cache and idempotency for several gateway processes
    quota_fail_open: bool = False  # Redis down: refuse (False) or admit without quota checks (True)
    ratelimit_fail_open: bool = True  # Redis down: admit without rate limits (True) or refuse (False)
    rules_refresh_seconds: float = Field(5.0, ge=0)
    default_output_reservation: int = Field(1024, ge=1)
    idempotency_ttl_seconds: int = Field(86400, ge=1)
    idempotency_wait_seconds: float = Field(300.0, gt=0)
    cache_max_entries: int = Field(10_000, ge=1)
    retry_attempts_per_model: int = Field(2, ge=1, le=10)
    retry_base_delay: float = Field(0.2, ge=0)
    retry_max_delay: float = Field(2.0, ge=0)
    retry_max_retry_after: float = Field(5.0, ge=0)
    breaker_threshold: int = Field(5, ge=1)
    breaker_cooldown_seconds: float = Field(30.0, ge=0)
    local_parallel: int = Field(2, ge=1, le=16)
    local_context: int = Field(4096, ge=256)
    local_threads: int = Field(0, ge=0)  # 0: all cores
    log_level: str = "info"
    # background jobs and webhooks
    broker_url: str | None = None  # Celery broker (amqp://… or redis://…); unset: jobs run in-process
    job_queue: str = "aiport.jobs"  # the Celery queue jobs are published to
    broker_visibility_timeout: float = Field(3600.0, gt=0)  # Redis broker: a dead worker's job returns after this
    job_workers: int = Field(2, ge=1, le=64)  # in-process backend: jobs that run at once
    job_lease_seconds: float = Field(60.0, gt=0)  # a worker silent this long loses its job to another
    job_max_attempts: int = Field(5, ge=1, le=100)  # transient failures are retried this often, with backoff
    job_retry_base_seconds: float = Field(2.0, ge=0)
    jobs_poll_seconds: float = Field(1.0, gt=0)  # how often job queues, webhooks and event streams look
    webhook_allow_private: bool = False  # let webhooks call private/loopback addresses (SSRF guard off)
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    webhook_retry_base_seconds: float = Field(10.0, ge=0)  # first retry delay; doubles, at most an hour
    webhook_retry_window_seconds: float = Field(86400.0, gt=0)  # retried this long, then given up
    webhook_master_key: str | None = Field(None, repr=False)  # derives webhook secrets; default: a key file
    # people and apps
    session_ttl_hours: float = Field(12.0, gt=0)  # a web login lasts this long
    session_cookie_secure: bool | None = None  # None: Secure when the request came over https
    invitation_ttl_hours: float = Field(72.0, gt=0)
    login_max_failures: int = Field(10, ge=1)  # per email and client IP, within login_failure_window_seconds
    login_failure_window_seconds: float = Field(300.0, gt=0)
    demo_password: str | None = None  # the demo users' password; random (printed once) when unset
    app_template_max_chars: int = Field(100_000, gt=0)  # a rendered prompt longer than this is refused
    builder_attempts: int = Field(2, ge=1, le=5)  # natural-language builder: model tries per draft
    builder_model: str | None = None  # model for the natural-language builder; default: the auto model
    # knowledge, clarification, tools, traces (docs/knowledge.md)
    knowledge_max_upload_bytes: int = Field(10 * 1024 * 1024, gt=0)  # larger uploads: 413
    knowledge_max_chars: int = Field(2_000_000, gt=0)  # more extracted text than this: 422
    knowledge_embeddings: Literal["off", "minilm"] = "off"  # minilm: needs the embeddings extra (docs/knowledge.md)
    knowledge_context_chunks: int = Field(5, ge=1, le=20)  # chunks put in front of the model
    clarify_enabled: bool = True
    agent_max_steps: int = Field(6, ge=1, le=20)
    agent_token_budget: int = Field(20_000, ge=100)
    tool_http_allowlist: list[str] = []  # hosts (or host:port) the http_get tool may fetch
    tool_http_allow_private: bool = False  # tests only: allow loopback/private addresses in the allowlist
    otel_export: bool = False  # export trace spans with OpenTelemetry GenAI conventions

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'aiport.db').resolve()}"

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog.load(self.catalog_path or DEFAULT_CATALOG)
