"""The learner's demonstration pools and challenger, as pure functions."""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import Any, cast

from promptlab.events.jetstream import JetStreamBus
from promptlab.events.snapshots import DemoPoolSnapshot
from promptlab.learner.demo_pools import demos_challenger, needs_pool, pool_snapshot
from promptlab.learner.examples import Example
from promptlab.learner.storage.store import Store
from promptlab.prompts import PromptSpec


def spec(**learning: object) -> PromptSpec:
    return PromptSpec.model_validate(
        {
            "id": "p",
            "variables": [{"name": "text", "type": "string"}],
            "learning": {"capture": True, **learning},
            "variants": [
                {"name": "base", "model": "fake/m", "template": "{{ text }}", "champion": True},
                {"name": "near", "model": "fake/m", "template": "T {{ text }}",
                 "demos": {"pool": "production", "min_reward": 0.8}},
            ],
        }
    )  # fmt: skip


def example(i: int, answer: str, reward: float | None = 1.0) -> Example:
    return Example(
        id=f"e{i}", prompt_id="p", variant="base", version=None, variables={"text": f"t{i}"},
        answer=answer, reward=reward, source="call", created_ms=i, subject_hash=None,
    )  # fmt: skip


def test_a_pool_is_needed_at_the_lowest_min_reward_asked_for() -> None:
    assert needs_pool(spec()) == 0.8
    assert needs_pool(spec(demos={"min_reward": 0.5})) == 0.5
    plain = PromptSpec.model_validate(
        {"id": "q", "variants": [{"name": "a", "model": "fake/m", "template": "x"}]}
    )
    assert needs_pool(plain) is None


def test_the_challenger_is_the_champion_with_production_demos_and_a_new_version() -> None:
    prompt = spec(demos={"k": 3, "min_pool": 5})
    challenger = demos_challenger(prompt, prompt.champion)
    assert challenger is not None
    assert challenger.name == "base+demos" and challenger.template == prompt.champion.template
    assert (challenger.origin, challenger.parent, challenger.strategy) == ("demos", "base", "demos")
    assert challenger.demos is not None and challenger.demos.k == 3
    assert challenger.demos.pool == "production" and challenger.version != prompt.champion.version
    assert prompt.with_variant(challenger).variant("base+demos").version == challenger.version
    assert demos_challenger(spec(), spec().champion) is None


def test_a_pool_keeps_the_newest_that_fit_in_a_kv_value() -> None:
    rng = random.Random(1)
    noise = ["".join(rng.choices(string.ascii_letters, k=1500)) for _ in range(1500)]
    snapshot = pool_snapshot("p", [example(i, noise[i]) for i in range(1500)], version=9)
    assert len(snapshot.encode()) <= DemoPoolSnapshot.MAX_ENCODED_BYTES
    assert 0 < len(snapshot.demos) < 1500 and snapshot.demos[0].id == "e0"  # newest first kept
    decoded = DemoPoolSnapshot.decode(snapshot.encode())
    assert decoded == snapshot and decoded.version == 9
    unrated = pool_snapshot("p", [example(1, "x", None), example(2, "")], version=1)
    assert [(d.id, d.reward) for d in unrated.demos] == [("e1", 0.0)]  # not good, no text


async def test_a_dataset_pool_is_published_once_under_its_name(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from promptlab.events.memory import MemoryBus
    from promptlab.events.subjects import Bucket
    from promptlab.lab.datasets import DatasetInfo, write_dataset
    from promptlab.learner.demo_pools import DemoPoolWriter

    cases = [
        {"id": "a", "inputs": {"text": "fine"}, "expected": "positive"},
        {"id": "b", "inputs": {"text": "judge only"}, "expected": None},
        {"id": "c", "inputs": {"text": "bad"}, "expected": "negative"},
    ]
    info = DatasetInfo(name="labelled", prompt_id="p", created_at=datetime.now(UTC), cases=3)
    write_dataset(tmp_path, info, cases)
    prompt = PromptSpec.model_validate(
        {
            "id": "p",
            "variables": [{"name": "text", "type": "string"}],
            "variants": [
                {"name": "d", "model": "fake/m", "template": "{{ text }}",
                 "demos": {"pool": "labelled", "k": 2}},
            ],
        }
    )  # fmt: skip
    bus = MemoryBus()
    await bus.start()
    puts: list[int] = []

    async def no_view(prompt_id: str) -> None:
        return None

    writer = DemoPoolWriter(
        bus, cast(Store, None), prompts=lambda: [prompt], view=no_view, datasets_dir=tmp_path
    )
    for sequence in (3, 4):
        await writer.refresh(sequence)
        entry = await bus.kv_get(str(Bucket.DEMOS), "p.labelled")
        assert entry is not None and entry.value is not None
        puts.append(entry.revision)
    snapshot = DemoPoolSnapshot.decode(entry.value)
    assert snapshot.pool == "labelled" and snapshot.version == 3  # the second refresh wrote nothing
    assert [(d.id, d.answer) for d in snapshot.demos] == [
        ("labelled:a", "positive"), ("labelled:c", "negative"),
    ]  # fmt: skip
    assert puts[0] == puts[1]
    await bus.close()


async def test_a_pool_is_built_from_the_store_and_published_with_its_challenger(
    store: Store,
) -> None:
    """The writer's whole path on each backend (SQLite and PostgreSQL): examples projected
    into the store, read back good ones first by time, written to the demos bucket, and
    ``<champion>+demos`` registered once the pool holds ``min_pool`` good answers."""
    from learner_factories import correction, deliveries, execution, feedback, registered

    from promptlab.events.memory import MemoryBus
    from promptlab.events.models import CapturedContent, VariantRegistered, decode
    from promptlab.events.subjects import Bucket, demo_pool_key, variant_key
    from promptlab.learner.demo_pools import DemoPoolWriter
    from promptlab.learner.projection.reward import RewardRule
    from promptlab.learner.projection.transaction import Projection
    from promptlab.learner.storage.view import load_view
    from promptlab.prompts.config import PromotionConfig

    prompt = PromptSpec.model_validate(
        {
            "id": "greet",
            "variables": [{"name": "name", "type": "string"}],
            "reward": {"feedback": "thumbs_up"},
            "learning": {"capture": True, "demos": {"k": 2, "min_pool": 3}},
            "variants": [{"name": "a", "model": "simulated/echo", "template": "Hello {{ name }}"}],
        }
    )

    def captured(execution_id: str, name: str, answer: str, seconds: float) -> Any:
        content = CapturedContent(
            messages=[{"role": "user", "content": f"Hello {name}"}],
            output=answer,
            variables={"name": name},
        )
        return execution(execution_id, content=content, seconds=seconds)

    events = [
        registered(variant="a", champion=True),
        captured("x1", "Ada", "Hi Ada", seconds=10),
        feedback("x1", True, seconds=11),
        captured("x2", "Bob", "Hi Rob", seconds=20),
        feedback("x2", False, seconds=21),
        captured("x3", "Cy", "Hello Cy", seconds=30),
        feedback("x3", True, seconds=31),
    ]
    projection = Projection(
        store, consumer="learner", rewards={"greet": RewardRule(feedback="thumbs_up")}
    )
    await projection.load()
    await projection.apply(deliveries(events))
    bus = MemoryBus()
    await bus.start()

    async def view(prompt_id: str) -> Any:
        return await load_view(store, prompt_id, PromotionConfig())

    writer = DemoPoolWriter(bus, store, prompts=lambda: [prompt], view=view)
    await writer.refresh(len(events))
    entry = await bus.kv_get(str(Bucket.DEMOS), demo_pool_key("greet", "production"))
    assert entry is not None and entry.value is not None
    pool = DemoPoolSnapshot.decode(entry.value)
    assert [(d.id, d.answer, d.reward) for d in pool.demos] == [
        ("x3", "Hello Cy", 1.0), ("x1", "Hi Ada", 1.0),
    ]  # fmt: skip
    assert pool.version == len(events) and not writer.registered  # 2 good of min_pool 3

    # A reviewer's correction makes the wrong answer a good one: the pool holds three.
    more = [correction("x2", "Hi Bob", seconds=40)]
    await projection.apply(deliveries(more, start=len(events) + 1))
    await writer.refresh(len(events) + 1)
    entry = await bus.kv_get(str(Bucket.DEMOS), demo_pool_key("greet", "production"))
    assert entry is not None and entry.value is not None
    pool = DemoPoolSnapshot.decode(entry.value)
    assert {(d.id, d.answer) for d in pool.demos} == {
        ("x1", "Hi Ada"), ("x2", "Hi Bob"), ("x3", "Hello Cy"),
    }  # fmt: skip
    assert [e.variant for e in writer.registered] == ["a+demos"]
    stored = await bus.kv_get(str(Bucket.VARIANTS), variant_key("greet", "a+demos"))
    assert stored is not None and stored.value is not None
    event = decode(stored.value)
    assert isinstance(event, VariantRegistered) and event.origin == "demos"
    assert event.demos is not None and event.demos["pool"] == "production"
    await writer.refresh(len(events) + 1)  # registered once, not again
    assert len(writer.registered) == 1
    await bus.close()


async def test_embedded_pools_keep_two_sets_of_rows_and_a_restart_clears_the_rest(
    tmp_path: Path, jetstream_bus: JetStreamBus
) -> None:
    from datetime import UTC, datetime

    from fake_upstream import FakeUpstream

    from promptlab.events.subjects import Bucket
    from promptlab.lab.datasets import DatasetInfo, write_dataset
    from promptlab.learner.demo_embeddings import PoolEmbedder
    from promptlab.learner.demo_pools import DemoPoolWriter
    from promptlab.providers import Providers, ProviderSettings

    prompt = PromptSpec.model_validate(
        {
            "id": "p",
            "variables": [{"name": "text", "type": "string"}],
            "variants": [
                {"name": "d", "model": "fake/m", "template": "{{ text }}",
                 "demos": {"pool": "labelled", "k": 2, "embedding_model": "fake/e"}},
            ],
        }
    )  # fmt: skip
    upstream = FakeUpstream()
    await upstream.start()

    async def no_view(prompt_id: str) -> None:
        return None

    def writer(client: Providers) -> DemoPoolWriter:
        return DemoPoolWriter(
            jetstream_bus, cast(Store, None), prompts=lambda: [prompt], view=no_view,
            datasets_dir=tmp_path, embedder=PoolEmbedder(client),
        )  # fmt: skip

    async def grow(to: int, pools: DemoPoolWriter) -> DemoPoolSnapshot:
        cases = [
            {"id": str(i), "inputs": {"text": f"case {i}"}, "expected": "x"} for i in range(to)
        ]
        info = DatasetInfo(name="labelled", prompt_id="p", created_at=datetime.now(UTC), cases=to)
        write_dataset(tmp_path, info, cases, replace=True)
        await pools.refresh(to)
        entry = await jetstream_bus.kv_get(str(Bucket.DEMOS), "p.labelled")
        assert entry is not None and entry.value is not None
        return DemoPoolSnapshot.decode(entry.value)

    async def sets_of_rows() -> set[str]:
        return {k.split(".")[3] for k in await jetstream_bus.kv_keys(str(Bucket.DEMO_VECTORS))}

    try:
        async with Providers(
            {"fake": ProviderSettings(kind="openai", api_base=upstream.base_url)}
        ) as c:
            first = writer(c)
            shas = [(await grow(n, first)).vectors[0].sha256[:16] for n in (2, 3, 4)]
            assert len(set(shas)) == 3 and await sets_of_rows() == set(shas[1:])
            assert upstream.embedded == 4  # each case embedded once
            # A restarted learner knows nothing of the bucket: it keeps only what the
            # published pool names, and its own new rows.
            again = writer(c)
            latest = (await grow(5, again)).vectors[0].sha256[:16]
            assert await sets_of_rows() == {shas[2], latest}
    finally:
        await upstream.stop()
