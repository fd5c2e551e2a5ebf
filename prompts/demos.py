"""Demonstrations: good past answers shown to the model before the call's own input.

A variant declares ``demos = { k = 4, select = "similar", pool = "production", ... }``
(:class:`DemosSpec`). Each call then gets up to ``k`` demonstrations (:class:`Demo`: the
variables of an earlier call and the answer it should give) from a pool
(:mod:`prompts.demo_pool`), placed either as prior chat turns (``format = "turns"``: each
user turn is the variant's own template rendered with that example's variables, each
assistant turn its answer) or as a ``{{ demos }}`` value the template places
(``format = "block"``, :class:`DemoBlock`).

Demonstrations are data: their text is passed to templates as values, never compiled as
template code, and every field is cut to :data:`MAX_DEMO_CHARS` when a demo is built.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from promptlab.prompts.base import SpecModel
from promptlab.prompts.errors import SpecError

MAX_K = 16
"""Most demonstrations one call may carry."""
MAX_DEMO_CHARS = 2000
"""Longest answer or variable text a demonstration keeps (longer text is cut)."""
MAX_INLINE_POOL = 200
"""Most demonstrations a variant may list inline (``pool = [...]``)."""
EMBEDDING_MODEL = re.compile(r"[A-Za-z0-9_.-]+/[!-~]+\Z")
"""``provider/model`` (as a variant's model): printable ASCII without spaces."""
DEMOS_VARIABLE = "demos"
"""The name a ``format = "block"`` template places the demonstrations with."""

Select = Literal["similar", "top", "fixed"]
Format = Literal["turns", "block"]


class InlineDemo(SpecModel):
    """One demonstration written in a variant's ``pool = [...]`` (a set chosen offline)."""

    variables: dict[str, Any] = Field(default_factory=dict)
    answer: str = Field(min_length=1, max_length=MAX_DEMO_CHARS)


class DemosSpec(SpecModel):
    """A variant's ``demos = {...}``: how many demonstrations, chosen how, from where."""

    k: int = Field(default=4, ge=1, le=MAX_K)
    """Most demonstrations per call (fewer when the pool holds fewer)."""
    select: Select = "similar"
    """``similar``: per call, the k good examples nearest this call's variables (BM25 over
    their text, or embeddings); ``top``: the k best-rewarded; ``fixed``: the pool as given,
    in its order (a set chosen offline by ``promptlab optimize --demos``)."""
    min_reward: float = Field(default=1.0, ge=0.0, le=1.0)
    """Only examples whose reward (0..1) is at least this are demonstrations."""
    pool: str | tuple[InlineDemo, ...] = "production"
    """``production`` (good answers from this prompt's traffic, published by the
    learner), ``examples`` (the prompt's ``[[examples]]`` with an ``expected``), a dataset
    name, or the demonstrations themselves as a list."""
    format: Format = "turns"
    embedding_model: str | None = Field(default=None, max_length=200)
    """``provider/model`` of an embedding model (an OpenAI-compatible provider's
    ``/v1/embeddings``): ``similar`` then ranks by the cosine similarity of embeddings
    instead of BM25. The learner embeds the pool, each call embeds its own variables'
    text; a call whose embedding fails or is late retrieves by BM25."""

    @field_validator("pool")
    @classmethod
    def _check_pool(cls, value: str | tuple[InlineDemo, ...]) -> str | tuple[InlineDemo, ...]:
        if isinstance(value, str):
            if not value or len(value) > 64:
                raise SpecError([("", f"pool name {value!r}: 1 to 64 characters")])
        elif not value or len(value) > MAX_INLINE_POOL:
            raise SpecError([("", f"an inline pool holds 1 to {MAX_INLINE_POOL} demonstrations")])
        return value

    @model_validator(mode="after")
    def _check_combination(self) -> DemosSpec:
        if self.embedding_model is not None:
            _check_embedding(self)
        if self.select == "fixed" and isinstance(self.pool, str) and self.pool == "production":
            raise SpecError(
                [("pool", "select = 'fixed' needs a set that does not move: a list, "
                          "'examples' or a dataset")]
            )  # fmt: skip
        return self

    @property
    def pool_name(self) -> str:
        """``production``, ``examples``, a dataset name, or ``inline``."""
        return self.pool if isinstance(self.pool, str) else "inline"


def _check_embedding(spec: DemosSpec) -> None:
    """Retrieval by embeddings: a ``provider/model`` name, ``similar`` selection, and a
    pool the learner publishes (it embeds the pool; a sidecar only embeds queries)."""
    model = spec.embedding_model or ""
    if not EMBEDDING_MODEL.match(model):
        raise SpecError(
            [("embedding_model", f"{model!r} is not a 'provider/model' name "
                                 "(e.g. 'openai/text-embedding-3-small')")]
        )  # fmt: skip
    if spec.select != "similar":
        raise SpecError(
            [("embedding_model", f"embeddings rank demonstrations for select = 'similar' "
                                 f"only, not {spec.select!r}")]
        )  # fmt: skip
    if not isinstance(spec.pool, str) or spec.pool == "examples":
        raise SpecError(
            [("embedding_model", "embeddings need a pool the learner publishes: "
                                 "'production' or a dataset name")]
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Demo:
    """One demonstration: an earlier call's variables and the answer it should give."""

    id: str
    """Stable id: the execution id for production examples, a content hash otherwise."""
    variables: Mapping[str, Any]
    answer: str
    reward: float = 1.0

    @classmethod
    def build(
        cls,
        variables: Mapping[str, Any],
        answer: str,
        *,
        reward: float = 1.0,
        id: str | None = None,
    ) -> Demo:
        """A demonstration with every text cut to :data:`MAX_DEMO_CHARS`; ``id`` defaults
        to a hash of the content, so the same demonstration has the same id everywhere."""
        kept = {k: _cut(v) for k, v in variables.items()}
        answer = _cut(answer)
        if id is None:
            content = json.dumps([kept, answer], sort_keys=True, ensure_ascii=False, default=str)
            id = "d-" + hashlib.sha256(content.encode()).hexdigest()[:16]
        return cls(id=id, variables=kept, answer=answer, reward=float(reward))

    def text(self) -> str:
        """The variables' text that retrieval indexes (values of every variable, in order)."""
        return " ".join(_flat(v) for _, v in sorted(self.variables.items()))

    def data(self) -> dict[str, Any]:
        """What a ``block`` template sees for this demonstration."""
        return {"variables": dict(self.variables), "answer": self.answer}


class DemoBlock(list[dict[str, Any]]):
    """The ``{{ demos }}`` value of a ``format = "block"`` variant.

    Iterating gives each demonstration's ``variables`` and ``answer`` (``{% for d in
    demos %}{{ d.variables.text }} -> {{ d.answer }}{% endfor %}``); printed whole it is a
    plain block, one example after another, delimited so the model sees where each starts.
    """

    def __str__(self) -> str:
        parts = []
        for i, demo in enumerate(self, 1):
            lines = [f"Example {i}:"]
            lines += [
                f"{name}: {_flat(value)}" for name, value in sorted(demo["variables"].items())
            ]
            lines.append(f"Answer: {demo['answer']}")
            parts.append("\n".join(lines))
        return "\n\n".join(parts)


def block_value(demos: Sequence[Demo]) -> DemoBlock:
    """The ``demos`` value a block template renders."""
    return DemoBlock(d.data() for d in demos)


def _cut(value: Any) -> Any:
    if isinstance(value, str):
        return value[:MAX_DEMO_CHARS]
    if isinstance(value, list | tuple):
        return [_cut(v) for v in value[:100]]
    if isinstance(value, dict):
        return {str(k)[:100]: _cut(v) for k, v in list(value.items())[:100]}
    return value


def _flat(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return " ".join(_flat(v) for v in value)
    if isinstance(value, dict):
        return " ".join(_flat(v) for v in value.values())
    return "" if value is None else str(value)
