"""Names on the wire: subjects, headers, stream and KV bucket names.

Everything that travels through NATS is named here once, so a typo cannot split
a subject in two.
"""

from __future__ import annotations

import hashlib
from enum import Enum

STREAM_NAME = "PROMPTLAB"
"""The one JetStream stream that holds every promptlab event."""

STREAM_SUBJECTS = ("promptlab.>",)
"""Subjects captured by :data:`STREAM_NAME`."""


class Subject(str, Enum):
    """Subjects of the event stream (all under ``promptlab.``)."""

    EXECUTION = "promptlab.execution.completed"
    FEEDBACK = "promptlab.feedback.received"
    VARIANT = "promptlab.variant"
    PROMPT = "promptlab.prompt"
    DECISION = "promptlab.decision"
    COMMAND = "promptlab.command"
    DEAD_LETTER = "promptlab.deadletter"

    def __str__(self) -> str:
        return self.value


def variant_key(prompt_id: str, variant: str) -> str:
    """Key of a run-time variant in :attr:`Bucket.VARIANTS`: ``<prompt>.<variant>``.

    A KV key takes no ``+`` (a variant name may: ``<champion>+demos``), so it is written
    ``=``, which no name contains."""
    return f"{prompt_id}.{variant.replace('+', '=')}"


def demo_pool_key(prompt_id: str, pool: str) -> str:
    """Key of a demonstration pool in :attr:`Bucket.DEMOS`: ``<prompt>.<pool>``."""
    return f"{prompt_id}.{pool}"


def demo_vectors_key(prompt_id: str, pool: str, model: str, sha256: str, chunk: int) -> str:
    """Key of one chunk of a pool's embeddings in :attr:`Bucket.DEMO_VECTORS`:
    ``<prompt>.<pool>.<model hash>.<rows hash>.<chunk>``. Named by their content, chunks
    never change under a reader; a model name may hold characters a key may not."""
    return f"{demo_vectors_prefix(prompt_id, pool, model)}{sha256[:16]}.{chunk}"


def demo_vectors_prefix(prompt_id: str, pool: str, model: str) -> str:
    """What the keys of every set of rows of one pool and model start with."""
    return f"{prompt_id}.{pool}.{hashlib.sha256(model.encode()).hexdigest()[:16]}."


CONSUMED_SUBJECTS: tuple[str, ...] = tuple(s.value for s in Subject if s is not Subject.DEAD_LETTER)
"""What durable consumers and readers see: every event subject but dead letters, so a
consumer that dead-letters a message never reads it back."""


class Header(str, Enum):
    """Message headers promptlab sets or reads."""

    MSG_ID = "Nats-Msg-Id"
    EVENT_TYPE = "Promptlab-Event-Type"
    SCHEMA_VERSION = "Promptlab-Schema-Version"
    DEAD_LETTER_REASON = "Promptlab-Dead-Letter-Reason"
    ORIGINAL_SEQUENCE = "Promptlab-Original-Sequence"

    def __str__(self) -> str:
        return self.value


class Bucket(str, Enum):
    """JetStream key-value buckets. Keys are prompt ids unless said otherwise."""

    ROUTING = "promptlab_routing"
    STATS = "promptlab_stats"
    VARIANTS = "promptlab_variants"
    """Variants registered at run time (admin API, mutation), keyed ``<prompt>.<variant>``;
    the value is the VariantRegistered event. A sidecar that starts later learns them here."""
    PROMPTS = "promptlab_prompts"
    """Prompts defined at run time (admin API), keyed by prompt id; the value is the
    latest PromptRegistered event. Sidecars load them at start and watch for changes."""
    LEARNER = "promptlab_learner"
    """The active learner's :class:`~events.snapshots.LearnerStatus`, key ``status``: who
    holds the store's lease, and its counters (for the TUI header and ``/metrics``)."""
    ANALYTICS = "promptlab_analytics"
    """Analytics by period of each prompt (:class:`~events.snapshots.AnalyticsSnapshot`):
    recent hours and days per variant, with the most used variable values."""
    BREEDING = "promptlab_breeding"
    """Breeding's daily caps: mutants per prompt, calls and spend, keyed by UTC day
    (``2026-12-07``); entries expire after :data:`BREEDING_TTL_S`."""
    DEMOS = "promptlab_demos"
    """Demonstration pools the learner builds (:class:`~events.snapshots.DemoPoolSnapshot`),
    keyed ``<prompt>.<pool>`` (:func:`demo_pool_key`); every sidecar serves from them."""
    DEMO_VECTORS = "promptlab_demo_vectors"
    """Embeddings of the demonstrations of pools whose variants retrieve by embeddings,
    in chunks keyed by :func:`demo_vectors_key`; a pool's snapshot names its chunks
    (:class:`~events.snapshots.PoolVectors`). The learner keeps the chunks of a pool's
    last two sets of rows and deletes older ones."""
    ASSIGNMENTS = "promptlab_assignments"
    """Sticky routing: the variant each (prompt, subject) was assigned, keyed by a hash of
    both; entries expire after :data:`ASSIGNMENT_TTL_S`."""

    def __str__(self) -> str:
        return self.value


ASSIGNMENT_TTL_S = 30 * 86_400.0
"""How long a sticky assignment is kept after it was made (a subject back after that is
assigned afresh)."""
BREEDING_TTL_S = 7 * 86_400.0
"""How long a day's breeding book is kept (only today's is read)."""
BUCKET_TTL_S: dict[str, float] = {
    Bucket.ASSIGNMENTS.value: ASSIGNMENT_TTL_S,
    Bucket.BREEDING.value: BREEDING_TTL_S,
}
"""Buckets whose entries expire (seconds); the others keep their entries."""
