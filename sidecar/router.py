"""The router: which variant of a prompt serves this call.

Per prompt, a :class:`Router` keeps an immutable routing table built from the prompt
file and the latest :class:`~events.snapshots.RoutingSnapshot` (before any snapshot:
Beta(1, 1) priors and the champion from the prompt file). Building a table is where the
work happens; a decision is one ``random()`` and a bisect over precomputed cumulative
shares, returning a prebuilt :class:`Route` (well under the 20 us budget).

Strategies
----------
``thompson``
    Thompson sampling is probability matching: a challenger runs with the posterior
    probability that it is the best arm. Those probabilities are estimated once per
    snapshot by Monte Carlo over the Beta posteriors (seeded by prompt id and snapshot
    version, so every replica computes the same table). The challengers' total share is
    then clipped to ``exploration_cap`` so the champion always gets at least
    ``1 - exploration_cap`` of the traffic, and raised to ``exploration_floor`` (lowered
    so the challengers' floors fit in the cap) so every live arm keeps a known non-zero
    probability: the learner's allocation-aware test divides by it.
``fixed``
    Classic A/B: the prompt file's ``weights`` (missing variants weigh 0; no weights
    means an equal split). The exploration cap does not apply: the weights are the plan.
``sticky`` (``routing.sticky = true`` and the call names a subject)
    A subject seen for the first time is assigned by the *current* table (Thompson
    shares or fixed weights), at a point of [0, 1) hashed from prompt and subject, so
    replicas with the same snapshot assign alike; the assignment is remembered
    (:mod:`sidecar.assignments`: a local cache shared through a KV bucket). A returning
    subject keeps its variant unless that variant's share fell since the assignment,
    and then only as many subjects move (to the variants that gained) as the shift
    requires: a subject's call is on a variant with the variant's *current* share,
    which is the probability logged. Traffic therefore moves toward a better variant
    for new and returning subjects alike, unlike a stable split.
holdback (during a probation)
    The previous champion (snapshot status ``holdback``) gets exactly the snapshot's
    ``holdback_share``; the strategy above splits the rest. It is the concurrent
    baseline the learner judges the new champion against.
paused
    When the snapshot says exploration is paused, every call gets the champion.

Retired arms (snapshot status ``retired``) get no traffic. Arms the snapshot names but
the prompt set does not know cannot be rendered and are ignored; variants the snapshot
does not name yet (just registered) start from the Beta(1, 1) prior.
"""

from __future__ import annotations

import hashlib
import random
import zlib
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from promptlab.events.models import RoutingInfo
from promptlab.events.snapshots import RoutingSnapshot
from promptlab.prompts.routing import (
    EXPLORATION_CAP,
    EXPLORATION_FLOOR,
    cap_exploration,
    floor_shares,
    with_holdback,
)
from promptlab.sidecar.assignments import Assignment, Assignments, assignment_key

_TWO_64 = 18446744073709551616.0

MONTE_CARLO_DRAWS = 8192
"""Posterior draws per table build; the standard error of a share is <= 0.6 points."""


class RoutingSpecLike(Protocol):
    strategy: str
    exploration_cap: float
    weights: Mapping[str, float]
    sticky: bool


class PromptLike(Protocol):
    """What the router reads of a prompt (``prompts.PromptSpec`` satisfies it)."""

    @property
    def id(self) -> str: ...

    @property
    def routing(self) -> Any: ...

    @property
    def variants(self) -> Sequence[Any]: ...


@dataclass(frozen=True, slots=True)
class Route:
    """One routing outcome; prebuilt per arm, shared by every call that gets it."""

    variant: str
    champion: str
    probability: float
    exploration: bool
    strategy: str
    snapshot_version: int
    info: RoutingInfo
    """The event's RoutingInfo, built once (it is frozen)."""

    def routing_info(self, fallback_from: str | None = None) -> RoutingInfo:
        if fallback_from is None:
            return self.info
        return self.info.model_copy(update={"fallback_from": fallback_from})


@dataclass(frozen=True, slots=True)
class _Table:
    cumulative: tuple[float, ...]
    decisions: tuple[Route, ...]
    sticky: bool
    sticky_decisions: tuple[Route, ...]
    """``decisions`` again with strategy ``sticky`` (what a new subject is assigned)."""
    sticky_routes: Mapping[str, Route]
    """``sticky_decisions`` by variant (what a returning subject gets)."""
    live_shares: Mapping[str, float]
    """The shares of the arms with traffic (what an assignment remembers)."""
    champion: Route
    shares: Mapping[str, float]
    live: frozenset[str]
    """Arms a returning subject may keep (champion only while paused)."""
    version: int


def champion_name(prompt: Any) -> str:
    """The prompt file's champion: ``prompt.champion`` (a variant or a name), else the
    variant flagged ``champion``, else the first."""
    champ = getattr(prompt, "champion", None)
    if isinstance(champ, str):
        return champ
    if champ is not None and getattr(champ, "name", None):
        return str(champ.name)
    for variant in prompt.variants:
        if getattr(variant, "champion", False):
            return str(variant.name)
    return str(prompt.variants[0].name)


def _make_decision(variant: str, champion: str, p: float, strategy: str, version: int) -> Route:
    exploration = variant != champion
    info = RoutingInfo(
        strategy=strategy,  # type: ignore[arg-type]  # one of the router's own strategy names
        probability=min(1.0, max(0.0, p)),
        exploration=exploration,
        snapshot_version=version,
    )
    return Route(variant, champion, p, exploration, strategy, version, info)


def _cumulate(shares: Sequence[float]) -> tuple[float, ...]:
    total = sum(shares)
    acc = 0.0
    out = []
    for s in shares:
        acc += s / total
        out.append(acc)
    out[-1] = 1.0  # float error must never leave a point of [0, 1) uncovered
    return tuple(out)


def thompson_shares(
    alphas: Sequence[float], betas: Sequence[float], seed: int, draws: int = MONTE_CARLO_DRAWS
) -> list[float]:
    """P(arm is best) under independent Beta posteriors, by seeded Monte Carlo."""
    k = len(alphas)
    if k == 1:
        return [1.0]
    rng = np.random.default_rng(seed)
    samples = rng.beta(
        np.asarray(alphas, dtype=float)[:, None],
        np.asarray(betas, dtype=float)[:, None],
        size=(k, draws),
    )
    counts = np.bincount(samples.argmax(axis=0), minlength=k)
    return [float(c) / draws for c in counts]


def build_table(prompt: PromptLike, snapshot: RoutingSnapshot | None) -> _Table:
    """The routing table of one prompt under one snapshot (or the config priors)."""
    # Only active variants are routed: a draft, deprecated or archived one gets no traffic.
    # The learner's lifecycle (a carried-out command, in the snapshot) overrides the file's
    # when the snapshot states it (a learner that predates lifecycles leaves it out).
    lifecycle = {str(v.name): str(getattr(v, "status", "active")) for v in prompt.variants}
    if snapshot is not None:
        lifecycle.update(
            {
                a.variant: a.lifecycle
                for a in snapshot.arms
                if a.variant in lifecycle and "lifecycle" in a.model_fields_set
            }
        )
    names = [name for name, status in lifecycle.items() if status == "active"]
    spec = prompt.routing
    strategy = str(getattr(spec, "strategy", "thompson"))
    cap = float(getattr(spec, "exploration_cap", EXPLORATION_CAP))
    sticky = bool(getattr(spec, "sticky", False))
    weights: Mapping[str, float] = getattr(spec, "weights", None) or {}
    champion = champion_name(prompt)
    version = 0
    paused = False
    posteriors: dict[str, tuple[float, float]] = {}
    retired: set[str] = set()
    holdback: str | None = None
    if snapshot is not None:
        version = snapshot.version
        paused = snapshot.paused
        cap = snapshot.exploration_cap
        if snapshot.champion in names:
            champion = snapshot.champion
        for arm in snapshot.arms:
            posteriors[arm.variant] = (arm.alpha, arm.beta)
            if arm.status == "retired" and arm.variant != champion:
                retired.add(arm.variant)
            elif (
                arm.status == "holdback"
                and arm.variant in names
                and arm.variant != champion
                and snapshot.holdback_share > 0
            ):
                holdback = arm.variant
    arms = [n for n in names if n not in retired and n != holdback]
    if champion not in arms:
        arms.insert(0, champion)
    ci = arms.index(champion)

    if paused or (len(arms) == 1 and holdback is None):
        shares = [1.0 if i == ci else 0.0 for i in range(len(arms))]
        kind = "champion"
    elif strategy == "fixed":
        raw = [max(0.0, float(weights.get(n, 0.0))) for n in arms] if weights else [1.0] * len(arms)
        if sum(raw) <= 0:
            raw = [1.0 if i == ci else 0.0 for i in range(len(arms))]
        total = sum(raw)
        shares = [w / total for w in raw]
        kind = "fixed"
    else:
        alphas = [posteriors.get(n, (1.0, 1.0))[0] for n in arms]
        betas = [posteriors.get(n, (1.0, 1.0))[1] for n in arms]
        seed = zlib.crc32(f"{prompt.id}:{version}:{','.join(arms)}".encode())
        floor = float(getattr(spec, "exploration_floor", EXPLORATION_FLOOR))
        shares = floor_shares(
            cap_exploration(thompson_shares(alphas, betas, seed), ci, cap), ci, cap, floor
        )
        kind = "thompson"
    if holdback is not None and not paused and snapshot is not None:
        # The previous champion's fixed share during a probation; the rest as above.
        shares = with_holdback(shares, snapshot.holdback_share)
        arms.append(holdback)

    # Arms with no share stay out of the draw tables (a zero-width slot is never hit,
    # but keeping them out makes that obvious).
    live = [i for i, s in enumerate(shares) if s > 0]
    decisions = tuple(_make_decision(arms[i], champion, shares[i], kind, version) for i in live)
    sticky_decisions = tuple(
        _make_decision(arms[i], champion, shares[i], "sticky", version) for i in live
    )
    champion_decision = (
        next(d for d in decisions if d.variant == champion)
        if champion in [arms[i] for i in live]
        else _make_decision(champion, champion, 1.0, "champion", version)
    )
    return _Table(
        cumulative=_cumulate([shares[i] for i in live]),
        decisions=decisions,
        sticky=sticky and kind != "champion",
        sticky_decisions=sticky_decisions,
        sticky_routes=MappingProxyType({d.variant: d for d in sticky_decisions}),
        live_shares=MappingProxyType({arms[i]: shares[i] for i in live}),
        champion=champion_decision,
        shares={arms[i]: shares[i] for i in range(len(arms))},
        live=frozenset([champion] if kind == "champion" else arms),
        version=version,
    )


class Router:
    """Routing tables of every live prompt; swapped whole, never mutated in place."""

    def __init__(
        self,
        prompts: Iterable[PromptLike] = (),
        *,
        seed: int | None = None,
        assignments: Assignments | None = None,
    ) -> None:
        self.assignments = assignments if assignments is not None else Assignments()
        self._rng = random.Random(seed)
        self._random = self._rng.random
        self._prompts: dict[str, PromptLike] = {}
        self._snapshots: dict[str, RoutingSnapshot] = {}
        self._tables: dict[str, _Table] = {}
        for prompt in prompts:
            self.update_prompt(prompt)

    def update_prompt(self, prompt: PromptLike) -> None:
        """A prompt was loaded or gained a variant: rebuild its table."""
        self._prompts[prompt.id] = prompt
        self._tables[prompt.id] = build_table(prompt, self._snapshots.get(prompt.id))

    def apply_snapshot(self, snapshot: RoutingSnapshot) -> bool:
        """Route by ``snapshot`` from now on; False when it is older than the current one."""
        current = self._snapshots.get(snapshot.prompt_id)
        if current is not None and snapshot.version < current.version:
            return False
        self._snapshots[snapshot.prompt_id] = snapshot
        prompt = self._prompts.get(snapshot.prompt_id)
        if prompt is not None:
            self._tables[prompt.id] = build_table(prompt, snapshot)
        return True

    def snapshot(self, prompt_id: str) -> RoutingSnapshot | None:
        return self._snapshots.get(prompt_id)

    def shares(self, prompt_id: str) -> Mapping[str, float]:
        """Current traffic share of each variant (for the admin API)."""
        return self._tables[prompt_id].shares

    def decide(self, prompt_id: str, subject: str | None = None) -> Route:
        """Pick the variant of one call. ``KeyError`` for an unknown prompt."""
        table = self._tables[prompt_id]
        if subject is not None and table.sticky:
            return self._sticky(prompt_id, subject, table)
        return table.decisions[bisect_right(table.cumulative, self._random())]

    def _sticky(self, prompt_id: str, subject: str, table: _Table) -> Route:
        key = assignment_key(prompt_id, subject)
        kept = self.assignments.get(key)
        if kept is not None:
            route = table.sticky_routes.get(kept.variant)
            if route is not None and kept.keeps(route.probability):
                return route
            # Its variant lost share (or all of it): move to one that gained.
            grew = [
                (v, max(0.0, p - kept.shares.get(v, 0.0))) for v, p in table.live_shares.items()
            ]
            if sum(g for _, g in grew) <= 0.0:
                grew = list(table.live_shares.items())
            pick, point = _points(key, table.version)
            acc, total = 0.0, sum(g for _, g in grew)
            variant = grew[-1][0]
            for v, g in grew:
                acc += g / total
                if pick < acc:
                    variant = v
                    break
            decision = table.sticky_routes[variant]
        else:
            # A new subject: assigned by the current table at a point every replica
            # computes alike.
            decision = table.sticky_decisions[
                bisect_right(table.cumulative, int(key[:16], 16) / _TWO_64)
            ]
            point = _points(key, table.version)[1]
        self.assignments.put(
            key, Assignment(decision.variant, table.live_shares, table.version, point)
        )
        return decision

    def champion(self, prompt_id: str) -> Route:
        """The champion's decision, for the retry after a challenger failed."""
        return self._tables[prompt_id].champion


def _points(key: str, version: int) -> tuple[float, float]:
    """Two points of [0, 1) for a subject's (re)assignment under one table version: where
    it moves, and its ``u`` for the next (every replica hashes the same)."""
    digest = hashlib.blake2b(f"{key}:{version}".encode(), digest_size=16).digest()
    return (
        int.from_bytes(digest[:8], "big") / _TWO_64,
        int.from_bytes(digest[8:], "big") / _TWO_64,
    )
