"""`promptlab prompts render ID [VARIANT] --var k=v ... [--json]`: what a call would send.

Renders one variant of a prompt file (drafts included: a draft is validated and
rendered here, never routed) with the given variables through the prompt kernel's
sandboxed :class:`~prompts.Renderer`, the one the sidecar uses, and prints the messages
(system, user), the model and params, and the estimated input tokens and cost. Values
are checked by the prompt's variable rules first; every problem is listed and the
command exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from promptlab.cli import add_config_option
from promptlab.prompts import (
    DEFAULT_LIMITS,
    PromptFileError,
    PromptSpec,
    Renderer,
    RenderError,
    RenderLimits,
    VariableSpec,
    cost_per_token,
    estimate_tokens,
    load_prompt_dir,
)

if TYPE_CHECKING:
    from promptlab.settings import Settings

EXIT_VALUES = 2
"""Exit code for variables that break the prompt's rules (or a template that fails)."""


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``prompts render``."""
    render = commands.add_parser(
        "render",
        help="render a variant (drafts too) with variables: messages, model, tokens, cost",
        description="Render a variant of a prompt file with --var NAME=VALUE pairs through "
        "the sidecar's sandboxed renderer and print what would be sent. Values of non-string "
        "variables are read as JSON (--var n=3, --var tags='[\"a\"]'). Exit 2 when a value "
        "breaks a rule (every problem is listed), 1 for an unknown prompt or variant.",
    )
    render.add_argument("id", help="prompt id")
    render.add_argument("variant", nargs="?", help="variant name (default: the file's champion)")
    render.add_argument(
        "--var",
        dest="variables",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a variable's value (repeat for each variable)",
    )
    render.add_argument("--json", action="store_true", help="print as JSON")
    add_config_option(render)
    render.set_defaults(handler=render_command)


def parse_values(
    pairs: list[str], declared: tuple[VariableSpec, ...]
) -> tuple[dict[str, Any], list[str]]:
    """``NAME=VALUE`` pairs as values (JSON for variables not declared as strings), and
    the pairs that are not ``NAME=VALUE``."""
    types = {v.name: v.type for v in declared}
    values: dict[str, Any] = {}
    bad = []
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            bad.append(pair)
            continue
        value: Any = text
        if types.get(name, "string") != "string":
            try:
                value = json.loads(text)
            except ValueError:
                value = text  # the rule check says what is wrong with it
        values[name] = value
    return values, bad


def rendering(
    prompt: PromptSpec,
    variant_name: str,
    values: dict[str, Any],
    limits: RenderLimits = DEFAULT_LIMITS,
) -> dict[str, Any]:
    """The rendered call as data (what ``--json`` prints), within the sidecar's render
    bounds (``[prompts.render]``); raises RenderError."""
    variant = prompt.variant(variant_name)
    renderer = Renderer(limits=limits)
    messages = renderer.render(prompt, variant, prompt.variables_validator(values))
    tokens = estimate_tokens(messages, variant.model)
    prices = cost_per_token(variant.model)
    max_tokens = variant.params.get("max_tokens") or variant.params.get("max_completion_tokens")
    cost: dict[str, Any] = {"input_usd": None, "max_output_usd": None, "priced": prices is not None}
    if prices is not None:
        cost["input_usd"] = tokens * prices[0]
        if isinstance(max_tokens, int):
            cost["max_output_usd"] = max_tokens * prices[1]
    return {
        "prompt_id": prompt.id,
        "variant": variant.name,
        "version": variant.version,
        "status": variant.status,
        "model": variant.model,
        "params": variant.params,
        "messages": messages,
        "input_tokens_estimate": tokens,
        "cost_estimate": cost,
    }


def _print(out: dict[str, Any]) -> None:
    print(f"{out['prompt_id']} / {out['variant']}  version {out['version']}  ({out['status']})")
    print(f"model: {out['model']}")
    if out["params"]:
        print(f"params: {json.dumps(out['params'], sort_keys=True)}")
    for message in out["messages"]:
        print(f"\n--- {message['role']}")
        print(message["content"])
    cost = out["cost_estimate"]
    print(f"\ninput: ~{out['input_tokens_estimate']} tokens (estimated, ~4 characters each)")
    if not cost["priced"]:
        print(f"cost: unknown ({out['model']} has no price in the cost table)")
    else:
        line = f"cost: ~${cost['input_usd']:.6f} input"
        if cost["max_output_usd"] is not None:
            line += f", at most ${cost['max_output_usd']:.6f} output (params.max_tokens)"
        print(line + " (estimate, not a bill)")


def render_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        prompts = load_prompt_dir(settings.prompts.dir)
    except PromptFileError as exc:
        print("\n".join(map(str, exc.problems)), file=sys.stderr)
        return 1
    prompt = prompts.get(args.id)
    if prompt is None:
        known = ", ".join(prompts) or "none"
        print(f"promptlab: no prompt {args.id!r} (has: {known})", file=sys.stderr)
        return 1
    name = args.variant or prompt.champion.name
    if name not in {v.name for v in prompt.variants}:
        known = ", ".join(v.name for v in prompt.variants)
        print(
            f"promptlab: prompt {prompt.id!r} has no variant {name!r} (has: {known})",
            file=sys.stderr,
        )
        return 1
    values, malformed = parse_values(args.variables, prompt.variables)
    problems = [f"--var {pair!r}: expected NAME=VALUE" for pair in malformed]
    problems += [
        f"variable {e.variable!r}: {e.rule}: {e.message}"
        for e in prompt.variables_validator.problems(values)
    ]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(
            f"error: {len(problems)} problem(s) with the variables of {prompt.id!r}",
            file=sys.stderr,
        )
        return EXIT_VALUES
    try:
        out = rendering(prompt, name, values, settings.prompts.render)
    except RenderError as exc:
        print(f"promptlab: {exc}", file=sys.stderr)
        return EXIT_VALUES
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        _print(out)
    return 0
