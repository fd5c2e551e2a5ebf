"""``[evolution]`` of an experiment file: the mutator and how the search runs.

```toml
[evolution]
mutator = "openai/gpt-4o-mini"      # provider/model that writes the mutants
strategies = ["rephrase", "add_structure", "reflect", "crossover"]   # default: all
search = "genetic"                  # genetic | hill_climbing | annealing | pareto
population = 4
generations = 5
```

``promptlab evolve`` flags override each key.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from promptlab.lab.mutation.operators import OPERATORS, Operator
from promptlab.lab.search.diversity import DEFAULT_THRESHOLD
from promptlab.lab.search.strategies import SearchName


class EvolutionSpec(BaseModel):
    """``[evolution]``: every key has a default but ``mutator``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mutator: str | None = None
    """``provider/model`` asked for mutants (required to evolve; ``--mutator`` overrides)."""
    strategies: list[Operator] = Field(default_factory=lambda: list(OPERATORS))
    """Mutation operators to draw from (``crossover`` needs two parents)."""
    search: SearchName = "genetic"
    population: int = Field(default=4, ge=1, le=64)
    generations: int = Field(default=5, ge=0, le=1000)
    budget_usd: float | None = Field(default=None, gt=0)
    """Most USD the whole search spends (mutator, model and judge calls); default: [budget]."""
    max_calls: int | None = Field(default=None, ge=1)
    """Most calls the whole search makes; default: the experiment's [budget] max_calls."""
    seed: int = 0
    temperature: float = Field(default=0.9, ge=0.0, le=2.0)
    """The mutator's sampling temperature."""
    json_mode: bool = True
    """Ask for ``response_format: json_object`` (turn off where the provider rejects it)."""
    diversity: float = Field(default=DEFAULT_THRESHOLD, gt=0.0, le=1.0)
    """Similarity of normalised text above which a mutant is dropped as a near-duplicate."""
    instructions: str | None = None
    """A mutator instructions file of your own (default: config/evolution/mutator.toml)."""
    best: int = Field(default=3, ge=1)
    """How many of the best variants to report (and ``--register``)."""

    @field_validator("mutator")
    @classmethod
    def _model_name(cls, value: str | None) -> str | None:
        if value is not None and "/" not in value.strip("/"):
            raise ValueError(f"expected 'provider/model', got {value!r}")
        return value

    @field_validator("strategies")
    @classmethod
    def _some(cls, value: list[Operator]) -> list[Operator]:
        if not value:
            raise ValueError("at least one strategy")
        return value

    def instructions_path(self, base: Path | None) -> Path | None:
        if self.instructions is None:
            return None
        path = Path(self.instructions)
        return path if path.is_absolute() or base is None else base / path
