"""How each kind of event changes a batch's working set, one module per subject.

Handlers are plain functions of the :class:`~learner.projection.batch.Batch` and one
event at its stream sequence; they change memory only (reads before and writes after
the batch are :mod:`learner.projection.reads` and :mod:`learner.projection.writes`), read
no wall clock and draw no random numbers, so a replay in any batch sizes reaches the
same state. :mod:`~learner.projection.transaction` dispatches each event to one of them:

* :mod:`.executions`: a call's counters, and the feedback that arrived before it;
* :mod:`.feedback`: feedback judged into a reward, probation counters, test steps;
* :mod:`.registrations`: variants, their versions, prompts defined at run time;
* :mod:`.decisions`: promotions, rollbacks, retirements, pauses, lifecycle changes,
  operator commands, and the champion epochs (tests, probation) they start and end.

Imports run one way: executions use feedback and registrations, and those two use
decisions (a reward or a new version can end a probation, a registration starts tests).
"""
