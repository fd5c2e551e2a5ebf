"""Embeddings of demonstrations: unit rows, their compact wire form, and their chunks.

The learner embeds a pool's demonstrations (the text BM25 indexes, :meth:`Demo.text`)
and publishes them as float16 rows of unit length (half the bytes of float32; cosine
similarities move by about 1e-3, far below the gaps retrieval ranks by), split into
KV values of at most :data:`~events.snapshots.VECTOR_CHUNK_BYTES`. A sidecar joins
the chunks, checks them against the pool's :class:`~events.snapshots.PoolVectors`, and
keeps float32 rows, so a call's cosine similarities are one matrix-vector product.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from promptlab.events.snapshots import VECTOR_CHUNK_BYTES, PoolVectors
from promptlab.prompts.errors import PromptError

MAX_VECTOR_BYTES = 8 * 1024 * 1024
"""Most bytes of embeddings one pool publishes per model (float16: 10,922 rows of 384
numbers, 2,730 of 1,536); past it only the newest demonstrations have embeddings. A
call reads every row a sidecar holds (float32, twice this: 16 MB, which a server's
last-level cache holds), so this bounds its cost to about a millisecond."""
MAX_TEXT_CHARS = 8_000
"""Longest text sent to be embedded, a demonstration's or a call's (about 2,000 tokens;
longer text is cut)."""
_WIRE = np.dtype("<f2")


class VectorsUnusable(PromptError, ValueError):
    """Chunks that do not make the rows their :class:`PoolVectors` describe."""


def unit_rows(rows: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """``rows`` as float32, each scaled to unit length (a zero row stays zero)."""
    matrix = np.asarray(rows, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: np.ndarray = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return unit


def rows_that_fit(dim: int, count: int) -> int:
    """How many of ``count`` rows of ``dim`` numbers fit in :data:`MAX_VECTOR_BYTES`."""
    return min(count, MAX_VECTOR_BYTES // (dim * _WIRE.itemsize))


def to_chunks(matrix: np.ndarray) -> tuple[list[bytes], str]:
    """The wire form of unit rows: float16 chunks of at most ``VECTOR_CHUNK_BYTES``, and
    the sha256 of their concatenation."""
    data = np.ascontiguousarray(matrix, dtype=_WIRE).tobytes()
    chunks = [data[i : i + VECTOR_CHUNK_BYTES] for i in range(0, len(data), VECTOR_CHUNK_BYTES)]
    return chunks, hashlib.sha256(data).hexdigest()


def from_chunks(chunks: Sequence[bytes], meta: PoolVectors) -> np.ndarray:
    """The float32 rows ``chunks`` hold (:class:`VectorsUnusable` when they are not the
    ones ``meta`` describes: missing, of another version, or cut)."""
    data = b"".join(chunks)
    if len(data) != meta.nbytes or hashlib.sha256(data).hexdigest() != meta.sha256:
        raise VectorsUnusable(
            f"embeddings by {meta.model}: {len(data)} bytes that are not the "
            f"{meta.count} x {meta.dim} rows the pool names (missing or damaged chunks)"
        )
    return np.frombuffer(data, dtype=_WIRE).reshape(meta.count, meta.dim).astype(np.float32)
