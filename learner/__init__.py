"""promptlab: learner."""
