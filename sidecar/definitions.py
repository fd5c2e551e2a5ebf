"""Prompts and variants defined at run time: stored durably, announced, taken by every replica.

Where a sidecar's prompts come from:

* **Prompt files** (``prompts.dir``), read by every process at start. A file owns its
  prompt id: the prompt-level settings (variables, reward, routing, promotion...) come
  from the file, and at every start its variants are announced again, so for the
  variant names a file defines, the file wins at the next start.
* **The admin API** (:mod:`sidecar.admin_prompts`): whole prompts whose id no file
  defines, and variants of any prompt.

How a definition made through the API reaches everyone, and survives restarts:

* A whole prompt is one entry of KV bucket ``promptlab_prompts`` (key: prompt id;
  value: its latest :class:`~events.models.PromptRegistered`, the prompt file's shape
  *with its variants*) and one ``PromptRegistered`` on the stream. The KV entry is what
  a sidecar that starts or restarts later reads, however old the stream is (and
  whatever its limits dropped); the event is the fact in the log, which the learner
  projects in stream order (the prompt's reward rule and promotion overrides), so
  ``promptlab replay`` rebuilds the same tables.
* Each new or changed variant is also a ``VariantRegistered`` (origin ``api``) on the
  stream and in bucket ``promptlab_variants``, exactly as a variant registered through
  the API always was: version history, statistics per version and the TUI's template
  view stay per variant.
* The whole prompt is one entry (variants included) because the two buckets are
  watched separately and their entries arrive in any order: a replica never holds a
  prompt without its variants. A variant that arrives for a prompt not known yet (one
  bred for an API prompt) is held until its prompt arrives.

Writes on one process go through :attr:`Definitions.lock`. The KV entry of a whole
prompt is written first: when NATS cannot store it the request fails (503) and nothing
changed, so an answer of success means every replica and restart will see it. Two
replicas changing the same prompt at the same moment: the later KV write wins (each
write carries every variant its writer knew, and variants are never removed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic import ValidationError

from promptlab.events.bus import BusError, EventBus, KVEntry
from promptlab.events.models import (
    EventDecodeError,
    PromptRegistered,
    VariantRegistered,
    decode,
    encode,
)
from promptlab.events.subjects import Bucket, Subject, variant_key
from promptlab.events.watching import WATCH_RETRY_S, follow
from promptlab.prompts import (
    PromptError,
    PromptSpec,
    SpecError,
    VariantSpec,
    definition_version,
    prompt_event,
    spec_from_event,
)
from promptlab.sidecar.catalog import Catalog
from promptlab.sidecar.errors import SidecarError
from promptlab.sidecar.ports import Publisher

log = logging.getLogger(__name__)

STORE_TIMEOUT_S = 5.0
"""How long a write waits for NATS to store a prompt before answering 503."""
LOAD_TIMEOUT_S = 3.0
"""How long a starting sidecar waits for the stored prompts before it serves anyway
(the watch then brings them in as soon as NATS answers)."""


class Definitions:
    """The run-time definitions of one sidecar process: writes them, takes others'."""

    def __init__(self, catalog: Catalog, publisher: Publisher, bus: EventBus | None) -> None:
        self.catalog = catalog
        self.publisher = publisher
        self.bus = bus
        self.lock = asyncio.Lock()
        """Held by every write, so two requests cannot interleave their changes."""
        self._held: dict[str, dict[str, VariantRegistered]] = {}
        self._revisions: dict[str, int] = {}
        self._shadowed: set[str] = set()

    # ------------------------------------------------------------------ writing

    async def define_prompt(
        self, spec: PromptSpec, *, actor: str, changes: Sequence[str], variants: Iterable[str]
    ) -> tuple[list[str], bool]:
        """Store and announce ``spec`` (a prompt no file defines), then route by it.

        ``variants``: the names whose VariantRegistered to publish (new or changed).
        Returns the published event ids and whether the definition was stored in KV
        (False without a bus). Raises a 503 :class:`SidecarError` when NATS cannot
        store it; nothing changed then.
        """
        event = prompt_event(spec, actor=actor, changes=changes)
        stored = False
        if self.bus is not None:
            try:
                if not self.bus.connected:  # fail fast rather than wait out the timeout
                    raise BusError("not connected")
                revision = await asyncio.wait_for(
                    self.bus.kv_put(str(Bucket.PROMPTS), spec.id, encode(event)), STORE_TIMEOUT_S
                )
            except (BusError, TimeoutError) as exc:
                raise SidecarError(
                    f"prompt {spec.id!r} cannot be stored now (NATS: {exc or 'timed out'}); "
                    "nothing was changed, try again",
                    status=503,
                    code="definitions_unavailable",
                ) from None
            self._revisions[spec.id] = revision
            stored = True
        ids = await self._announce(spec, variants, first=[event])
        self.catalog.put_prompt(spec)
        return ids, stored

    async def define_variants(self, spec: PromptSpec, variants: Iterable[str]) -> list[str]:
        """Announce new or changed variants of a file's prompt and route by ``spec``
        (the file's prompt with them); their KV entries are best effort, as always."""
        ids = await self._announce(spec, variants)
        self.catalog.put_prompt(spec)
        return ids

    async def _announce(
        self, spec: PromptSpec, names: Iterable[str], first: Sequence[PromptRegistered] = ()
    ) -> list[str]:
        """Publish ``first`` and the named variants' events durably (the stream or the
        on-disk outbox, before the caller answers), then keep the variants in KV."""
        wanted = set(names)
        variants = [e for e in spec.registered_events() if e.variant in wanted]
        events: list[PromptRegistered | VariantRegistered] = [*first, *variants]
        try:
            await self.publisher.publish_durable(events, STORE_TIMEOUT_S)
        except BusError as exc:
            # Neither NATS nor the disk took them. A prompt's KV entry is already
            # written: a restart re-publishes it from there (reconcile()).
            raise SidecarError(
                f"prompt {spec.id!r}: the definition events cannot be stored now ({exc}); "
                "try again",
                status=503,
                code="definitions_unavailable",
            ) from None
        if self.bus is not None:
            await store_variants(self.bus, variants)
        return [e.event_id for e in events]

    async def reconcile(self) -> list[str]:
        """Re-publish definitions the KV holds and the stream does not; their ids.

        An admin write stores the KV entry first and then makes its events durable: a
        process killed in between leaves a definition every sidecar serves and the
        learner never saw. Every sidecar runs this at start (in the background): it reads
        the stream's prompt and variant events and publishes each KV entry whose event is
        missing, with its own event id, so JetStream drops the copies several replicas
        send at once. A definition the stream dropped by its age or size limits is sent
        again too (the learner takes a definition it already has as a no-op).
        """
        if self.bus is None:
            return []
        bus = self.bus
        held: set[str] = set()
        async for _, event, _ in bus.read(subjects=(str(Subject.PROMPT), str(Subject.VARIANT))):
            if event is not None:
                held.add(event.event_id)
        missing: list[PromptRegistered | VariantRegistered] = []
        for bucket in (Bucket.PROMPTS, Bucket.VARIANTS):
            for key in await bus.kv_keys(str(bucket)):
                entry = await bus.kv_get(str(bucket), key)
                if entry is None or entry.value is None:
                    continue
                try:
                    event = decode(entry.value)
                except EventDecodeError:
                    continue
                # A prompt file's variants are announced by every process at start.
                if isinstance(event, VariantRegistered) and event.origin == "config":
                    continue
                if isinstance(event, PromptRegistered | VariantRegistered) and (
                    event.event_id not in held
                ):
                    missing.append(event)
        missing.sort(key=lambda e: e.occurred_at)
        if missing:
            await self.publisher.publish_durable(missing, STORE_TIMEOUT_S)
            log.warning(
                "re-published %d definition(s) stored in KV but missing from the stream: %s",
                len(missing),
                ", ".join(sorted({e.prompt_id for e in missing})),
            )
        return [e.event_id for e in missing]

    async def reconcile_quietly(self) -> None:
        """:meth:`reconcile`, retried until it could run once (NATS may be away)."""
        while True:
            try:
                await self.reconcile()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("definitions not reconciled with the stream yet: %s", exc)
            await asyncio.sleep(WATCH_RETRY_S)

    # ------------------------------------------------------------------ taking

    def take_variant(self, event: VariantRegistered) -> bool:
        """A variant registered elsewhere; held when its prompt is not known yet."""
        if event.origin == "config" or event.source == "offline":
            return False
        if self.catalog.get(event.prompt_id) is None:
            self._held.setdefault(event.prompt_id, {})[event.variant] = event
            return False
        return apply_variant_event(self.catalog, event)

    def take_prompt(self, event: PromptRegistered, revision: int = 0) -> bool:
        """A whole prompt defined elsewhere (or before a restart); True when it changed
        what this sidecar routes. A prompt file of the same id wins: the event is ignored."""
        prompt_id = event.prompt_id
        if self.catalog.from_file(prompt_id):
            if prompt_id not in self._shadowed:
                self._shadowed.add(prompt_id)
                log.warning(
                    "prompt %s is defined both by a prompt file and through the admin API; "
                    "the file wins",
                    prompt_id,
                )
            return False
        if revision and revision <= self._revisions.get(prompt_id, 0):
            return False  # this process wrote it, or already took a newer one
        if revision:
            self._revisions[prompt_id] = revision
        try:
            spec = spec_from_event(event)
        except (ValidationError, PromptError) as exc:
            log.warning("cannot take prompt %s: %s", prompt_id, exc)
            return False
        current = self.catalog.get(prompt_id)
        extra = [v for v in current.variants] if current is not None else []
        extra += [VariantSpec.from_event(e) for e in self._held.pop(prompt_id, {}).values()]
        spec = _with_extra(spec, extra)
        if current is not None and definition_version(current) == definition_version(spec):
            return False
        self.catalog.put_prompt(spec)
        return True

    async def load(self, announced: Sequence[VariantRegistered]) -> None:
        """At start: store the files' variants, then take the prompts stored in KV,
        before the sidecar serves (bounded by :data:`LOAD_TIMEOUT_S`)."""
        if self.bus is None:
            return
        try:
            await asyncio.wait_for(self._load(self.bus, announced), LOAD_TIMEOUT_S)
        except Exception as exc:  # NATS slow or down: the watch brings them in later
            # While NATS is down its owner says so once (events.outage).
            (log.warning if self.bus.connected else log.debug)(
                "prompts defined through the admin API not loaded yet: %s", exc
            )

    async def _load(self, bus: EventBus, announced: Sequence[VariantRegistered]) -> None:
        # The files' variants first: the variants watch then never sees an API version
        # of a file's variant that the file replaces at this start.
        await store_variants(bus, announced)
        for key in await bus.kv_keys(str(Bucket.PROMPTS)):
            entry = await bus.kv_get(str(Bucket.PROMPTS), key)
            if entry is not None and entry.value is not None:
                await self._take_entry(entry.key, entry.value, entry.revision)

    async def _take_entry(self, key: str, value: bytes, revision: int) -> None:
        try:
            event = decode(value)
        except EventDecodeError as exc:
            log.warning("ignoring prompt entry %s: %s", key, exc)
            return
        if isinstance(event, PromptRegistered):
            await asyncio.to_thread(_checked, spec_from_event, event)
            self.take_prompt(event, revision)

    async def watch_prompts(self) -> None:
        """Take whole prompts defined on other replicas, past and future."""
        assert self.bus is not None

        async def apply(entry: KVEntry) -> None:
            await self._take_entry(entry.key, entry.value or b"", entry.revision)

        await follow(self.bus, str(Bucket.PROMPTS), apply, what="prompt watch", logger=log)

    async def watch_variants(self) -> None:
        """Take variants registered at run time, past and future, from the variants bucket.

        The watch yields every stored variant first, so a sidecar started after a variant
        was registered (on another replica, or before a restart) routes to it too.
        """
        assert self.bus is not None

        async def apply(entry: KVEntry) -> None:
            try:
                event = decode(entry.value or b"")
            except EventDecodeError as exc:
                log.warning("ignoring variant entry %s: %s", entry.key, exc)
                return
            if isinstance(event, VariantRegistered):
                await asyncio.to_thread(_checked, VariantSpec.from_event, event)
                self.take_variant(event)

        await follow(self.bus, str(Bucket.VARIANTS), apply, what="variant watch", logger=log)


def _checked(check: Callable[[Any], object], event: Any) -> None:
    """Validate ``event``'s definition once, off the event loop, for its side effect: the
    templates' checks are cached, so taking it on the loop next costs no rendering (a
    definition arriving on the bus is checked within the render bounds like any other,
    and a bomb costs up to ``time_s`` of CPU per template). Problems are reported when it
    is taken."""
    try:
        check(event)
    except (ValidationError, PromptError):
        pass


def _with_extra(spec: PromptSpec, variants: Iterable[VariantSpec]) -> PromptSpec:
    """``spec`` plus the variants it does not name (known here only: a bred variant, a
    registration that crossed this definition); one the prompt cannot take is left out."""
    for variant in variants:
        if variant.name in {v.name for v in spec.variants}:
            continue
        try:
            spec = spec.with_variant(variant)
        except (ValidationError, SpecError) as exc:
            log.warning("prompt %s cannot keep variant %s: %s", spec.id, variant.name, exc)
    return spec


def apply_variant_event(catalog: Catalog, event: VariantRegistered) -> bool:
    """Add a variant registered elsewhere (API of another replica, mutation).

    Prompt-file variants (``origin = "config"``) are left alone: each replica has the file.
    """
    if event.origin == "config" or event.source == "offline":
        return False
    prompt = catalog.get(event.prompt_id)
    if prompt is None:
        return False
    known = next((v for v in prompt.variants if v.name == event.variant), None)
    if known is not None and known.version == event.version:
        return False
    try:
        variant = VariantSpec.from_event(event)
        catalog.add_variant(event.prompt_id, variant)
    except (ValidationError, SpecError) as exc:
        log.warning("cannot take variant %s/%s: %s", event.prompt_id, event.variant, exc)
        return False
    return True


async def store_variants(bus: EventBus, events: Sequence[VariantRegistered]) -> None:
    """Keep variants in the variants bucket, where sidecars that start later and
    operators' tools (the TUI's template view) find them however old the stream is.
    Best effort: the events reach the stream through the publisher either way."""
    for event in events:
        try:
            await bus.kv_put(
                str(Bucket.VARIANTS), variant_key(event.prompt_id, event.variant), encode(event)
            )
        except Exception as exc:  # NATS down: the events still reach the stream
            log.info("variants not stored in KV yet (%s)", exc)
            return
