"""Router: Thompson shares under the exploration cap, fixed weights, sticky, paused."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import summarize_prompt

from promptlab.events.snapshots import ArmPosterior, RoutingSnapshot
from promptlab.prompts import PromptSpec
from promptlab.prompts.routing import floor_shares
from promptlab.sidecar.router import Router

DRAWS = 20_000


def three_arms(**routing: object) -> PromptSpec:
    spec = summarize_prompt(**routing)
    return spec.with_variant(spec.variant("v2").model_copy(update={"name": "v3"}))


def snapshot(
    version: int = 1,
    *,
    champion: str = "v1",
    cap: float = 0.2,
    paused: bool = False,
    **arms: tuple[float, float],
) -> RoutingSnapshot:
    return RoutingSnapshot(
        prompt_id="summarize",
        version=version,
        champion=champion,
        exploration_cap=cap,
        paused=paused,
        arms=[ArmPosterior(variant=name, alpha=a, beta=b) for name, (a, b) in arms.items()],
    )


def shares(router: Router, n: int = DRAWS, subject: str | None = None) -> dict[str, float]:
    counts = Counter(router.decide("summarize", subject).variant for _ in range(n))
    return {k: v / n for k, v in counts.items()}


def test_priors_respect_the_exploration_cap() -> None:
    router = Router([three_arms(sticky=False)], seed=1)
    got = shares(router)
    assert got["v1"] >= 0.8 - 0.015
    assert abs(got["v2"] - 0.1) < 0.015 and abs(got["v3"] - 0.1) < 0.015


def test_a_confident_posterior_explores_less_than_the_cap_but_keeps_the_floor() -> None:
    router = Router([three_arms(sticky=False)], seed=1)
    router.apply_snapshot(snapshot(v1=(900, 100), v2=(100, 900), v3=(850, 150)))
    exact = router.shares("summarize")
    # A hopeless challenger keeps the exploration floor (0.05, and 0.05 * 2 fits in the
    # 0.2 cap): its logged probability is never zero.
    assert exact["v2"] == pytest.approx(0.05) and exact["v3"] == pytest.approx(0.05, abs=0.01)
    got = shares(router)
    assert got["v1"] > 0.88 and abs(got["v2"] - 0.05) < 0.01


def test_floor_shares_fit_the_floors_in_the_cap() -> None:
    assert floor_shares([0.8, 0.2, 0.0], 0, 0.2, 0.05) == pytest.approx([0.8, 0.15, 0.05])
    # Ten challengers: the floor shrinks to cap / 20 (half the cap for floors, half for
    # Thompson) and the champion keeps at least 1 - cap.
    got = floor_shares([0.9, 0.1] + [0.0] * 9, 0, 0.2, 0.05)
    assert got[0] == pytest.approx(0.81) and min(got[1:]) == pytest.approx(0.01)
    assert got[1] == pytest.approx(0.1)  # the one Thompson favours keeps its edge
    assert floor_shares([1.0, 0.0], 0, 0.2, 0.0) == [1.0, 0.0]


def test_a_better_challenger_is_still_capped() -> None:
    router = Router([three_arms(sticky=False)], seed=1)
    router.apply_snapshot(snapshot(cap=0.3, v1=(100, 900), v2=(900, 100), v3=(100, 900)))
    got = shares(router)
    assert abs(got["v1"] - 0.7) < 0.015 and abs(got["v2"] - 0.25) < 0.015  # v3 keeps 0.05


def test_fixed_weights_are_followed() -> None:
    router = Router(
        [summarize_prompt(strategy="fixed", weights={"v1": 3.0, "v2": 1.0}, sticky=False)], seed=2
    )
    got = shares(router)
    assert abs(got["v1"] - 0.75) < 0.015 and abs(got["v2"] - 0.25) < 0.015


def test_sticky_subjects_move_only_as_much_as_the_shares_shift() -> None:
    router = Router([three_arms()], seed=3)
    first = {f"user-{i}": router.decide("summarize", f"user-{i}").variant for i in range(4000)}
    assert all(router.decide("summarize", s).variant == v for s, v in first.items())
    counts = Counter(first.values())
    assert 0.77 < counts["v1"] / 4000 < 0.83  # Thompson shares at the priors: champion 1 - cap
    before = router.shares("summarize")
    # v2 now looks better: it gains share from v3 (v1 keeps 1 - cap).
    router.apply_snapshot(snapshot(v1=(50, 60), v2=(70, 30), v3=(1, 1)))
    after = router.shares("summarize")
    assert after["v2"] > before["v2"] and after["v3"] < before["v3"]
    second = {s: router.decide("summarize", s) for s in first}
    # Nobody leaves a variant that did not lose share; v3's subjects leave in the
    # proportion it lost, and the returning subjects now follow the new shares.
    assert all(second[s].variant == v for s, v in first.items() if v != "v3")
    on_v3 = [s for s, v in first.items() if v == "v3"]
    stayed = sum(second[s].variant == "v3" for s in on_v3) / len(on_v3)
    assert abs(stayed - after["v3"] / before["v3"]) < 0.06
    moved = Counter(d.variant for d in second.values())
    for v in ("v1", "v2", "v3"):
        assert abs(moved[v] / 4000 - after[v]) < 0.02, v
    # The probability logged is the variant's share now.
    assert all(d.probability == pytest.approx(after[d.variant]) for d in second.values())
    # A fresh router (another replica) with the same assignments decides alike.
    other = Router([three_arms()], seed=99)
    assert all(other.decide("summarize", s).variant == v for s, v in first.items())


def test_the_holdback_keeps_its_share_during_a_probation() -> None:
    router = Router([summarize_prompt(sticky=False)], seed=7)
    held = snapshot(2, champion="v2", v1=(1, 1), v2=(1, 1)).model_copy(
        update={
            "holdback_share": 0.2,
            "arms": [
                ArmPosterior(variant="v1", alpha=1, beta=1, status="holdback"),
                ArmPosterior(variant="v2", alpha=1, beta=1, status="probation"),
            ],
        }
    )
    router.apply_snapshot(held)
    assert router.shares("summarize") == {"v2": pytest.approx(0.8), "v1": pytest.approx(0.2)}
    got = shares(router)
    assert abs(got["v1"] - 0.2) < 0.015
    route = router.decide("summarize")
    assert route.routing_info().strategy == "thompson"  # logged with its probability
    assert route.probability == pytest.approx(0.8 if route.variant == "v2" else 0.2)
    # With a third arm the strategy splits the rest: v3 within the cap of 0.8.
    router = Router([three_arms(sticky=False)], seed=8)
    router.apply_snapshot(
        held.model_copy(update={"arms": [*held.arms, ArmPosterior(variant="v3", alpha=1, beta=1)]})
    )
    exact = router.shares("summarize")
    assert exact["v1"] == pytest.approx(0.2)
    assert exact["v2"] == pytest.approx(0.8 * 0.8) and exact["v3"] == pytest.approx(0.8 * 0.2)
    # Paused: champion only, holdback or not.
    router.apply_snapshot(held.model_copy(update={"version": 3, "paused": True}))
    paused = router.shares("summarize")
    assert paused["v2"] == 1.0 and paused.get("v1", 0.0) == 0.0


def test_paused_means_champion_only() -> None:
    router = Router([three_arms()], seed=4)
    router.apply_snapshot(snapshot(paused=True, champion="v2", v1=(1, 1), v2=(1, 1), v3=(1, 1)))
    assert shares(router, 2000) == {"v2": 1.0}
    assert shares(router, 2000, subject="bob") == {"v2": 1.0}
    assert router.decide("summarize").routing_info().strategy == "champion"


def test_snapshot_update_changes_routing_and_old_snapshots_are_ignored() -> None:
    router = Router([summarize_prompt(sticky=False)], seed=5)
    assert router.apply_snapshot(snapshot(2, champion="v2", cap=0.0, v1=(1, 1), v2=(1, 1)))
    assert shares(router, 2000) == {"v2": 1.0}
    assert not router.apply_snapshot(snapshot(1, champion="v1", cap=0.0, v1=(1, 1), v2=(1, 1)))
    assert shares(router, 2000) == {"v2": 1.0}
    decision = router.decide("summarize")
    assert decision.snapshot_version == 2 and decision.probability == 1.0


def test_retired_arms_get_no_traffic() -> None:
    router = Router([three_arms(sticky=False)], seed=6)
    snap = snapshot(v1=(1, 1), v2=(1, 1), v3=(1, 1))
    snap = snap.model_copy(
        update={
            "arms": [*snap.arms[:2], ArmPosterior(variant="v3", alpha=1, beta=1, status="retired")]
        }
    )
    router.apply_snapshot(snap)
    assert "v3" not in shares(router)


def test_only_active_variants_are_routed() -> None:
    spec = three_arms(sticky=False)
    spec = spec.with_variant(spec.variant("v2").model_copy(update={"status": "draft"}))
    spec = spec.with_variant(spec.variant("v3").model_copy(update={"status": "deprecated"}))
    router = Router([spec], seed=7)
    router.apply_snapshot(snapshot(v1=(1, 1), v2=(900, 1), v3=(900, 1)))
    assert shares(router, 2000) == {"v1": 1.0}
    assert shares(router, 2000, subject="ann") == {"v1": 1.0}
