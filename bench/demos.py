"""Demonstration retrieval on the hot path: what a ``demos`` variant adds per call.

Pools of synthetic examples (sentences of 8 to 24 words from a 5,000-word vocabulary
with Zipf frequencies; two labels) of 10,000 and 100,000 demonstrations. Prints:

* pool build time (demonstrations + BM25 index), as a sidecar pays it when a pool
  arrives (off the event loop);
* choose (BM25 scores + diverse top-k, k = 4) p50 / p99 at each size, and the whole
  added cost of a call (choose + render 4 demonstration turns) against rendering
  without demonstrations (target: <= 0.3 ms p50 added at 10,000);
* the process's RSS growth holding the 100,000-example pool;
* rank-bm25's scoring at 10,000 for comparison, when it is installed (it is not a
  dependency: ``pip install rank-bm25``);
* retrieval by embeddings (``embedding_model``): per call, the query text, its cache
  key and the cosine similarities of the pool's rows with diverse top-k, p50 / p99, at
  each size with 384 and 1,536 numbers per row (random unit rows: the cost does not
  depend on what they mean), as many rows as the learner publishes (its cap is 8 MiB
  of float16 per pool: the newest 10,000 or 10,922 at 384, 2,730 at 1,536), and the
  float16 -> float32 decoding a sidecar does when the pool arrives. Above 2^20
  numbers a sidecar computes them in a worker thread (not measured here: the event
  loop is free meanwhile, the call waits as long). **The query's embedding round trip to the provider is not included**: it
  is a network call (milliseconds for a local server, hundreds for a hosted one),
  bounded by ``server.demo_embedding_timeout_s``, and a repeated query skips it.

Run: ``python -m bench --only demos [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import time
from collections.abc import Callable, Iterator

import numpy as np

from bench.render import measure_us
from promptlab.events.snapshots import PoolVectors
from promptlab.prompts import PromptSpec, Renderer
from promptlab.prompts.demo_pool import DemoPool, query_text, tokens
from promptlab.prompts.demo_vectors import from_chunks, rows_that_fit, to_chunks, unit_rows
from promptlab.prompts.demos import Demo, DemosSpec

SPEC = PromptSpec.model_validate(
    {
        "id": "bench",
        "variables": [{"name": "text", "type": "string", "required": True}],
        "variants": [
            {"name": "plain", "model": "simulated/good", "system": "Label the sentiment.",
             "template": "Text: {{ text }}\nLabel:"},
            {"name": "demos", "model": "simulated/good", "system": "Label the sentiment.",
             "template": "Text: {{ text }}\nLabel:", "demos": {"k": 4, "select": "similar"}},
        ],
    }
)  # fmt: skip


def sentences(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"w{i}" for i in range(5000)])
    weights = 1.0 / np.arange(1, 5001)
    weights /= weights.sum()
    lengths = rng.integers(8, 25, n)
    words = rng.choice(vocabulary, size=int(lengths.sum()), p=weights)
    out, at = [], 0
    for length in lengths.tolist():
        out.append(" ".join(words[at : at + length].tolist()))
        at += length
    return out


def pool_of(n: int, seed: int = 1) -> list[Demo]:
    return [
        Demo.build({"text": s}, "positive" if i % 3 else "negative", id=f"e{i}")
        for i, s in enumerate(sentences(n, seed))
    ]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def measure(fn: Callable[[], object], iterations: int) -> tuple[float, float]:
    """p50, p99 in milliseconds (bench.render's measurement)."""
    p50, p99 = measure_us(fn, iterations, warmup=200)
    return p50 / 1000, p99 / 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--iterations", type=int, default=5000)
    parser.add_argument("--quick", action="store_true", help="1,000 iterations")
    args = parser.parse_args(argv)
    iterations = 1000 if args.quick else args.iterations
    spec = SPEC.variant("demos").demos
    assert spec is not None
    queries = [{"text": q} for q in sentences(500, seed=99)]
    renderer = Renderer()
    import bm25s  # noqa: F401  (loaded once, as a sidecar does at its first pool)

    for size in (10_000, 100_000):
        demos = pool_of(size)
        gc.collect()
        before = rss_mb()
        start = time.perf_counter()
        pool = DemoPool(demos)
        pool.build_index()
        built = time.perf_counter() - start
        grown = rss_mb() - before
        turn = iter(range(10**9))

        def choose(pool: DemoPool = pool, turn: Iterator[int] = turn) -> object:
            return pool.select(spec, queries[next(turn) % len(queries)])

        def with_demos(pool: DemoPool = pool, turn: Iterator[int] = turn) -> object:
            values = queries[next(turn) % len(queries)]
            return renderer.render(SPEC, "demos", values, pool.select(spec, values))

        def without(turn: Iterator[int] = turn) -> object:
            return renderer.render(SPEC, "plain", queries[next(turn) % len(queries)])

        c50, c99 = measure(choose, iterations)
        d50, d99 = measure(with_demos, iterations)
        p50, _ = measure(without, iterations)
        print(
            f"pool {size:>7,}: build {built:6.2f} s (index RSS +{grown:6.1f} MB over the "
            f"demonstrations); choose p50 {c50:.3f} ms p99 {c99:.3f} ms; render with 4 demos "
            f"p50 {d50:.3f} ms vs without {p50:.3f} ms: added p50 {d50 - p50:.3f} ms, "
            f"p99 {d99:.3f} ms",
            flush=True,
        )
        if size == 100_000:
            del pool, demos
        print(f"process RSS now {rss_mb():.0f} MB", flush=True)
    gc.collect()
    before = rss_mb()
    held = DemoPool(pool_of(100_000, seed=5))
    held.build_index()
    print(f"RSS with a 100,000-example pool held: +{rss_mb() - before:.0f} MB", flush=True)
    del held
    embeddings(spec, queries, iterations)
    try:
        from rank_bm25 import BM25Okapi
    except ImportError:
        print("rank-bm25 not installed: no comparison (pip install rank-bm25)")
        return
    corpus = [tokens(s) for s in sentences(10_000, seed=1)]
    okapi = BM25Okapi(corpus)
    q = iter(range(10**9))
    r50, r99 = measure(
        lambda: okapi.get_scores(tokens(queries[next(q) % 500]["text"])), max(100, iterations // 10)
    )
    print(f"rank-bm25 at 10,000: get_scores p50 {r50:.3f} ms p99 {r99:.3f} ms (bm25s above)")


def embeddings(spec: DemosSpec, queries: list[dict[str, str]], iterations: int) -> None:
    """Per call cost of retrieval by embeddings, without the query's network round trip."""
    spec = spec.model_copy(update={"embedding_model": "bench/embed"})
    rng = np.random.default_rng(7)
    for size in (10_000, 100_000):
        demos = pool_of(size)
        for dim in (384, 1536):
            rows = unit_rows(rng.standard_normal((rows_that_fit(dim, size), dim), np.float32))
            chunks, sha = to_chunks(rows)
            meta = PoolVectors(
                model="bench/embed", dim=dim, count=len(rows), chunks=len(chunks), sha256=sha
            )
            start = time.perf_counter()
            decoded = from_chunks(chunks, meta)
            arrived = time.perf_counter() - start
            pool = DemoPool(demos, vectors={"bench/embed": decoded})
            # The query's embedding as the provider would return it (random: same cost).
            vectors = unit_rows(rng.standard_normal((len(queries), dim), np.float32))
            turn = iter(range(10**9))

            def nearest(
                pool: DemoPool = pool, vectors: np.ndarray = vectors, turn: Iterator[int] = turn
            ) -> object:
                i = next(turn) % len(queries)
                text = query_text(queries[i])  # what the sidecar embeds, and its cache key
                hashlib.blake2b(text.encode(), digest_size=16).digest()
                return pool.nearest(spec, vectors[i])

            e50, e99 = measure(nearest, iterations)
            print(
                f"embeddings, pool {size:>7,} x {dim:>4} ({len(rows):>6,} rows, "
                f"{len(rows) * dim * 2 / 1e6:4.1f} MB float16 published, "
                f"{decoded.nbytes / 1e6:5.1f} MB float32 held, decoded in "
                f"{arrived * 1000:5.1f} ms): choose p50 {e50:.3f} ms p99 {e99:.3f} ms "
                "(without the query's embedding round trip)",
                flush=True,
            )
            del pool, decoded, rows, chunks


if __name__ == "__main__":
    main()
