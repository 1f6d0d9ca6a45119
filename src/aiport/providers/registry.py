"""Builds provider adapters from the catalog, lazily, so an unused provider costs nothing."""

from __future__ import annotations

import asyncio

from aiport.config import Catalog, ProviderConfig, Settings
from aiport.providers.base import Provider


class ProviderRegistry:
    def __init__(self, catalog: Catalog, settings: Settings) -> None:
        self._configs = catalog.providers
        self._settings = settings
        self._providers: dict[str, Provider] = {}

    def get(self, name: str) -> Provider:
        provider = self._providers.get(name)
        if provider is None:
            provider = self._build(name, self._configs[name])
            self._providers[name] = provider
        return provider

    def _build(self, name: str, config: ProviderConfig) -> Provider:
        if config.kind == "openai_compat":
            from aiport.providers.openai_compat import OpenAICompatProvider

            return OpenAICompatProvider(name, config)
        if config.kind == "anthropic":
            from aiport.providers.anthropic import AnthropicProvider

            return AnthropicProvider(name, config)
        from aiport.providers.local import LocalProvider

        s = self._settings
        return LocalProvider(
            name,
            config,
            data_dir=s.data_dir,
            parallel=s.local_parallel,
            context=s.local_context,
            threads=s.local_threads,
        )

    async def aclose(self) -> None:
        await asyncio.gather(*(p.aclose() for p in self._providers.values()), return_exceptions=True)
        self._providers.clear()
