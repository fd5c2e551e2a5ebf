"""promptlab's prompt kernel: prompt files, variable validation, rendering, estimates.

Imports only ``events`` among promptlab's packages (plus jinja2 and pydantic); LiteLLM
is never imported here.
"""

from prompts.config import PromotionConfig, PromptsSettings
from prompts.estimate import cost_per_token, estimate_cost, estimate_tokens
from prompts.loader import (
    Problem,
    PromptFileError,
    load_prompt_dir,
    load_prompt_file,
    validate_files,
)
from prompts.render import Message, Renderer, RenderError
from prompts.spec import (
    ConstraintsSpec,
    EvaluationSpec,
    ExampleSpec,
    FormatSpec,
    PromptSpec,
    RewardSpec,
    RoutingSpec,
    SpecError,
    VariableSpec,
    VariantSpec,
)
from prompts.variables import VariableError, VariablesValidator, validate_variables

__all__ = [
    "ConstraintsSpec",
    "EvaluationSpec",
    "ExampleSpec",
    "FormatSpec",
    "Message",
    "Problem",
    "PromotionConfig",
    "PromptFileError",
    "PromptSpec",
    "PromptsSettings",
    "RenderError",
    "Renderer",
    "RewardSpec",
    "RoutingSpec",
    "SpecError",
    "VariableError",
    "VariableSpec",
    "VariablesValidator",
    "VariantSpec",
    "cost_per_token",
    "estimate_cost",
    "estimate_tokens",
    "load_prompt_dir",
    "load_prompt_file",
    "validate_files",
    "validate_variables",
]
