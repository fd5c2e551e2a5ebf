"""MkDocs hook: the reference pages' generated parts, built from the code at each build.

A page asks for one with a marker on a line of its own, ``<!-- generate: NAME -->``;
the hook replaces it with the Markdown of the generator of that name:

* ``settings``: every setting, from the ``Settings`` model and its section models (the
  docstring under each field is its description; a field without one fails the build);
* ``cli``: the ``--help`` of every command and subcommand, from
  ``promptlab.cli.build_parser()``;
* ``bench-*``: the benchmark tables, from the JSON files the benches write under
  ``bench/results/``.

Nothing here is written by hand twice: change the code (or rerun a bench) and the next
``make docs`` shows it. An unknown marker fails the build, as ``--strict`` should.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
MARKER = re.compile(r"^<!-- generate: ([\w-]+) -->$", re.M)

if str(ROOT) not in sys.path:  # ``bench`` is a folder of the checkout, not installed
    sys.path.insert(0, str(ROOT))


class GenerateError(PluginError):
    """A generated part cannot be built (the build fails with this message)."""


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs event: replace every ``<!-- generate: NAME -->`` line of a page."""
    return expand(markdown)


def expand(markdown: str) -> str:
    """``markdown`` with every generate marker replaced by its generated Markdown."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise GenerateError(f"unknown generated part {name!r} (known: {sorted(GENERATORS)})")
        return GENERATORS[name]().rstrip("\n")

    return MARKER.sub(replace, markdown)


# --- configuration -------------------------------------------------------------------


def settings_reference(root: type[BaseModel] | None = None) -> str:
    """One table per section of ``root`` (default: ``Settings``): key, default,
    environment variable and description."""
    from promptlab.providers.settings import ProviderSettings
    from promptlab.settings import ENV_PREFIX, Settings

    root = Settings if root is None else root

    out: list[str] = []

    def section(model: type[BaseModel], path: list[str], env_path: list[str]) -> None:
        rows, nested = [], []
        for name, field in model.model_fields.items():
            if not field.description:
                raise GenerateError(
                    f"{model.__name__}.{name} has no docstring: the configuration "
                    "reference is generated from them"
                )
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                nested.append((name, annotation, field.description))
                continue
            env = ENV_PREFIX + "__".join(part.upper() for part in [*env_path, name])
            rows.append(
                f"| `{name}` | {_default(field)} | `{env}` | {_one_line(field.description)} |"
            )
        out.append(f"### `[{'.'.join(path)}]`\n")
        if model.__doc__:
            # "``[server]``: the HTTP front door." -> "The HTTP front door." under its heading
            doc = re.sub(r"^``\[[\w.]+\]``:\s*", "", model.__doc__.strip())
            out.append(_one_line(doc[:1].upper() + doc[1:]) + "\n")
        out.append("| key | default | environment | what |\n|---|---|---|---|")
        out.extend(rows)
        out.append("")
        for name, sub, _description in nested:
            section(sub, [*path, name], [*env_path, name])

    for name, field in root.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            section(annotation, [name], [name])
        elif name == "providers":
            section(ProviderSettings, ["providers.NAME"], ["providers", "NAME"])
            out.append(
                "Built in, unless a table of the same name overrides them: "
                + ", ".join(
                    f"`{key}` (kind `{value.kind}`)"
                    for key, value in field.default_factory().items()  # type: ignore[misc, call-arg]
                )
                + ". A `[providers.NAME]` table is merged over the built-in provider of "
                "that name.\n"
            )
        else:  # pragma: no cover - every section is a model today
            raise GenerateError(f"Settings.{name}: no rule to document this field")
    return "\n".join(out)


def _default(field: Any) -> str:
    from pydantic_core import PydanticUndefined

    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()
    else:
        return "(required)"
    if value is None:
        return "unset"
    if isinstance(value, Path):
        value = str(value)
    text = json.dumps(value, default=str)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"`{text}`".replace("|", "\\|")


def _rst_to_md(text: str) -> str:
    return text.replace("``", "`")


def _one_line(text: str) -> str:
    return " ".join(_rst_to_md(text).split()).replace("|", "\\|")


# --- command line --------------------------------------------------------------------


def cli_reference() -> str:
    """``--help`` of ``promptlab`` and of every command below it, as text blocks."""
    from promptlab.cli import build_parser

    out = []
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal's width
    try:
        for parser in walk(build_parser()):
            depth = parser.prog.count(" ")
            out.append(f"{'#' * (depth + 3)} `{parser.prog}`\n")
            out.append("```text\n" + parser.format_help().rstrip() + "\n```\n")
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(out)


def walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every sub-command's parser below it, depth first."""
    yield parser
    # argparse has no public way to list a parser's sub-commands: promptlab's Parser
    # keeps them in ``commands`` when they are added. Aliases map to the same parser.
    for command in dict.fromkeys(getattr(parser, "commands", {}).values()):
        yield from walk(command)


# --- benchmarks ----------------------------------------------------------------------


def _result(name: str) -> dict[str, Any]:
    path = RESULTS / f"{name}.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GenerateError(f"{path}: {exc}") from exc
    return data


def bench_targets() -> str:
    """The targets and what was measured against each (bench/results/targets.json)."""
    data = _result("targets")
    rows = [
        f"| {row['what']} | {row['target']} | {row['measured']} | `{row['command']}` |"
        for row in data["rows"]
    ]
    return "\n".join(
        [
            f"Measured {data['measured_on']}.\n",
            "| what | target | measured | command |",
            "|---|---|---|---|",
            *rows,
        ]
    )


def bench_peers() -> str:
    """The peer table (bench/results/peers.json, written by ``python -m bench.peers --out``)."""
    data = _result("peers")
    rows = []
    for name, row in data["rows"].items():
        absolute = " (absolute)" if name == "upstream direct" else ""
        cpu = f"{row['cpu_us_8']:.0f} us" if "cpu_us_8" in row else ""
        if row.get("child_cpu_us_8"):
            cpu += f" + {row['child_cpu_us_8']:.0f} us (learner)"
        rows.append(
            f"| {name}{absolute} | {row['added_p50_1']:.3f} ms | {row['added_p99_1']:.3f} ms "
            f"| {row['added_p50_8']:.3f} ms | {row['added_p99_8']:.3f} ms "
            f"| {row['rps_8']:,.0f} | {row['rps_32']:,.0f} | {cpu} |"
        )
    return "\n".join(
        [
            f"Measured {data['measured_on']}. Medians of {data['repeat']} round(s) of "
            f"{data['duration_s']:g} s: `{data['command']}`.\n",
            "| | added p50@1 | added p99@1 | added p50@8 | added p99@8 | req/s@8 | req/s@32 "
            "| CPU/call@8 |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )


def bench_simulation() -> str:
    """The scenario matrix (bench/results/simulation.json, ``bench.simulation --out``)."""
    from bench.simulation import HEADER, describe

    data = _result("simulation")
    return "\n".join(
        [
            f"Measured {data['measured_on']}, {data['seconds']:,.0f} s: `{data['command']}`.\n",
            HEADER,
            *(describe(row) for row in data["rows"]),
        ]
    )


def bench_evolution() -> str:
    """Search strategies on the simulated task (bench/results/evolution.json)."""
    data = _result("evolution")
    rows = [
        f"| {search} | {row['final_best_mean']:.3f} | {row['reached_90pct']} "
        f"| {_calls(row['calls_to_90pct_median'])} |"
        for search, row in data["searches"].items()
    ]
    return "\n".join(
        [
            f"Measured {data['measured_on']}: `{data['command']}`.\n",
            "| search | mean best at the budget | runs reaching 90% | median calls to 90% |",
            "|---|---|---|---|",
            *rows,
        ]
    )


def bench_real() -> str:
    """The real-model loop (bench/results/real.json, ``bench.real --out``): per run, when
    the learner registered and promoted the demonstration challenger, the test's figures
    in the promotion event, and held-out accuracy of the old and the new champion."""
    data = _result("real")
    loop, held = [], []
    for run in data["runs"]:
        title = "with corrections" if run["corrections"] else "without corrections"
        served = " / ".join(
            f"{n} at {run['live_accuracy'][name]:.1%} ({run['call_ms_p50'][name] / 1000:.1f} s)"
            for name, n in run["served"].items()
        )
        promotion = run["promotion"]
        if promotion is None:
            promoted, test = f"nothing within {run['calls']:,} calls", "-"
        else:
            promoted = f"`{promotion['variant']}` by call {promotion['seen_by_call']:,}"
            arms = "; ".join(
                f"{name} {a['reward_mean']:.1%} of {a['n']}"
                for name, a in promotion["arms"].items()
            )
            low, high = promotion["lift_interval"] or (None, None)
            interval = f" [{low:+.3f}, {high:+.3f}]" if low is not None else ""
            test = (
                f"{arms}; lift {promotion['lift']:+.3f}{interval}; always-valid "
                f"p = {promotion['p_value']:.3g}; P(better) = {promotion['p_better']:.3f}"
            )
        registered = run["registered_at_call"]
        loop.append(
            f"| {title} | {run['calls']:,} | {registered if registered else 'never'} "
            f"| {promoted} | {test} | {served} |"
        )
        accuracy = "; ".join(
            f"{name} {h['accuracy']:.1%} [{h['wilson95'][0]:.1%}, {h['wilson95'][1]:.1%}]"
            for name, h in run["held_out"].items()
        )
        paired = run["paired"]
        mcnemar = (
            f"{paired['right_only_with_demos']} / {paired['right_only_without']}, "
            f"p = {paired['p_mcnemar']:.2g}"
            if paired
            else "-"
        )
        held.append(f"| {title} | {accuracy} | {mcnemar} | {run['pool']['size']:,} |")
    n = data["held_out"]
    return "\n".join(
        [
            f"Measured {data['measured_on']}: `{data['command']}` ({data['model']}; "
            f"{' + '.join(data['data'])}, {n} held out, {data['stream']:,} production calls "
            f"per run; `min_pool = {data['min_pool']}`, `min_samples = {data['min_samples']}`, "
            f"`exploration_cap = {data['exploration_cap']}`).\n",
            "| run | calls | `+demos` registered after call | promoted | the test in the "
            "promotion event | served (live accuracy, one call p50) |",
            "|---|---|---|---|---|---|",
            *loop,
            "",
            f"Held-out accuracy (n = {n}, 95% Wilson), each variant on the same sentences "
            "with the run's final pool:\n",
            "| run | held-out accuracy | right only with / only without demos, exact McNemar "
            "| final pool |",
            "|---|---|---|---|",
            *held,
        ]
    )


def _calls(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


GENERATORS: dict[str, Callable[[], str]] = {
    "settings": settings_reference,
    "cli": cli_reference,
    "bench-targets": bench_targets,
    "bench-peers": bench_peers,
    "bench-simulation": bench_simulation,
    "bench-evolution": bench_evolution,
    "bench-real": bench_real,
}
