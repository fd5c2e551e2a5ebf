"""A call's query embedding, for variants that retrieve demonstrations by embeddings.

:class:`QueryEmbedder` embeds the text of a call's variables (the text BM25 would
query with) through the variant's ``embedding_model`` (``Providers.embed``), waiting
at most ``server.demo_embedding_timeout_s``, and keeps the last :data:`CACHE_SIZE`
embeddings (least recently used first out): a repeated query costs a dict lookup.

It never raises for a failure. Whatever goes wrong (a timeout, a provider error, a pool
published without embeddings, rows of another length) the call retrieves by BM25, and
:meth:`QueryEmbedder.fallback` counts the cause (``promptlab_demo_fallbacks_total``)
and logs it once per model and cause (at most :data:`WARNED_MAX` lines in all).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from promptlab.prompts.demo_vectors import MAX_TEXT_CHARS, unit_rows
from promptlab.providers import ProviderError

log = logging.getLogger(__name__)

CACHE_SIZE = 4096
"""Query embeddings kept (at 1,536 float32 numbers each, 25 MB when full)."""
WARNED_MAX = 256
"""Most distinct (model, cause) pairs logged; later ones are only counted."""
NO_VECTORS = "pool_without_vectors"
"""The cause counted when a pool has no embeddings by the variant's model (yet)."""


class EmbeddingClient(Protocol):
    """What query embedding needs of ``providers.Providers``."""

    async def embed(
        self, model: str, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> list[list[float]]: ...


class QueryEmbedder:
    """Embeds calls' query texts; counts and reports why a call retrieved by BM25."""

    def __init__(
        self,
        client: EmbeddingClient,
        *,
        timeout_s: float,
        cache_size: int = CACHE_SIZE,
        counted: Callable[[str], None] | None = None,
        redact: Callable[[str], str] = str,
    ) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self.cache_size = cache_size
        self._counted = counted
        self._redact = redact
        self._cache: OrderedDict[tuple[str, bytes], np.ndarray] = OrderedDict()
        self._warned: set[tuple[str, str]] = set()
        self.fallbacks: dict[str, int] = {}
        """Calls that retrieved by BM25 instead, by cause."""

    async def embed(self, model: str, text: str) -> np.ndarray | None:
        """The unit embedding of ``text`` by ``model``, or None (the cause is counted)."""
        text = text[:MAX_TEXT_CHARS]  # as the pool's texts were cut
        key = (model, hashlib.blake2b(text.encode(), digest_size=16).digest())
        row = self._cache.get(key)
        if row is not None:
            self._cache.move_to_end(key)
            return row
        try:
            answer = await self.client.embed(model, [text], timeout_s=self.timeout_s)
        except ProviderError as err:
            self.fallback(model, err.kind, err.message)
            return None
        except Exception as exc:  # whatever else: the call goes on by BM25
            self.fallback(model, "unexpected", f"{type(exc).__name__}: {exc}")
            return None
        row = unit_rows(answer)[0]
        self._cache[key] = row
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return row

    def fallback(self, model: str, cause: str, detail: str = "") -> None:
        """Count one call that retrieved by BM25 because of ``cause``; log it once."""
        self.fallbacks[cause] = self.fallbacks.get(cause, 0) + 1
        if self._counted is not None:
            self._counted(cause)
        key = (model, cause)
        if key in self._warned or len(self._warned) >= WARNED_MAX:
            return
        self._warned.add(key)
        log.warning(
            "demonstrations by embeddings of %s unavailable (%s%s); such calls retrieve "
            "by BM25 meanwhile (logged once per cause, counted in "
            "promptlab_demo_fallbacks_total)",
            model, cause, f": {self._redact(detail)[:300]}" if detail else "",
        )  # fmt: skip
