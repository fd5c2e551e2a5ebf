"""The exactly-once projection: stream events into SQL, one transaction per batch.

* :mod:`.transaction`: :class:`~learner.projection.transaction.Projection`, its position,
  loaded state and per-prompt settings, and the frame of one batch's transaction;
* :mod:`.batch`: the working set of one transaction and the changes every handler makes;
* :mod:`.reads` and :mod:`.writes`: what a batch loads before it applies events, and
  what it writes after (with the new position);
* :mod:`.handlers`: how each kind of event changes the working set (executions,
  feedback, registrations, decisions and commands);
* the rules and rows they use: :mod:`.state` (in-memory mirrors of the rows),
  :mod:`.reward` (feedback into a reward), :mod:`.evidence` (same-period tests, stepped
  call by call), :mod:`.commands` (operator commands judged in stream order),
  :mod:`.decisions` (the decision log's rows), :mod:`.definitions` (prompts defined at run
  time), :mod:`.variables` (counts of recorded variable values).
"""
