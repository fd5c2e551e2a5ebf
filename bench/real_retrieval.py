"""Demonstrations by BM25 or by embeddings, with a real local model: which helps more?

Opt-in (``python -m bench.real --retrieval``, or ``python -m bench.real_retrieval``);
needs the model's virtualenv as ``bench.real`` does. llama.cpp's server serves
SmolLM2-135M-Instruct for chat and, started with ``--embedding``, mean-pooled
embeddings of the same model at ``/v1/embeddings`` (576 numbers).

Data: the same shuffled split as ``bench.real`` ("Sentiment Labelled Sentences", Kotzias
et al. 2015, CC BY 4.0): the first ``--held-out`` sentences are held out, the next
``--pool`` make the demonstration pool with their dataset labels as answers (as if
every production answer had been rated, or corrected by a reviewer).

Through promptlab's own code: the learner's :class:`PoolEmbedder` embeds the pool, the
rows travel as the float16 chunks a sidecar decodes, and the sidecar's
:class:`DemoPools` chooses each call's 4 demonstrations (its :class:`QueryEmbedder`
embeds the query). Every held-out sentence is answered three ways by the same model:
zero-shot, with demonstrations by BM25, and with demonstrations by embeddings. Printed:
held-out accuracy of each with 95% Wilson intervals, exact McNemar tests on the same
sentences, how often the single nearest demonstration has the sentence's label (by
words, by meaning), and what embedding cost (the pool once, each call's query).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import numpy as np

from bench.real import (
    DATA,
    PROMPT_ID,
    label_of,
    llm_python,
    load_data,
    mcnemar,
    model_server,
    wilson,
)

MODEL = "local/smollm2"
WAYS = ("zero-shot", "bm25", "embeddings")


def spec() -> Any:
    from promptlab.prompts import PromptSpec

    demos = {"k": 4, "select": "similar", "pool": "production"}
    base = {
        "model": MODEL,
        "system": "Classify the sentiment of the review as positive or negative. "
        "Answer with one word: positive or negative.",
        "template": "Review: {{ text }}",
        "params": {"max_tokens": 6, "temperature": 0},
    }
    return PromptSpec.model_validate(
        {
            "id": PROMPT_ID,
            "variables": [{"name": "text", "type": "string", "required": True, "max_length": 600}],
            "variants": [
                {"name": "zero-shot", **base, "champion": True},
                {"name": "bm25", **base, "demos": demos},
                {"name": "embeddings", **base, "demos": {**demos, "embedding_model": MODEL}},
            ],
        }
    )


async def compare(
    llm_url: str, pool_rows: list[tuple[str, str]], held_out: list[tuple[str, str]]
) -> dict[str, list[bool]]:
    """Per way, per held-out sentence in order: was the model right."""
    import openai

    from promptlab.events.snapshots import DemoPoolSnapshot, DemoRecord, PoolVectors
    from promptlab.learner.demo_embeddings import PoolEmbedder
    from promptlab.prompts import Renderer
    from promptlab.prompts.demo_pool import query_text
    from promptlab.prompts.demo_vectors import from_chunks, to_chunks
    from promptlab.prompts.demos import Demo
    from promptlab.providers import Providers, ProviderSettings
    from promptlab.sidecar.demo_embeddings import QueryEmbedder
    from promptlab.sidecar.demos import DemoPools

    prompt = spec()
    records = [
        DemoRecord(id=f"pool:{i}", variables={"text": text}, answer=label)
        for i, (text, label) in enumerate(pool_rows)
    ]
    snapshot = DemoPoolSnapshot(prompt_id=PROMPT_ID, version=1, demos=records)
    local = ProviderSettings(kind="openai", api_base=llm_url, max_retries=1, timeout_s=120)
    async with Providers({"local": local}) as providers:
        started = time.perf_counter()
        texts = [Demo.build(r.variables, r.answer).text() for r in records]
        rows = await PoolEmbedder(providers).rows(MODEL, texts)
        embedded_s = time.perf_counter() - started
        chunks, sha = to_chunks(rows)
        meta = PoolVectors(
            model=MODEL, dim=rows.shape[1], count=len(rows), chunks=len(chunks), sha256=sha
        )
        queries = QueryEmbedder(providers, timeout_s=30.0)
        pools = DemoPools(providers.redactor, queries)
        pools.apply(snapshot, {MODEL: from_chunks(chunks, meta)})
        print(
            f"pool: {len(records)} demonstrations embedded in {embedded_s:.1f} s "
            f"({rows.shape[1]} numbers each)",
            flush=True,
        )
        renderer = Renderer()
        client = openai.AsyncOpenAI(base_url=llm_url, api_key="x", max_retries=1, timeout=300)
        right: dict[str, list[bool]] = {way: [] for way in WAYS}
        choose_ms: list[float] = []
        nearest_agrees = {"bm25": 0, "embeddings": 0}
        pool = pools.published(PROMPT_ID)
        assert pool is not None
        try:
            for n, (text, label) in enumerate(held_out, 1):
                values = prompt.variables_validator({"text": text})
                for way in WAYS:
                    variant = prompt.variant(way)
                    start = time.perf_counter()
                    demos = await pools.choose(prompt, variant, values)
                    if way == "embeddings":
                        choose_ms.append((time.perf_counter() - start) * 1000)
                    messages = renderer.render(prompt, variant, values, demos)
                    completion = await client.chat.completions.create(
                        model="smollm2", messages=messages, **variant.params
                    )
                    answer = completion.choices[0].message.content or ""
                    right[way].append(label_of(answer) == label)
                # Does the single nearest demonstration carry the sentence's label?
                query = await queries.embed(MODEL, query_text(values))  # cached by now
                if query is not None:
                    by_meaning = int(np.argmax(pool.vectors[MODEL] @ query))
                    nearest_agrees["embeddings"] += pool.demos[by_meaning].answer == label
                by_words = int(np.argmax(pool.scores(query_text(values))))
                nearest_agrees["bm25"] += pool.demos[by_words].answer == label
                if n % 50 == 0:
                    print(f"  {n} held-out sentences", flush=True)
        finally:
            await client.close()
        if queries.fallbacks:
            print(f"embedding fallbacks to BM25: {queries.fallbacks}")
        print(
            "the nearest demonstration has the sentence's label: "
            + ", ".join(f"{w} {k / len(held_out):.1%}" for w, k in nearest_agrees.items())
        )
        choose_ms.sort()
        print(
            "choose by embeddings per call, the query's round trip to llama.cpp included: "
            f"p50 {choose_ms[len(choose_ms) // 2]:.1f} ms, "
            f"p99 {choose_ms[int(len(choose_ms) * 0.99)]:.1f} ms"
        )
    return right


def report(right: dict[str, list[bool]]) -> None:
    for way, marks in right.items():
        n, k = len(marks), sum(marks)
        low, high = wilson(k, n)
        print(f"held-out accuracy {way:<11} {k / n:6.1%}  95% CI [{low:.1%}, {high:.1%}]  (n={n})")
    for a, b in (("bm25", "embeddings"), ("zero-shot", "bm25"), ("zero-shot", "embeddings")):
        only_b = sum(y and not x for x, y in zip(right[a], right[b], strict=True))
        only_a = sum(x and not y for x, y in zip(right[a], right[b], strict=True))
        print(
            f"paired (exact McNemar) {b} vs {a}: right only with {b} {only_b}, "
            f"only with {a} {only_a}, p = {mcnemar(only_b, only_a):.3g}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="60 held out, a pool of 200")
    parser.add_argument("--held-out", type=int, help="held-out sentences (default 200)")
    parser.add_argument("--pool", type=int, help="pool sentences (default 400)")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    python = llm_python()
    if python is None:
        print("real retrieval: SKIPPED: the local model server is not installed (see bench.real)")
        return
    n_held = args.held_out or (60 if args.quick else 200)
    n_pool = args.pool or (200 if args.quick else 400)
    rows = load_data(args.seed, ["amazon"])  # the Amazon sentences its figures were measured on
    held_out, pool_rows = rows[:n_held], rows[n_held : n_held + n_pool]
    print(f"data: {DATA['amazon'].name} (Kotzias et al. 2015, CC BY 4.0): {len(held_out)} held out, "
          f"a pool of {len(pool_rows)} labelled sentences")  # fmt: skip
    with model_server(python, args.threads, "--embedding", label="real retrieval") as llm_url:
        print(f"model: SmolLM2-135M-Instruct (Q4_1 GGUF) on llama.cpp at {llm_url}, chat and "
              "mean-pooled embeddings")  # fmt: skip
        report(asyncio.run(compare(llm_url, pool_rows, held_out)))


if __name__ == "__main__":
    main()
