"""Demonstration variants in the kernel: the spec, insertion, retrieval and selection."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from promptlab.prompts import PromptSpec, Renderer
from promptlab.prompts.demo_pool import DemoPool, answer_value, diverse_top, pool_from_examples
from promptlab.prompts.demos import MAX_DEMO_CHARS, Demo


def sentiment(
    *variants: dict[str, Any], examples: list[dict[str, Any]] | None = None
) -> PromptSpec:
    return PromptSpec.model_validate(
        {
            "id": "sentiment",
            "variables": [{"name": "text", "type": "string", "required": True}],
            "examples": examples or [],
            "variants": [
                {
                    "name": "plain",
                    "model": "fake/m",
                    "system": "Label it.",
                    "template": "{{ text }}",
                },
                *variants,
            ],
        }
    )


def demo(text: str, answer: str, reward: float = 1.0) -> Demo:
    return Demo.build({"text": text}, answer, reward=reward)


# ----------------------------------------------------------------------------- spec


def test_a_variant_without_demos_keeps_its_version_and_one_with_demos_gets_another() -> None:
    before = sentiment().variant("plain").version
    with_demos = sentiment(
        {"name": "d", "model": "fake/m", "system": "Label it.", "template": "{{ text }}",
         "demos": {"k": 2, "pool": "examples"}},
    )  # fmt: skip
    assert with_demos.variant("plain").version == before  # the hash of the old fields only
    assert with_demos.variant("d").version != before
    event = with_demos.variant("d").to_event("sentiment")
    assert event.demos is not None and event.demos["k"] == 2
    from promptlab.prompts import VariantSpec

    assert VariantSpec.from_event(event).demos == with_demos.variant("d").demos


@pytest.mark.parametrize(
    ("demos", "template", "says"),
    [
        ({"format": "block"}, "{{ text }}", "{{ demos }}"),
        ({"k": 0}, "{{ text }}", "greater than or equal to 1"),
        ({"k": 17}, "{{ text }}", "less than or equal to 16"),
        ({"select": "fixed"}, "{{ text }}", "does not move"),
        ({"embedding_model": "text-embedding-3-small"}, "{{ text }}", "not a 'provider/model'"),
        ({"embedding_model": "openai/e", "select": "top"}, "{{ text }}", "'similar' only"),
        (
            {"embedding_model": "openai/e", "pool": "examples"},
            "{{ text }}",
            "the learner publishes",
        ),
        ({"embedding_model": "openai/e", "pool": [{"answer": "x"}]}, "{{ text }}", "publishes"),
        ({"format": "turns"}, "{{ demos }} {{ text }}", "undeclared variable 'demos'"),
    ],
)
def test_unusable_demos_are_refused_with_a_reason(
    demos: dict[str, Any], template: str, says: str
) -> None:
    with pytest.raises(ValidationError) as info:
        sentiment({"name": "d", "model": "fake/m", "template": template, "demos": demos})
    assert says in str(info.value)


# ------------------------------------------------------------------------ insertion


def test_turns_put_a_user_and_an_assistant_message_per_demo_before_the_call() -> None:
    prompt = sentiment(
        {"name": "d", "model": "fake/m", "system": "Label it.", "template": "Text: {{ text }}",
         "demos": {"k": 2}},
    )  # fmt: skip
    demos = [demo("dull plot", "negative"), demo("lovely cast", "positive")]
    messages = Renderer().render(prompt, "d", {"text": "a fine film"}, demos)
    assert messages == [
        {"role": "system", "content": "Label it."},
        {"role": "user", "content": "Text: dull plot"},
        {"role": "assistant", "content": "negative"},
        {"role": "user", "content": "Text: lovely cast"},
        {"role": "assistant", "content": "positive"},
        {"role": "user", "content": "Text: a fine film"},
    ]


def test_a_block_template_places_demos_where_it_says_and_can_loop_over_them() -> None:
    prompt = sentiment(
        {"name": "whole", "model": "fake/m", "template": "{{ demos }}\n---\n{{ text }}",
         "demos": {"format": "block"}},
        {"name": "loop", "model": "fake/m",
         "template": "{% for d in demos %}[{{ d.variables.text }}] => {{ d.answer }}\n{% endfor %}{{ text }}",
         "demos": {"format": "block"}},
    )  # fmt: skip
    demos = [demo("dull plot", "negative"), demo("lovely cast", "positive")]
    renderer = Renderer()
    whole = renderer.render(prompt, "whole", {"text": "a fine film"}, demos)
    assert whole == [
        {
            "role": "user",
            "content": "Example 1:\ntext: dull plot\nAnswer: negative\n\n"
            "Example 2:\ntext: lovely cast\nAnswer: positive\n---\na fine film",
        }
    ]
    loop = renderer.render(prompt, "loop", {"text": "x"}, demos)
    assert loop[0]["content"] == "[dull plot] => negative\n[lovely cast] => positive\nx"
    assert renderer.render(prompt, "whole", {"text": "x"}, [])[0]["content"] == "\n---\nx"


def test_demonstrations_are_data_never_template_code_and_are_capped() -> None:
    prompt = sentiment(
        {"name": "d", "model": "fake/m", "template": "Text: {{ text }}", "demos": {"k": 1}},
        {"name": "b", "model": "fake/m", "template": "{{ demos }}|{{ text }}",
         "demos": {"k": 1, "format": "block"}},
    )  # fmt: skip
    sneaky = demo("{{ 7 * 7 }} {% for i in range(3) %}x{% endfor %}", "{{ text }}" + "y" * 5000)
    assert len(sneaky.answer) == MAX_DEMO_CHARS
    turns = Renderer().render(prompt, "d", {"text": "t"}, [sneaky])
    assert turns[0]["content"] == "Text: {{ 7 * 7 }} {% for i in range(3) %}x{% endfor %}"
    assert turns[1]["content"].startswith("{{ text }}yyy")
    block = Renderer().render(prompt, "b", {"text": "t"}, [sneaky])[0]["content"]
    assert "{{ 7 * 7 }}" in block and "49" not in block


def test_a_demonstration_the_template_cannot_take_is_left_out_not_the_call() -> None:
    prompt = sentiment({"name": "d", "model": "fake/m", "template": "{{ text }}", "demos": {}})
    bad = Demo.build({"text": "ok", "unknown": 1}, "positive")  # not a declared variable
    good = demo("fine", "positive")
    messages = Renderer().render(prompt, "d", {"text": "q"}, [bad, good])
    assert [m["content"] for m in messages] == ["fine", "positive", "q"]


# ------------------------------------------------------------------------ retrieval


def test_bm25_scores_a_small_corpus_as_computed_by_hand() -> None:
    pool = DemoPool([demo("red apple", "a"), demo("green apple pie", "b"), demo("blue sky", "c")])
    scores = pool.scores("apple pie")
    # Lucene BM25, k1 = 1.5, b = 0.75; N = 3, average length 7/3.
    # idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5)); tf part = tf / (tf + k1 (1 - b + b |d| / avgdl))
    idf_apple, idf_pie = math.log(1 + 1.5 / 2.5), math.log(1 + 2.5 / 1.5)

    def tf(length: int) -> float:
        return 1 / (1 + 1.5 * (0.25 + 0.75 * length / (7 / 3)))

    expected = [idf_apple * tf(2), (idf_apple + idf_pie) * tf(3), 0.0]
    assert scores.tolist() == pytest.approx(expected, rel=1e-5)
    spec = sentiment({"name": "d", "model": "fake/m", "template": "{{ text }}",
                      "demos": {"k": 2}}).variant("d").demos  # fmt: skip
    assert spec is not None
    chosen = pool.select(spec, {"text": "apple pie"})
    assert [d.variables["text"] for d in chosen] == ["red apple", "green apple pie"]  # nearest last


def test_a_call_sharing_no_word_with_the_pool_still_gets_demos() -> None:
    pool = DemoPool([demo("red apple", "a"), demo("blue sky", "b")])
    spec = sentiment({"name": "d", "model": "fake/m", "template": "{{ text }}",
                      "demos": {"k": 2}}).variant("d").demos  # fmt: skip
    assert spec is not None
    assert len(pool.select(spec, {"text": "zzz"})) == 2


def test_min_reward_keeps_only_good_examples_and_top_takes_the_best() -> None:
    pool = DemoPool(
        [demo("a", "x", 0.2), demo("b", "y", 1.0), demo("c", "z", 0.9), demo("d", "w", 1.0)]
    )
    prompt = sentiment(
        {"name": "top", "model": "fake/m", "template": "{{ text }}",
         "demos": {"k": 2, "select": "top", "min_reward": 0.5, "pool": "examples"}},
    )  # fmt: skip
    spec = prompt.variant("top").demos
    assert spec is not None
    assert [d.variables["text"] for d in pool.select(spec, {"text": "q"})] == ["d", "b"]
    assert [d.variables["text"] for d in pool.select(spec.model_copy(update={"k": 4}), {})] == [
        "c", "d", "b",
    ]  # fmt: skip


def test_fixed_keeps_the_pool_order() -> None:
    prompt = sentiment(
        {"name": "f", "model": "fake/m", "template": "{{ text }}",
         "demos": {"k": 2, "select": "fixed",
                   "pool": [{"variables": {"text": "one"}, "answer": "1"},
                            {"variables": {"text": "two"}, "answer": "2"},
                            {"variables": {"text": "three"}, "answer": "3"}]}},
    )  # fmt: skip
    spec = prompt.variant("f").demos
    assert spec is not None and not isinstance(spec.pool, str)
    pool = DemoPool(Demo.build(d.variables, d.answer) for d in spec.pool)
    assert [d.answer for d in pool.select(spec, {"text": "three"})] == ["1", "2"]


def test_examples_become_a_pool_when_they_have_an_expected_answer() -> None:
    prompt = sentiment(
        examples=[
            {"name": "a", "variables": {"text": "great"}, "expected": "positive"},
            {"name": "b", "variables": {"text": "judged only"}},
        ]
    )
    assert [(d.id, d.answer) for d in pool_from_examples(prompt.examples)] == [
        ("example:a", "positive")
    ]


# ------------------------------------------------------------------------ diversity


def test_two_labels_are_never_a_one_label_set_even_when_one_label_is_nearer() -> None:
    # Twenty positive sentences share every word with the call; the negatives share one.
    positives = [demo(f"good great film number {i}", "positive") for i in range(20)]
    negatives = [demo(f"film bad {i}", "negative") for i in range(5)]
    pool = DemoPool(positives + negatives)
    spec = sentiment({"name": "d", "model": "fake/m", "template": "{{ text }}",
                      "demos": {"k": 4}}).variant("d").demos  # fmt: skip
    assert spec is not None
    chosen = pool.select(spec, {"text": "good great film"})
    assert sorted(d.answer for d in chosen) == ["negative", "negative", "positive", "positive"]
    for k in (2, 3, 5, 8):
        labels = {d.answer for d in pool.select(spec.model_copy(update={"k": k}), {"text": "good"})}
        assert labels == {"positive", "negative"}, k


@pytest.mark.parametrize(
    ("answers", "values"),
    [
        (["Positive", "positive.", " POSITIVE ", "“positive!”", "positive\n"], 1),
        (["not  so good", "Not so good.", "not\tso good"], 1),
        (["-1", "1", "+1"], 3),  # a number keeps its sign
        (["😀", "😡"], 2),  # nothing but symbols: kept as they are
        (["positive", "negative", "Negative!"], 2),
    ],
)
def test_answers_are_one_value_whatever_their_case_spacing_and_punctuation(
    answers: list[str], values: int
) -> None:
    assert len({answer_value(a) for a in answers}) == values
    assert DemoPool(demo(f"sentence {i}", a) for i, a in enumerate(answers)).distinct_answers == (
        values
    )


def test_one_label_written_three_ways_is_one_label_to_diversity() -> None:
    # The positives are nearest and spelled three ways; as three values they could fill a
    # set of four on their own (two places each). As one label they take two places.
    spellings = ["Positive", "positive.", " POSITIVE "]
    positives = [demo(f"good great film number {i}", spellings[i % 3]) for i in range(12)]
    negatives = [demo(f"film bad {i}", "negative") for i in range(5)]
    pool = DemoPool(positives + negatives)
    spec = sentiment({"name": "d", "model": "fake/m", "template": "{{ text }}",
                      "demos": {"k": 4}}).variant("d").demos  # fmt: skip
    assert spec is not None
    chosen = pool.select(spec, {"text": "good great film"})
    assert sorted(answer_value(d.answer) for d in chosen) == ["negative"] * 2 + ["positive"] * 2
    assert any(d.answer in spellings for d in chosen)  # the answers shown are as written


def test_a_one_label_pool_gives_a_one_label_set() -> None:
    pool = DemoPool([demo(f"good {i}", "positive") for i in range(6)])
    spec = sentiment({"name": "d", "model": "fake/m", "template": "{{ text }}",
                      "demos": {"k": 4}}).variant("d").demos  # fmt: skip
    assert spec is not None
    assert [d.answer for d in pool.select(spec, {"text": "good"})] == ["positive"] * 4


def test_diverse_top_beyond_the_candidates_finds_the_rare_answer() -> None:
    rng = np.random.default_rng(3)
    scores = rng.random(5000) + 1.0
    codes = np.zeros(5000, dtype=np.int64)
    codes[4321] = 1  # the one other answer, with a low score
    scores[4321] = 0.01
    chosen = diverse_top(scores, codes, 4)
    assert 4321 in chosen and len(set(chosen)) == 4
    assert chosen[0] == 4321  # the weakest first, the nearest last


# ----------------------------------------------------------------------- embeddings


def unit(*values: float) -> np.ndarray:
    row = np.asarray(values, dtype=np.float32)
    return row / np.linalg.norm(row)


def test_an_embedding_model_is_part_of_the_variant_and_of_its_event() -> None:
    plain = {"name": "d", "model": "fake/m", "template": "{{ text }}", "demos": {"k": 2}}
    embedded = {**plain, "demos": {"k": 2, "embedding_model": "fake/embed-1"}}
    before, after = sentiment(plain).variant("d"), sentiment(embedded).variant("d")
    assert after.version != before.version  # another retrieval: no shared evidence
    event = after.to_event("sentiment")
    assert event.demos is not None and event.demos["embedding_model"] == "fake/embed-1"
    from promptlab.prompts import VariantSpec

    assert VariantSpec.from_event(event).demos == after.demos


def test_the_demonstration_challenger_can_retrieve_by_embeddings() -> None:
    spec = PromptSpec.model_validate(
        {
            "id": "p",
            "variables": [{"name": "text", "type": "string"}],
            "learning": {"capture": True, "demos": {"embedding_model": "fake/e"}},
            "variants": [{"name": "a", "model": "fake/m", "template": "{{ text }}"}],
        }
    )
    assert spec.learning.demos is not None
    assert spec.learning.demos.variant_demos().embedding_model == "fake/e"
    with pytest.raises(ValidationError, match="'similar' only"):
        PromptSpec.model_validate(
            {
                "id": "p",
                "learning": {"demos": {"select": "top", "embedding_model": "fake/e"}},
                "variants": [{"name": "a", "model": "fake/m", "template": "x"}],
            }
        )


def test_nearest_ranks_by_cosine_and_keeps_the_answers_diverse() -> None:
    demos = [demo("one", "a"), demo("two", "a"), demo("three", "b"), demo("four", "b")]
    rows = np.stack([unit(1, 0, 0), unit(0.9, 0.1, 0), unit(0, 1, 0), unit(0.5, 0, 0.5)])
    pool = DemoPool(demos, vectors={"fake/e": rows})
    spec = sentiment(
        {"name": "d", "model": "fake/m", "template": "{{ text }}",
         "demos": {"k": 2, "embedding_model": "fake/e"}},
    ).variant("d").demos  # fmt: skip
    assert spec is not None
    chosen = pool.nearest(spec, unit(1, 0, 0.1))
    # The two nearest share answer "a": one "a" (the nearest, last) and the best "b".
    assert [d.variables["text"] for d in chosen] == ["four", "one"]


def test_nearest_keeps_rows_aligned_through_min_reward_and_ranks_unembedded_last() -> None:
    demos = [demo("new", "a"), demo("bad", "b", reward=0.0), demo("old", "b"), demo("older", "a")]
    rows = np.stack([unit(0, 1), unit(1, 0), unit(1, 0.1)])  # "older" has no row
    pool = DemoPool(demos, vectors={"fake/e": rows})
    spec = sentiment(
        {"name": "d", "model": "fake/m", "template": "{{ text }}",
         "demos": {"k": 1, "embedding_model": "fake/e"}},
    ).variant("d").demos  # fmt: skip
    assert spec is not None
    assert [d.variables["text"] for d in pool.nearest(spec, unit(1, 0))] == ["old"]
    three = spec.model_copy(update={"k": 3})
    assert pool.nearest(three, unit(1, 0))[0].variables["text"] == "older"
    with pytest.raises(ValueError, match="numbers"):
        pool.nearest(spec, unit(1, 0, 0))
    with pytest.raises(ValueError, match="no embeddings by other/e"):
        pool.nearest(spec.model_copy(update={"embedding_model": "other/e"}), unit(1, 0))


def test_vectors_travel_as_float16_chunks_checked_against_their_description() -> None:
    from promptlab.events.snapshots import VECTOR_CHUNK_BYTES, PoolVectors
    from promptlab.prompts.demo_vectors import VectorsUnusable, from_chunks, to_chunks, unit_rows

    rows = unit_rows(np.random.default_rng(3).normal(size=(1000, 768)))
    chunks, sha = to_chunks(rows)
    assert len(chunks) == 2 and all(len(c) <= VECTOR_CHUNK_BYTES for c in chunks)
    meta = PoolVectors(model="fake/e", dim=768, count=1000, chunks=len(chunks), sha256=sha)
    back = from_chunks(chunks, meta)
    assert back.dtype == np.float32 and back.shape == (1000, 768)
    assert float(np.abs(back @ back[7] - rows @ rows[7]).max()) < 2e-3  # cosines barely move
    with pytest.raises(VectorsUnusable, match="missing or damaged"):
        from_chunks(chunks[:1], meta)
    with pytest.raises(VectorsUnusable):
        from_chunks([chunks[1], chunks[0]], meta)
