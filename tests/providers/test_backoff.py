"""The one backoff rule (providers.backoff): doubling, capped, full jitter, Retry-After."""

from __future__ import annotations

import random

import pytest

from promptlab.learner.backoff import MAX_BACKOFF_S, learner_backoff
from promptlab.providers.backoff import Backoff, backoff_delay


def test_without_jitter_the_wait_doubles_up_to_the_cap() -> None:
    waits = [backoff_delay(n, first=0.25, cap=3.0) for n in range(6)]
    assert waits == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0]


def test_full_jitter_draws_below_the_doubled_wait_and_repeats_with_its_seed() -> None:
    draws = [backoff_delay(3, first=0.25, cap=8.0, rng=random.Random(7)) for _ in range(2)]
    assert draws[0] == draws[1]  # same seed, same draw
    rng = random.Random(1)
    waits = [backoff_delay(3, first=0.25, cap=8.0, rng=rng) for _ in range(2_000)]
    assert all(0 <= w <= 2.0 for w in waits)
    assert min(waits) < 0.1 and max(waits) > 1.9  # spread over the whole range
    assert sum(waits) / len(waits) == pytest.approx(1.0, abs=0.05)


def test_a_retry_after_is_a_floor_even_above_the_cap() -> None:
    assert backoff_delay(0, first=0.25, cap=8.0, rng=random.Random(1), at_least=30.0) == 30.0
    assert backoff_delay(2, first=0.25, cap=8.0, at_least=0.1) == 1.0  # shorter: no effect
    assert backoff_delay(2, first=0.25, cap=8.0, at_least=None) == 1.0


def test_a_long_outage_does_not_overflow() -> None:
    assert backoff_delay(10_000, first=0.05, cap=2.0) == 2.0


def test_a_loop_backoff_starts_over_after_a_success() -> None:
    backoff = Backoff(first=0.5, cap=10.0)
    assert [backoff.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_the_learner_waits_50_ms_doubling_up_to_2_s() -> None:
    backoff = learner_backoff()
    assert [backoff.next() for _ in range(7)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, MAX_BACKOFF_S]
