"""Resolving ``provider/model`` names to what a call needs: the provider and its URL."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from promptlab.providers.errors import ProviderNotConfigured, RouteNotAllowed
from promptlab.providers.settings import ProviderSettings

CACHE_LIMIT = 4096
"""Resolved names kept (unrouted calls could name anything)."""


@dataclass(frozen=True, slots=True)
class Target:
    """One provider and model, resolved from a ``provider/model`` name."""

    provider: str
    settings: ProviderSettings
    model: str
    """The model name the provider knows (without the ``provider/`` prefix)."""

    @property
    def qualified(self) -> str:
        return f"{self.provider}/{self.model}"

    def url(self, path: str = "/chat/completions") -> str:
        return (self.settings.api_base or "").rstrip("/") + path


class Registry:
    """The configured providers by name."""

    def __init__(
        self, providers: Mapping[str, ProviderSettings], *, default_provider: str | None = None
    ) -> None:
        self.providers = dict(providers)
        self.default_provider = default_provider
        self._cache: dict[tuple[str, bool], Target] = {}

    def names(self) -> list[str]:
        return list(self.providers)

    def route_problem(self, model: str) -> str | None:
        """Why ``provider/model`` may not be called (unknown providers aside), or None:
        the rule a prompt's variants are checked by when they are registered."""
        provider, sep, rest = model.partition("/")
        settings = self.providers.get(provider)
        if not sep or settings is None:
            return None
        refused = settings.route_problem(rest)
        return None if refused is None else f"provider {provider!r}: {refused}"

    def resolve(self, model: str, *, strict: bool = True) -> Target:
        """``provider/model`` -> Target.

        Not ``strict``: a name whose prefix is no configured provider goes, whole, to the
        default provider (``gpt-4o-mini``, ``meta-llama/llama-3``), when there is one.
        """
        key = (model, strict)
        target = self._cache.get(key)
        if target is not None:
            return target
        provider, sep, rest = model.partition("/")
        if not (sep and rest and provider in self.providers):
            if strict or self.default_provider not in self.providers or not model:
                raise ProviderNotConfigured(
                    f"model {model!r} names no configured provider "
                    f"(providers: {', '.join(self.providers) or 'none'})"
                )
            provider, rest = str(self.default_provider), model
        settings = self.providers[provider]
        refused = settings.route_problem(rest)
        if refused is not None:
            raise RouteNotAllowed(f"provider {provider!r}: {refused}")
        target = Target(provider, settings, rest)
        if len(self._cache) < CACHE_LIMIT:
            self._cache[key] = target
        return target
