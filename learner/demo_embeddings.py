"""Embeddings of demonstration pools, for variants that retrieve by embeddings.

:class:`PoolEmbedder` embeds the text BM25 indexes (:meth:`~prompts.demos.Demo.text`)
of a pool's demonstrations through the provider an ``embedding_model`` names
(``Providers.embed``: the providers' timeouts, limits and error tree), in batches of
:data:`BATCH`, one request at a time so a rebuild never floods the provider. It keeps
what it embedded, keyed by model and a hash of the text, within :data:`CACHE_BYTES`
(least recently used first out), so a pool that grows by a few answers costs a few
embeddings, not a new pass over all of them.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from promptlab.learner.errors import LearnerError
from promptlab.prompts.demo_vectors import (
    MAX_TEXT_CHARS,
    MAX_VECTOR_BYTES,
    rows_that_fit,
    unit_rows,
)

BATCH = 64
"""Texts per ``/embeddings`` request."""
CACHE_BYTES = 64 * 1024 * 1024
"""Most bytes of embeddings kept between rebuilds (float16: 32,768 rows of 1,024)."""


class EmbeddingClient(Protocol):
    """What embedding needs of ``providers.Providers``."""

    async def embed(
        self, model: str, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> list[list[float]]: ...


class EmbeddingMismatch(LearnerError, ValueError):
    """The provider's embeddings changed length between requests of one model."""


class PoolEmbedder:
    """Embeds pools' texts through ``client``, remembering what it already embedded."""

    def __init__(
        self,
        client: EmbeddingClient,
        *,
        batch: int = BATCH,
        cache_bytes: int = CACHE_BYTES,
        timeout_s: float | None = None,
    ) -> None:
        self.client = client
        self.batch = batch
        self.cache_bytes = max(cache_bytes, MAX_VECTOR_BYTES)
        """At least one pool's rows, so a pool's own rows never push each other out."""
        self.timeout_s = timeout_s
        """Per request (None: the provider's ``timeout_s``)."""
        self._cache: OrderedDict[tuple[str, bytes], np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        self.embedded = 0
        """Texts sent to a provider so far (what the cache did not hold)."""

    async def rows(self, model: str, texts: Sequence[str]) -> np.ndarray:
        """Unit float16 rows of the first ``texts`` (as many as
        :func:`~prompts.demo_vectors.rows_that_fit` allows), in order.

        Raises what the provider raises (``ProviderError``), or :class:`EmbeddingMismatch`.
        """
        keys = [(model, hashlib.sha256(t.encode()).digest()) for t in texts]
        missing = []
        dim = 0
        for i, key in enumerate(keys):
            if key in self._cache:
                self._cache.move_to_end(key)  # this pool's rows are the last to go
                dim = int(self._cache[key].shape[0])
            else:
                missing.append(i)
        for start in range(0, len(missing), self.batch):
            if dim and missing[start] >= rows_that_fit(dim, len(texts)):
                break
            part = missing[start : start + self.batch]
            answer = await self.client.embed(
                model, [texts[i][:MAX_TEXT_CHARS] for i in part], timeout_s=self.timeout_s
            )
            rows = unit_rows(answer).astype(np.float16)
            if dim and rows.shape[1] != dim:
                raise EmbeddingMismatch(
                    f"{model} returned {rows.shape[1]} numbers per embedding, earlier {dim}"
                )
            dim = rows.shape[1]
            self.embedded += len(part)
            for i, row in zip(part, rows, strict=True):
                self._remember(keys[i], row)
        count = rows_that_fit(dim, len(texts)) if dim else 0
        matrix = np.empty((count, dim), dtype=np.float16)
        for i in range(count):
            matrix[i] = self._cache[keys[i]]
        return matrix

    def _remember(self, key: tuple[str, bytes], row: np.ndarray) -> None:
        self._cache[key] = row
        self._cached_bytes += row.nbytes
        while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= old.nbytes
