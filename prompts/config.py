"""Settings shared by prompt files and the learner: promotion thresholds, render bounds."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from promptlab.prompts.limits import RenderLimits
from promptlab.prompts.routing import PROBATION_HOLDBACK


class PromotionConfig(BaseModel):
    """``[learner.promotion]`` globally, ``[promotion]`` in a prompt file to override."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    threshold: float = Field(default=0.95, gt=0.5, lt=1.0)
    """P(challenger beats champion) needed to promote."""
    min_samples: int = Field(default=200, ge=1)
    """Rewarded executions each arm needs before any decision."""
    min_lift: float = Field(default=0.0, ge=0.0)
    """The promotion test's null is ``lift <= min_lift`` (same-period lift of the
    challenger over the champion); retirement on futility tests ``lift >= min_lift``."""
    alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    """False discovery rate of promotions over every challenger a prompt ever tests
    (e-LOND over the same-period e-values)."""
    probation_samples: int | None = Field(default=None, ge=0)
    """Length of the probation after a promotion, in rewarded calls of the prompt (any
    variant). None (default): long enough to roll back a regression of
    ``probation_min_detectable`` with about 80% probability (about 9,400 calls with the
    defaults); 0: no probation."""
    probation_holdback: float = Field(default=PROBATION_HOLDBACK, ge=0.0, lt=0.5)
    """Share of traffic the previous champion keeps during a probation: the concurrent
    baseline the new champion is compared with (0: compare with the previous
    champion's record frozen at the promotion instead, which a drift can fool)."""
    probation_min_detectable: float = Field(default=0.05, gt=0.0, le=0.5)
    """The regression (in reward) a probation is powered to catch (sets its length)."""
    rollback_alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    """Level of the sequential test that declares a regression during probation."""
    retire_below: float = Field(default=0.01, ge=0.0, lt=0.5)
    """Without the reward history only: retire a challenger whose P(best) falls below
    this after ``min_samples``."""
    futility_alpha: float = Field(default=0.01, gt=0.0, lt=0.5)
    """Retire a challenger once the same-period test rejects ``lift >= min_lift`` at this
    level (the chance of retiring an arm that is really at least ``min_lift`` better)."""
    max_cost_usd: float | None = Field(default=None, gt=0)
    """Hard constraint: a challenger costing more per call on average is not promoted."""
    max_p95_latency_ms: float | None = Field(default=None, gt=0)
    """Hard constraint on the challenger's p95 latency."""
    max_error_rate: float | None = Field(default=0.05, ge=0, le=1)
    """Hard constraint on the challenger's error rate."""
    evaluation_window: str | None = None
    """Decide on recent data only (e.g. ``"1d"``, ``"6h"``); None uses all data."""

    @property
    def holds_back(self) -> bool:
        """True when a probation compares with a concurrent holdback of the previous
        champion (``probation_holdback > 0``)."""
        return self.probation_holdback > 0.0

    def merged(self, overrides: dict[str, object] | None) -> PromotionConfig:
        """This config with a prompt file's ``[promotion]`` keys applied on top."""
        if not overrides:
            return self
        return PromotionConfig.model_validate({**self.model_dump(), **overrides})


class PromptsSettings(BaseModel):
    """``[prompts]``: where prompt files live."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    dir: Path = Path("config/prompts")
    """Directory of ``*.toml`` prompt files, loaded at start."""
    render: RenderLimits = Field(default_factory=RenderLimits)
    """``[prompts.render]``: the bounds of every render of a template at call time
    (registration checks always use the defaults)."""
