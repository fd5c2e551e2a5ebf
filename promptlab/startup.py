"""What ``promptlab serve`` tells the operator when it starts, and the one-line refusals.

The start banner lists what this process will do: the prompts and variants it routes,
the providers (name, kind, base URL, whether the key's environment variable is set:
never the key), the learner's role and the URLs. It goes to stdout after the ready
line, which stays the first line (scripts and the worker supervisor wait for it).
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Mapping

from promptlab.events.credentials import redact_url
from promptlab.prompts import PromptSpec
from promptlab.sidecar.config import ProviderSettings

LEARNER_IN_PROCESS = "in a child process"


def learner_role(*, enabled: bool, role: str | None = None) -> str:
    """The learner line of the banner.

    The hook for the single-active-learner lease: once the learner knows whether it
    holds the lease, pass ``role`` ("active" or "standby") and it is printed as is.
    Until then a running learner is "in a child process" (of serve).
    """
    if not enabled:
        return "off (this process runs no learner)"
    return role or LEARNER_IN_PROCESS


def provider_lines(
    providers: Mapping[str, ProviderSettings], environ: Mapping[str, str] | None = None
) -> list[str]:
    """One line per provider: name, kind, base URL, key present yes/no."""
    env = os.environ if environ is None else environ
    lines = []
    for name, provider in sorted(providers.items()):
        if provider.kind == "simulated":
            key = "not needed (simulated)"
        elif provider.api_key_env is None:
            key = "none configured"
        else:
            present = "yes" if env.get(provider.api_key_env) else "no"
            key = f"{present} (${provider.api_key_env})"
        base = provider.api_base or "(default of the kind)"
        if provider.kind == "simulated":
            base = "(offline)"
        lines.append(f"  {name}: kind {provider.kind}, {base}, key present: {key}")
    return lines


def prompt_lines(prompts: Mapping[str, PromptSpec]) -> list[str]:
    """One line per prompt: its variants, champion first and marked."""
    if not prompts:
        return ["  (none: add prompt files to prompts.dir)"]
    lines = []
    for prompt_id, spec in sorted(prompts.items()):
        names = [f"{v.name} (champion)" if v.champion else v.name for v in spec.variants]
        names.sort(key=lambda n: not n.endswith("(champion)"))
        lines.append(f"  promptlab/{prompt_id}: {', '.join(names)}")
    return lines


def banner(
    *,
    base_url: str,
    nats_url: str,
    prompts: Mapping[str, PromptSpec],
    providers: Mapping[str, ProviderSettings],
    learner: str,
    workers: int = 1,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """The lines printed after the ready line."""
    return [
        f"prompts ({len(prompts)}):",
        *prompt_lines(prompts),
        "providers:",
        *provider_lines(providers, environ),
        f"learner: {learner}",
        f"workers: {workers}",
        "urls:",
        f"  OpenAI-compatible API  {base_url}/v1",
        f"  feedback               {base_url}/v1/feedback",
        f"  admin                  {base_url}/admin/prompts",
        f"  health, metrics        {base_url}/healthz  {base_url}/readyz  {base_url}/metrics",
        f"  events (NATS)          {redact_url(nats_url)}",
    ]


def port_in_use(host: str, port: int) -> str:
    """The one line that says the port is taken and what to do."""
    return (
        f"promptlab serve: {host}:{port} is already in use (another promptlab serve?); "
        "stop it or choose another port with --port or PROMPTLAB_SERVER__PORT"
    )


def is_addr_in_use(exc: OSError) -> bool:
    return exc.errno == errno.EADDRINUSE


def check_port_free(host: str, port: int) -> str | None:
    """None when ``host:port`` can be bound, else the one-line message (port 0 is always free)."""
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"promptlab serve: cannot bind {host}:{port}: {exc.strerror or exc}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        # As the server will: a port in TIME_WAIT is free, a listening one is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if is_addr_in_use(exc):
                return port_in_use(host, port)
            return f"promptlab serve: cannot bind {host}:{port}: {exc.strerror or exc}"
    return None
