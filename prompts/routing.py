"""The routing math, once: how the exploration cap, the floor and the holdback shape the
shares the sidecar routes by, and the least share the learner's tests may count on.

The sidecar's router (:mod:`sidecar.router`) applies :func:`cap_exploration`,
:func:`floor_shares` and :func:`with_holdback` to its Thompson shares; the learner bounds
each same-period test step by :func:`least_share`; the scenario simulator in ``bench/``
vectorises the same rules and is checked against these functions call by call
(``tests/learner/test_scenarios.py``). Pure functions of numbers: no I/O, no numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

EXPLORATION_CAP = 0.2
"""Default ``[routing] exploration_cap``: at most this share of traffic goes to challengers."""
EXPLORATION_FLOOR = 0.05
"""Default ``[routing] exploration_floor``: the least share of a live arm under Thompson."""
PROBATION_HOLDBACK = 0.2
"""Default ``probation_holdback``: the previous champion's share during a probation."""


def challenger_floor(floor: float, cap: float, challengers: int) -> float:
    """The share every live challenger is raised to: ``min(floor, cap / (2 k))`` with ``k``
    challengers, so that their floors fit in the cap; 0 when there is none to apply (no
    challenger, no floor or no exploration)."""
    if challengers <= 0 or floor <= 0.0 or cap <= 0.0:
        return 0.0
    return min(floor, cap / (2 * challengers))


def least_share(floor: float, cap: float, challengers: int) -> float:
    """The smallest routing probability a live arm can have, for the learner's bound on
    a test step: :func:`challenger_floor` when challengers explore (never below 1e-6, as a
    floor of 0 gives no bound), the champion's ``floor`` otherwise (1 without one)."""
    if challengers <= 0 or cap <= 0.0:
        return floor if floor > 0.0 else 1.0
    return max(1e-6, challenger_floor(floor, cap, challengers))


def cap_exploration(shares: Sequence[float], champion_index: int, cap: float) -> list[float]:
    """Scale the challengers down so that together they get at most ``cap``."""
    out = list(shares)
    challengers = 1.0 - out[champion_index]
    if challengers > cap:
        scale = cap / challengers if challengers > 0 else 0.0
        out = [s * scale for s in out]
        out[champion_index] = 1.0 - cap
    return out


def floor_shares(
    shares: Sequence[float], champion_index: int, cap: float, floor: float
) -> list[float]:
    """Raise every challenger to at least :func:`challenger_floor`, taking the difference
    from the challengers above it and then from the champion; the challengers' total
    stays within ``max(cap, their total before)``."""
    k = len(shares) - 1
    f = challenger_floor(floor, cap, k)
    if k <= 0 or floor <= 0:
        return list(shares)
    out = list(shares)
    chal = [i for i in range(len(out)) if i != champion_index]
    raised = {i: max(out[i], f) for i in chal}
    total = sum(raised.values())
    limit = max(cap, sum(out[i] for i in chal))
    if total > limit:
        above = sum(raised[i] - f for i in chal)
        scale = (limit - k * f) / above if above > 0 else 0.0
        raised = {i: f + (raised[i] - f) * scale for i in chal}
    for i in chal:
        out[i] = raised[i]
    out[champion_index] = max(0.0, 1.0 - sum(raised.values()))
    return out


def with_holdback(shares: Sequence[float], holdback: float) -> list[float]:
    """The shares with the previous champion's fixed ``holdback`` appended (during a
    probation); the others keep their proportions of the rest."""
    return [s * (1.0 - holdback) for s in shares] + [holdback]
