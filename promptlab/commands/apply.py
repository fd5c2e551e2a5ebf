"""`promptlab prompts apply FILE... [--url URL]`: define prompts on a running sidecar.

Each prompt file is read locally (TOML and the prompt kernel's rules: a broken file is
reported as ``file: field: message`` and nothing is sent), then sent whole as
``PUT /admin/prompts/{id}``; the sidecar stores it for every replica and restart and
answers what changed, which is printed. The admin key is ``$PROMPTLAB_ADMIN_KEY`` or
the first of ``server.admin_keys``; the URL defaults to the configured
``server.host:port``. Exit 0 when every file was applied, 1 when the sidecar refused
one (its problems are printed), 2 for a file that cannot be used or a sidecar that
cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptlab.cli import add_config_option
from promptlab.prompts import load_prompt_file
from promptlab.prompts.errors import PromptError

if TYPE_CHECKING:
    from promptlab.settings import Settings

KEY_ENV = "PROMPTLAB_ADMIN_KEY"
TIMEOUT_S = 10.0


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``prompts apply``."""
    apply = commands.add_parser(
        "apply",
        help="create or update prompts on a running sidecar from prompt files",
        description="Send each prompt file whole to PUT /admin/prompts/{id} of a running "
        "sidecar (stored for every replica and restart) and print what changed. Exit 1 "
        "when the sidecar refuses a file, 2 when a file is broken or no sidecar answers.",
    )
    apply.add_argument("files", nargs="+", metavar="FILE", help="prompt file (TOML)")
    apply.add_argument("--url", help="the sidecar (default: http://server.host:server.port)")
    add_config_option(apply)
    apply.set_defaults(handler=apply_command)


def _base_url(args: argparse.Namespace, settings: Settings) -> str:
    if args.url:
        return str(args.url).rstrip("/")
    host = settings.server.host
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{host}:{settings.server.port}"


def _admin_key(settings: Settings) -> str | None:
    if key := os.environ.get(KEY_ENV):
        return key
    keys = settings.server.admin_keys
    return keys[0].get_secret_value() if keys else None


def _put(url: str, body: dict[str, Any], key: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers=headers, method="PUT"
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # a local sidecar
    try:
        with opener.open(request, timeout=TIMEOUT_S) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read())
        except ValueError:
            return exc.code, {"error": {"message": exc.reason}}


def summary(answer: dict[str, Any]) -> str:
    """One line per change of a successful answer."""
    changes = answer["changes"]
    head = f"{answer['prompt_id']}: " + (
        "created" if answer["created"] else "updated" if answer["changed"] else "unchanged"
    )
    lines = [head + f" (version {answer['version']}, champion {answer['champion']})"]
    lines += [f"  field {name} changed" for name in changes["fields"]]
    if not answer["created"]:
        lines += [f"  variant {name} added" for name in changes["added"]]
    lines += [
        f"  variant {v['variant']}: new version {v['to']} (was {v['from']}; evidence starts at zero)"
        for v in changes["new_versions"]
    ]
    lines += [f"  variant {name} kept (not in the file)" for name in changes["kept"]]
    if note := answer.get("note"):
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def apply_command(args: argparse.Namespace, settings: Settings) -> int:
    base, key = _base_url(args, settings), _admin_key(settings)
    worst = 0
    for name in args.files:
        path = Path(name)
        try:
            load_prompt_file(path)  # every rule, locally, before anything is sent
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except PromptError as exc:
            print(exc, file=sys.stderr)
            worst = 2
            continue
        except OSError as exc:
            print(f"{name}: (file): cannot read: {exc}", file=sys.stderr)
            worst = 2
            continue
        try:
            status, answer = _put(f"{base}/admin/prompts/{data['id']}", data, key)
        except (urllib.error.URLError, OSError) as exc:
            print(f"promptlab: no sidecar answers at {base}: {exc}", file=sys.stderr)
            return 2
        if status in (200, 201):
            print(summary(answer))
            continue
        error = answer.get("error", {})
        print(f"{name}: refused ({status}): {error.get('message', answer)}", file=sys.stderr)
        for problem in error.get("details") or []:
            print(f"{name}: {problem['field']}: {problem['message']}", file=sys.stderr)
        worst = max(worst, 1)
    return worst
