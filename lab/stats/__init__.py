"""Statistics of an offline report: intervals, paired tests, Holm, power.

Pure functions of numbers (no I/O; randomness only from explicit seeds), so a report is
a function of its trials. Significance comes from the paired tests, never from whether
two confidence intervals overlap.
"""

from promptlab.lab.stats.descriptive import percentile, sample_std
from promptlab.lab.stats.intervals import Interval, mean_interval, wilson
from promptlab.lab.stats.paired import PairedResult, TestChoice, holm, paired, smallest_p
from promptlab.lab.stats.power import POWER, cases_needed, detectable_difference, min_cases, power

__all__ = [
    "POWER",
    "Interval",
    "PairedResult",
    "TestChoice",
    "cases_needed",
    "detectable_difference",
    "holm",
    "mean_interval",
    "min_cases",
    "paired",
    "percentile",
    "power",
    "sample_std",
    "smallest_p",
    "wilson",
]
