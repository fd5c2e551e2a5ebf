"""A pool of demonstrations and how a call's demonstrations are chosen from it.

:class:`DemoPool` is immutable: the learner (or the prompt file) defines its content,
and every sidecar replica that builds a pool from the same demonstrations in the same
order chooses the same demonstrations for the same call. Retrieval for
``select = "similar"`` is BM25 (the ``bm25s`` library, Lucene's formula, k1 = 1.5,
b = 0.75) over the text of the demonstrations' variables, tokenised as lower-case
words of two characters or more; the query is the call's variables, tokenised alike.

With a variant's ``embedding_model``, ``similar`` ranks by the cosine similarity of
embeddings instead (:meth:`DemoPool.nearest`; the pool's rows come from the learner,
the call's from the sidecar), then selects by the same rule.

Selection keeps the answers diverse (:func:`diverse_top`): when the pool's answers take
``d`` distinct values (labels, categories), one value fills at most ``ceil(k / min(d,
k))`` places, so with two labels and ``k = 4`` a set is two and two, and no set is all
one value unless the pool is (or ``k = 1``). Values are compared as labels, not as
exact text (:func:`answer_value`): "Positive", "positive." and " POSITIVE " are one
value. Nearer demonstrations come last, next to the call's own input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from promptlab.prompts.demos import Demo, DemosSpec

if TYPE_CHECKING:  # bm25s is imported when the first index is built
    import bm25s

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_SPACES = re.compile(r"\s+")
_LEADING = re.compile(r"^[\W_]*?(?=[+-]\d|[^\W_]|$)")
"""Punctuation and symbols before an answer's first word (a number keeps its sign)."""
_TRAILING = re.compile(r"[\W_]+$")
_CANDIDATES_PER_DEMO = 8
"""How many nearest candidates per demonstration wanted are ranked for diversity."""


def tokens(text: str) -> list[str]:
    """Lower-case words of two characters or more: what BM25 indexes and queries."""
    return _TOKEN.findall(text.lower())


def answer_value(answer: str) -> str:
    """The value an answer stands for when selection keeps answers diverse: case-folded,
    inner whitespace collapsed, whitespace and punctuation at either end trimmed, so that
    "Positive", "positive." and " POSITIVE " are one label. An answer that is nothing but
    punctuation or symbols keeps them (two different emoji stay two values), and a
    number keeps its sign ("-1" and "1" are two labels)."""
    text = _SPACES.sub(" ", answer.casefold()).strip()
    return _TRAILING.sub("", _LEADING.sub("", text, count=1)) or text


def query_text(values: Mapping[str, Any]) -> str:
    """The text of a call's variables, as :meth:`Demo.text` makes it for a demonstration."""
    return Demo.build(values, "", id="query").text()


class DemoPool:
    """Demonstrations with their retrieval index, built once, read by every call."""

    def __init__(
        self,
        demos: Iterable[Demo],
        *,
        version: str = "",
        vectors: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.demos: tuple[Demo, ...] = tuple(demos)
        self.version = version
        """Which content this is (the learner's pool version; "" for a local pool)."""
        self.vectors: dict[str, np.ndarray] = dict(vectors or {})
        """Embeddings by model (:mod:`prompts.demo_vectors`): unit float32 rows of the
        first demonstrations (the newest), one row each; the others have none."""
        keys: dict[str, int] = {}
        self._codes = np.fromiter(
            (keys.setdefault(answer_value(d.answer), len(keys)) for d in self.demos),
            dtype=np.int64,
            count=len(self.demos),
        )
        self.distinct_answers = len(keys)
        self._rewards = np.fromiter((d.reward for d in self.demos), float, len(self.demos))
        self._index: bm25s.BM25 | None = None
        self._eligible: dict[float, DemoPool] = {}
        self._top: dict[int, tuple[Demo, ...]] = {}

    def __len__(self) -> int:
        return len(self.demos)

    @property
    def codes(self) -> np.ndarray:
        """Each demonstration's answer as a number: answers of one value
        (:func:`answer_value`) have equal numbers, so selection can keep them diverse."""
        return self._codes

    def eligible(self, min_reward: float) -> DemoPool:
        """The demonstrations whose reward is at least ``min_reward`` (cached per value)."""
        pool = self._eligible.get(min_reward)
        if pool is None:
            kept = self._rewards >= min_reward
            if bool(np.all(kept)):
                pool = self
            else:
                # Filtering keeps the order, so the rows still belong to a first part.
                vectors = {m: rows[kept[: len(rows)]] for m, rows in self.vectors.items()}
                pool = DemoPool(
                    (d for d in self.demos if d.reward >= min_reward),
                    version=self.version,
                    vectors=vectors,
                )
            self._eligible[min_reward] = pool
        return pool

    def build_index(self) -> None:
        """Build the BM25 index now (else the first ``similar`` call builds it)."""
        if self._index is None and self.demos:
            import bm25s  # a few hundred ms of imports: only pools that retrieve pay them

            index = bm25s.BM25()
            index.index([tokens(d.text()) for d in self.demos], show_progress=False)
            self._index = index

    def scores(self, text: str) -> np.ndarray:
        """BM25 score of every demonstration for a query ``text`` (zeros: no shared word)."""
        self.build_index()
        if self._index is None:
            return np.zeros(0)
        ids = self._index.get_tokens_ids(tokens(text))
        if not ids:
            return np.zeros(len(self.demos), dtype=np.float32)
        scores: np.ndarray = self._index.get_scores(ids)
        return scores

    def select(self, spec: DemosSpec, values: Mapping[str, Any]) -> list[Demo]:
        """The demonstrations one call with validated ``values`` gets under ``spec``."""
        pool = self.eligible(spec.min_reward)
        if not pool.demos:
            return []
        if spec.select == "fixed":
            return list(pool.demos[: spec.k])
        if spec.select == "top":
            return list(pool._top_k(spec.k))
        return pool._similar(query_text(values), spec.k)

    def nearest(self, spec: DemosSpec, query: np.ndarray) -> list[Demo]:
        """The demonstrations of one call under ``spec`` by the cosine similarity of the
        call's embedding ``query`` (a unit row of ``spec.embedding_model``) to the pool's,
        kept diverse as BM25's are. A demonstration without an embedding ranks last.

        ``ValueError`` when the pool has no embeddings of that model or of that length:
        the caller retrieves by BM25 instead.
        """
        pool = self.eligible(spec.min_reward)
        rows = pool.vectors.get(spec.embedding_model or "")
        if rows is None:
            raise ValueError(f"the pool has no embeddings by {spec.embedding_model}")
        if not pool.demos:
            return []
        if rows.shape[1] != query.shape[-1]:
            raise ValueError(
                f"the query's embedding has {query.shape[-1]} numbers, the pool's {rows.shape[1]}"
            )
        scores = np.full(len(pool.demos), -2.0, dtype=np.float32)  # below any cosine
        scores[: len(rows)] = rows @ query.reshape(-1)
        return [pool.demos[i] for i in diverse_top(scores, pool._codes, spec.k)]

    def _top_k(self, k: int) -> tuple[Demo, ...]:
        top = self._top.get(k)
        if top is None:
            top = tuple(self.demos[i] for i in diverse_top(self._rewards, self._codes, k))
            self._top[k] = top
        return top

    def _similar(self, text: str, k: int) -> list[Demo]:
        chosen = diverse_top(self.scores(text), self._codes, k)
        return [self.demos[i] for i in chosen]


def diverse_top(scores: np.ndarray, codes: np.ndarray, k: int) -> list[int]:
    """Indices of up to ``k`` best-scoring items, at most ``ceil(k / min(d, k))`` per
    answer value (``codes``, ``d`` distinct), in ascending score (the best last).

    Ties go to the earlier item, so the result depends only on the pool's order.
    """
    n = len(scores)
    k = min(k, n)
    if k <= 0:
        return []
    distinct = int(codes.max()) + 1 if n else 0
    cap = math.ceil(k / min(distinct, k))
    m = min(n, max(_CANDIDATES_PER_DEMO * k, 32))
    candidates = np.argpartition(-scores, m - 1)[:m] if m < n else np.arange(n)
    candidates = candidates[np.lexsort((candidates, -scores[candidates]))]
    chosen: list[int] = []
    counts: dict[int, int] = {}
    for i in candidates.tolist():
        code = int(codes[i])
        if counts.get(code, 0) < cap:
            chosen.append(i)
            counts[code] = counts.get(code, 0) + 1
            if len(chosen) == k:
                break
    if len(chosen) < k:
        # The nearest candidates were too alike: bring in the best of the other answers.
        _fill(scores, codes, k, cap, chosen, counts)
    chosen.sort(key=lambda i: (float(scores[i]), -i))
    return chosen


def _fill(
    scores: np.ndarray,
    codes: np.ndarray,
    k: int,
    cap: int,
    chosen: list[int],
    counts: dict[int, int],
) -> None:
    taken = np.zeros(len(scores), dtype=bool)
    taken[chosen] = True
    while len(chosen) < k:
        full = [c for c, n in counts.items() if n >= cap]
        open_ = ~taken & ~np.isin(codes, full)
        if not open_.any():
            open_ = ~taken  # every value is at its cap: the pool is that uneven
        masked = np.where(open_, scores, -np.inf)
        i = int(np.argmax(masked))  # the first of equal scores: the earlier item
        chosen.append(i)
        taken[i] = True
        counts[int(codes[i])] = counts.get(int(codes[i]), 0) + 1


def pool_from_examples(examples: Sequence[Any]) -> list[Demo]:
    """Demonstrations from a prompt's ``[[examples]]`` that have an ``expected`` answer."""
    return [
        Demo.build(e.variables, e.expected, id=f"example:{e.name}") for e in examples if e.expected
    ]
