"""The small vocabularies events share with every package, each written once.

Other packages import these aliases instead of spelling the literals again, so a new
value (a routing strategy, a lifecycle state) is added in one place and type-checked
everywhere it flows.
"""

from __future__ import annotations

from typing import Literal

ExecutionStatus = Literal["ok", "error", "cancelled"]
"""How one call ended (``ExecutionCompleted.status``)."""

RoutingStrategy = Literal["thompson", "fixed", "sticky", "champion", "manual"]
"""How the router chose the variant of one call (``RoutingInfo.strategy``)."""

RoutingMode = Literal["thompson", "fixed"]
"""How a prompt file asks traffic to be split (``[routing] strategy``)."""

VariantOrigin = Literal["config", "api", "mutation"]
"""Where a variant came from: a prompt file, the admin API or LLM-driven mutation."""

VariantStatus = Literal["champion", "challenger", "probation", "holdback", "retired"]
"""A variant's role in the learner's statistics (snapshots, decisions). ``holdback`` is
the previous champion while its successor is on probation: it keeps a fixed share of
traffic, the concurrent baseline a rollback is judged against."""

VariantLifecycle = Literal["draft", "active", "deprecated", "archived"]
"""A variant's lifecycle as its author sets it: ``draft`` is validated and rendered but
never routed, ``active`` competes (champion or challenger), ``deprecated`` gets no new
traffic but keeps its statistics, ``archived`` is hidden from default lists."""

EventSource = Literal["live", "offline"]
"""Live traffic through the sidecar, or an offline experiment."""

DecisionReason = Literal["auto", "manual"]
"""Whether the learner decided by itself or carried out an operator's command."""

DEMONSTRATION = "demonstration"
"""The feedback name of a correction: a reviewer's ideal answer for a call
(``FeedbackReceived.text``). Never a reward; the only name whose value is text."""

ExampleSource = Literal["call", "correction"]
"""Where a production example's answer came from: the model's own answer to a captured
call, or a reviewer's correction of it (a ``demonstration`` feedback)."""

__all__ = [
    "DEMONSTRATION",
    "DecisionReason",
    "EventSource",
    "ExampleSource",
    "ExecutionStatus",
    "RoutingMode",
    "RoutingStrategy",
    "VariantLifecycle",
    "VariantOrigin",
    "VariantStatus",
]
