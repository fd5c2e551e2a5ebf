"""Offline facts reach the stream but never the learner's live statistics or routing."""

from __future__ import annotations

from pathlib import Path

from promptlab.events.bus import Delivery
from promptlab.events.models import BaseEvent, ExecutionCompleted, VariantRegistered, encode
from promptlab.learner.projection.reward import RewardRule
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.storage.store import Store
from promptlab.prompts import PromptSpec
from promptlab.sidecar.catalog import Catalog
from promptlab.sidecar.definitions import apply_variant_event


def registered(variant: str, *, source: str = "live", champion: bool = False) -> VariantRegistered:
    return VariantRegistered(
        prompt_id="greet",
        variant=variant,
        version=f"v-{variant}",
        model="simulated/echo",
        template="Hello {{ name }}",
        champion=champion,
        origin="mutation" if variant != "a" else "config",
        parents=["a"] if variant != "a" else [],
        generation=1 if variant != "a" else None,
        source=source,  # type: ignore[arg-type]
    )


def execution(execution_id: str, variant: str, source: str) -> ExecutionCompleted:
    return ExecutionCompleted(
        execution_id=execution_id,
        prompt_id="greet",
        variant=variant,
        model="simulated/echo",
        provider="simulated",
        latency_ms=10.0,
        source=source,  # type: ignore[arg-type]
    )


async def test_offline_candidates_and_trials_are_not_projected(tmp_path: Path) -> None:
    events: list[BaseEvent] = [
        registered("a", champion=True),
        registered("evo-g1-1", source="offline"),
        execution("x1", "a", "offline"),
        execution("x2", "evo-g1-1", "offline"),
        execution("x3", "a", "live"),
        registered("evo-g1-2", source="live"),
    ]
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'l.db'}")
    await store.create()
    try:
        projection = Projection(store, consumer="t", rewards={"greet": RewardRule()})
        await projection.load()
        items = [Delivery(sequence=i + 1, event=e, data=encode(e)) for i, e in enumerate(events)]
        await projection.apply(items)
        variants = {row["variant"]: row["status"] for row in await store.variant_rows("greet")}
        assert variants == {"a": "champion", "evo-g1-2": "challenger"}
        totals = await store.arm_totals("greet")
        assert totals["a"].executions == 1 and "evo-g1-1" not in totals
        assert await store.position("t") == len(events)
    finally:
        await store.close()


def test_a_sidecar_routes_only_live_mutants() -> None:
    prompt = PromptSpec.model_validate(
        {
            "id": "greet",
            "variables": [{"name": "name", "type": "string"}],
            "variants": [{"name": "a", "model": "simulated/echo", "template": "Hello {{ name }}"}],
        }
    )
    catalog = Catalog({"greet": prompt})
    assert not apply_variant_event(catalog, registered("evo-g1-1", source="offline"))
    live = registered("evo-g1-2", source="live").model_copy(update={"template": "Hi {{ name }}"})
    assert apply_variant_event(catalog, live)
    assert [v.name for v in catalog.get("greet").variants] == ["a", "evo-g1-2"]  # type: ignore[union-attr]
