"""`promptlab prompts list|show|validate`: look at and check prompt files;
`promptlab prompts activate|deprecate|archive ID VARIANT`: move a variant through its
lifecycle (a command event the learner carries out or refuses, with who and why).

``list`` and ``show`` leave archived variants out unless ``--all`` (the lifecycle is the
learner's when its database is there, else the file's ``status``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from promptlab.cli import add_config_option, lazy
from promptlab.commands.apply import register as apply_parser
from promptlab.commands.lifecycles import hidden_note, learner_lifecycles, statuses
from promptlab.commands.parsers import command_options
from promptlab.commands.render import register as render_parser
from promptlab.commands.tables import print_table
from promptlab.prompts import PromptFileError, PromptSpec, load_prompt_dir, validate_files
from promptlab.providers.registry import Registry
from promptlab.settings import SettingsError, load_settings

if TYPE_CHECKING:
    from promptlab.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``prompts`` and its subcommands."""
    parser = sub.add_parser(
        "prompts", help="list, show, validate, render and apply prompts; history, lifecycle"
    )
    commands = parser.add_subparsers(dest="prompts_command", metavar="SUBCOMMAND", required=True)

    listing = commands.add_parser("list", help="the prompts of the configured prompts dir")
    listing.add_argument("--all", action="store_true", help="count archived variants too")
    add_config_option(listing)
    listing.set_defaults(handler=list_prompts)

    show = commands.add_parser("show", help="one prompt: variables, routing, variants, templates")
    show.add_argument("id", help="prompt id")
    show.add_argument("--json", action="store_true", help="print the spec as JSON")
    show.add_argument("--all", action="store_true", help="show archived variants too")
    add_config_option(show)
    show.set_defaults(handler=show_prompt)

    validate = commands.add_parser(
        "validate",
        help="check prompt files; exit 1 on problems, 2 on a missing file",
        description="Check prompt files (or directories of *.toml) and print each problem "
        "as 'file: field: message'.",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="prompt file or directory")
    add_config_option(validate)
    validate.set_defaults(handler=validate_prompts, needs_settings=False)

    history = commands.add_parser(
        "history", help="every version of each variant: hash, when, origin, parent, status, n"
    )
    history.add_argument("id", help="prompt id")
    history.add_argument("variant", nargs="?", help="only this variant")
    history.add_argument("--json", action="store_true", help="print as JSON")
    add_config_option(history)
    history.set_defaults(handler=lazy("promptlab.commands.history:history"))

    diff = commands.add_parser("diff", help="unified diff of two versions of a variant")
    diff.add_argument("id", help="prompt id")
    diff.add_argument("variant", help="variant name")
    diff.add_argument("v1", help="version number (1, 2, ...) or hash prefix")
    diff.add_argument("v2", help="version number or hash prefix")
    add_config_option(diff)
    diff.set_defaults(handler=lazy("promptlab.commands.history:diff"))

    render_parser(commands)
    apply_parser(commands)

    for status, verb, what in LIFECYCLE_VERBS:
        move = commands.add_parser(verb, help=what)
        move.add_argument("id", help="prompt id")
        move.add_argument("variant", help="variant name")
        command_options(move)
        move.set_defaults(
            handler=lazy("promptlab.commands.learner:lifecycle_command"), status=status
        )


LIFECYCLE_VERBS = (
    ("active", "activate", "route a draft, deprecated or archived variant again"),
    ("deprecated", "deprecate", "stop new traffic to a variant (its statistics stay)"),
    ("archived", "archive", "stop traffic and hide a variant from default lists"),
)
"""``(lifecycle state, subcommand, help)`` of the lifecycle moves."""


def _load(settings: Settings) -> dict[str, PromptSpec] | None:
    try:
        return load_prompt_dir(settings.prompts.dir)
    except PromptFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def list_prompts(args: argparse.Namespace, settings: Settings) -> int:
    """Print id, category, number of variants and champion of every prompt."""
    prompts = _load(settings)
    if prompts is None:
        return 1
    known = learner_lifecycles(settings) if prompts else {}
    rows = []
    hidden = 0
    for p in prompts.values():
        states = statuses(p, known)
        shown = sum(1 for s in states.values() if args.all or s != "archived")
        hidden += len(states) - shown
        rows.append((p.id, p.category, shown, p.champion.name, p.champion.model))
    headings = ("ID", "CATEGORY", "VARIANTS", "CHAMPION", "MODEL")
    print_table(headings, rows, right=("VARIANTS",))
    if not prompts:
        print(f"(no prompt files in {settings.prompts.dir})", file=sys.stderr)
    if hidden:
        print(hidden_note(hidden), file=sys.stderr)
    return 0


def show_prompt(args: argparse.Namespace, settings: Settings) -> int:
    """Print one prompt in full, templates included (archived variants with ``--all``)."""
    prompts = _load(settings)
    if prompts is None:
        return 1
    prompt = prompts.get(args.id)
    if prompt is None:
        known = ", ".join(prompts) or "none"
        print(
            f"promptlab: no prompt {args.id!r} in {settings.prompts.dir} (has: {known})",
            file=sys.stderr,
        )
        return 1
    states = statuses(prompt, learner_lifecycles(settings))
    shown = {name for name, state in states.items() if args.all or state != "archived"}
    if args.json:
        data = prompt.model_dump(mode="json")
        for dumped, variant in zip(data["variants"], prompt.variants, strict=True):
            dumped["version"] = variant.version
            dumped["status"] = states[variant.name]
        data["variants"] = [v for v in data["variants"] if v["name"] in shown]
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(describe(prompt, settings, states=states, shown=shown))
    if len(shown) < len(states):
        print(hidden_note(len(states) - len(shown)), file=sys.stderr)
    return 0


def describe(
    prompt: PromptSpec,
    settings: Settings,
    *,
    states: dict[str, str] | None = None,
    shown: set[str] | None = None,
) -> str:
    """A prompt as readable text (only the variants in ``shown``, when given)."""
    states = states or {v.name: v.status for v in prompt.variants}
    lines = [f"{prompt.id}: {prompt.description}".rstrip(": ")]
    lines.append(f"  category: {prompt.category}  language: {prompt.language}")
    if prompt.tags:
        lines.append(f"  tags: {', '.join(prompt.tags)}")
    if prompt.author:
        lines.append(f"  author: {prompt.author}")
    lines.append("variables:")
    for var in prompt.variables:
        rules = var.model_dump(
            exclude_defaults=True, exclude={"name", "type", "required", "description"}
        )
        flags = "required" if var.required else "optional"
        extra = f"  {rules}" if rules else ""
        lines.append(f"  {var.name}: {var.type}, {flags}{extra}  {var.description}".rstrip())
    reward = prompt.reward.model_dump(exclude_none=True)
    lines.append(f"reward: {reward}")
    routing = prompt.routing
    lines.append(
        f"routing: strategy={routing.strategy} exploration_cap={routing.exploration_cap} "
        f"sticky={routing.sticky}" + (f" weights={routing.weights}" if routing.weights else "")
    )
    effective = prompt.promotion_config(settings.learner.promotion)
    lines.append(
        f"promotion: threshold={effective.threshold} min_samples={effective.min_samples} "
        f"min_lift={effective.min_lift} alpha={effective.alpha}"
        + (f"  (overrides: {prompt.promotion})" if prompt.promotion else "")
    )
    constraints = prompt.constraints.model_dump(exclude_defaults=True)
    if constraints:
        lines.append(f"constraints: {constraints}")
    if prompt.examples:
        lines.append(f"examples: {', '.join(e.name for e in prompt.examples)}")
    for variant in prompt.variants:
        if shown is not None and variant.name not in shown:
            continue
        mark = " (champion)" if variant.champion else ""
        state = states[variant.name]
        status = f"  [{state}]" if state != "active" else ""
        lines.append(f"variant {variant.name}{mark}  version {variant.version}{status}")
        lines.append(f"  model: {variant.model}")
        if variant.params:
            lines.append(f"  params: {variant.params}")
        if variant.origin != "config":
            lines.append(
                f"  origin: {variant.origin} parent={variant.parent} strategy={variant.strategy}"
            )
        if variant.system is not None:
            lines.append("  system: |")
            lines += [f"    {line}" for line in variant.system.splitlines()]
        lines.append("  template: |")
        lines += [f"    {line}" for line in variant.template.splitlines()]
    return "\n".join(lines)


def _expand(names: list[str]) -> tuple[list[Path], list[str]]:
    files: list[Path] = []
    missing: list[str] = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            files += sorted(path.glob("*.toml"))
        elif path.is_file():
            files.append(path)
        else:
            missing.append(name)
    return files, missing


def _configured_providers(args: argparse.Namespace) -> Registry | None:
    """The providers of the settings, or None (not checked) when they cannot load."""
    try:
        return Registry(load_settings(getattr(args, "config", None)).providers)
    except SettingsError as exc:
        print(f"(providers not checked: {exc})", file=sys.stderr)
        return None


def validate_prompts(args: argparse.Namespace, settings: Settings | None) -> int:
    """Check files; print ``file: field: message`` per problem, or ``ok: N files``."""
    files, missing = _expand(args.files)
    for name in missing:
        print(f"{name}: (file): no such file", file=sys.stderr)
    registry = _configured_providers(args)
    problems = validate_files(
        files,
        providers=registry.names() if registry is not None else None,
        model_rule=registry.route_problem if registry is not None else None,
    )
    for problem in problems:
        print(problem)
    if missing:
        return 2
    if problems:
        bad = len({p.file for p in problems})
        print(
            f"error: {len(problems)} problem(s) in {bad} of {len(files)} file(s)", file=sys.stderr
        )
        return 1
    print(f"ok: {len(files)} files")
    return 0
