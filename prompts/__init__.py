"""promptlab's prompt kernel: prompt files, variable validation, rendering, estimates.

Imports only ``events`` among promptlab's packages (plus jinja2 and pydantic); LiteLLM
is never imported here. Every exception it raises derives from :class:`PromptError`.
"""

from promptlab.prompts.analytics import MAX_VALUE_CHARS, RecordedValue, ValuePicker
from promptlab.prompts.config import PromotionConfig, PromptsSettings
from promptlab.prompts.definition import (
    PromptChanges,
    compare_prompts,
    definition_version,
    prompt_data,
    prompt_event,
    spec_from_event,
)
from promptlab.prompts.errors import (
    FeedbackValueError,
    PromptError,
    RenderError,
    SpecError,
    TemplateProblem,
    VariableError,
)
from promptlab.prompts.estimate import cost_per_token, estimate_cost, estimate_tokens
from promptlab.prompts.feedback import normalise_feedback
from promptlab.prompts.limits import DEFAULT_LIMITS, RenderLimitError, RenderLimits
from promptlab.prompts.loader import (
    Problem,
    PromptFileError,
    check_prompt_data,
    load_prompt_dir,
    load_prompt_file,
    validate_files,
)
from promptlab.prompts.params import ALLOWED_PARAMS
from promptlab.prompts.render import Message, Renderer
from promptlab.prompts.spec import (
    ConstraintsSpec,
    EvaluationSpec,
    ExampleSpec,
    LearningSpec,
    PromptSpec,
    RewardSpec,
    RoutingSpec,
    VariantSpec,
    validate_variables,
)
from promptlab.prompts.variable_spec import FormatSpec, VariableSpec
from promptlab.prompts.variables import VariablesValidator

__all__ = [
    "ALLOWED_PARAMS",
    "DEFAULT_LIMITS",
    "MAX_VALUE_CHARS",
    "ConstraintsSpec",
    "EvaluationSpec",
    "ExampleSpec",
    "FeedbackValueError",
    "FormatSpec",
    "LearningSpec",
    "Message",
    "Problem",
    "PromotionConfig",
    "PromptChanges",
    "PromptError",
    "PromptFileError",
    "PromptSpec",
    "PromptsSettings",
    "RecordedValue",
    "RenderError",
    "RenderLimitError",
    "RenderLimits",
    "Renderer",
    "RewardSpec",
    "RoutingSpec",
    "SpecError",
    "TemplateProblem",
    "ValuePicker",
    "VariableError",
    "VariableSpec",
    "VariablesValidator",
    "VariantSpec",
    "check_prompt_data",
    "compare_prompts",
    "cost_per_token",
    "definition_version",
    "estimate_cost",
    "estimate_tokens",
    "load_prompt_dir",
    "load_prompt_file",
    "normalise_feedback",
    "prompt_data",
    "prompt_event",
    "spec_from_event",
    "validate_files",
    "validate_variables",
]
