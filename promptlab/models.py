"""How the lab's commands and online evaluation call models: ``providers.Providers`` from settings.

Costs come from the cost table for real models and from the labelled SIMULATED price
list for ``simulated/*`` models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from promptlab.providers import Providers
    from promptlab.settings import Settings


def provider_settings(settings: Settings | None) -> dict[str, Any]:
    """``[providers]`` from settings as ``providers.ProviderSettings`` (built-ins kept)."""
    from promptlab.providers import ProviderSettings, merge_providers

    known = set(ProviderSettings.model_fields)
    tables = {}
    for name, cfg in (settings.providers if settings is not None else {}).items():
        fields = cfg.model_dump(exclude_unset=True) if hasattr(cfg, "model_dump") else dict(cfg)
        tables[name] = {k: v for k, v in fields.items() if k in known}
    return merge_providers(tables)


def make_providers(settings: Settings | None) -> Providers:
    """The configured providers (built-ins kept), costed per call."""
    from promptlab.prompts import cost_per_token
    from promptlab.providers import Providers, simulated_tasks

    def cost(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        if model.startswith("simulated/"):  # a SIMULATED price, so cost objectives have figures
            return simulated_tasks.price(model, prompt_tokens, completion_tokens)
        prices = cost_per_token(model)
        return None if prices is None else prompt_tokens * prices[0] + completion_tokens * prices[1]

    return Providers(provider_settings(settings), cost=cost)
