"""The JetStream KV buckets behind :meth:`JetStreamBus.kv_put` and friends.

Buckets (``promptlab_routing``, ``promptlab_stats``, ...) hold one value per key
(``history=1``), file-backed, with the TTL :data:`events.subjects.BUCKET_TTL_S` gives.
Deleted and purged keys read as absent; watchers see them as ``value=None``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from promptlab.events.bus import KVEntry
from promptlab.events.jetstream_errors import translate
from promptlab.events.subjects import BUCKET_TTL_S


class JetStreamBucket:
    """One KV bucket, its nats-py errors translated (see :mod:`events.jetstream_errors`)."""

    def __init__(self, name: str, kv: KeyValue) -> None:
        self.name = name
        self._kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, name: str, replicas: int) -> JetStreamBucket:
        """Bind to bucket ``name``, creating it when absent (raises nats-py errors:
        the caller translates them together with the stream's)."""
        try:
            kv = await js.key_value(name)
        except nats.js.errors.BucketNotFoundError:
            kv = await js.create_key_value(
                KeyValueConfig(
                    bucket=name,
                    history=1,
                    ttl=BUCKET_TTL_S.get(name),
                    storage=StorageType.FILE,
                    replicas=replicas,
                )
            )
        return cls(name, kv)

    async def put(self, key: str, value: bytes) -> int:
        """Store ``value`` under ``key``; returns the new revision."""
        with translate(f"kv put {self.name}"):
            return int(await self._kv.put(key, value))

    async def delete(self, key: str) -> None:
        """Delete a key (watchers see an entry with ``value=None``)."""
        with translate(f"kv delete {self.name}"):
            await self._kv.delete(key)

    async def get(self, key: str) -> KVEntry | None:
        """The current entry, or None when absent or deleted."""
        with translate(f"kv get {self.name}"):
            try:
                entry = await self._kv.get(key)
            except nats.js.errors.KeyNotFoundError:  # includes KeyDeletedError
                return None
        if entry.operation in (KV_DEL, KV_PURGE) or entry.value is None:
            return None
        return KVEntry(key=entry.key, value=entry.value, revision=int(entry.revision or 0))

    async def keys(self) -> list[str]:
        """Keys that currently hold a value, sorted."""
        with translate(f"kv keys {self.name}"):
            try:
                return sorted(await self._kv.keys())
            except nats.js.errors.NoKeysError:
                return []

    async def watch(self) -> AsyncGenerator[KVEntry, None]:
        """Current values first, then every put and delete (``value=None``) as it happens."""
        with translate(f"kv watch {self.name}"):
            watcher = await self._kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:  # "initial values done" marker, also sent for an empty bucket
                    continue
                deleted = entry.operation in (KV_DEL, KV_PURGE)
                yield KVEntry(
                    key=entry.key,
                    value=None if deleted else (entry.value or b""),
                    revision=int(entry.revision or 0),
                )
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py leaves it untyped
