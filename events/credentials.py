"""Who may talk to the bus: the embedded server's generated credentials, an external
cluster's credentials and TLS, and URLs printed without their secrets.

The embedded nats-server is closed: at its first start promptlab generates a user and a
random password (:func:`embedded_credentials`), kept in ``nats.data_dir`` in
``credentials.json`` with owner-only permissions (0600), and starts the server with a
config file (also 0600) that accepts that user only. Every promptlab process that
connects to the embedded server (``serve``, the learner, ``tui``, ``demo``, ``replay``,
``stats``, ``evolve``...) reads the file from the same data dir; any other client,
anonymous or with a wrong password, is refused with ``Authorization Violation``. So
commands (promote, rollback, pause) and definitions (prompts, variants) on the bus come
from processes that could read the data dir: the operator's own.

An external cluster's credentials are settings of their own, never part of the URL
(:class:`~events.config.NatsSettings`: ``user``/``password``, ``token``,
``creds_file``, ``nkey_seed_file``, ``tls_ca_file``, ``tls_cert_file``/``tls_key_file``);
:func:`connect_options` turns them into nats-py's ``connect()`` arguments.
:func:`redact_url` removes a ``user:password@`` from a URL before it is printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptlab.events.bus import BusError
from promptlab.events.config import NatsSettings

CREDENTIALS_FILE = "credentials.json"
"""In ``nats.data_dir``: the embedded server's user and password (mode 0600)."""
SERVER_CONFIG_FILE = "nats-server.conf"
"""In ``nats.data_dir``: the embedded server's config, with its authorization block."""
EMBEDDED_USER = "promptlab"
OWNER_ONLY = 0o600


class CredentialsError(BusError):
    """The bus credentials cannot be read, written or used (a file, a TLS setting)."""


@dataclass(frozen=True)
class EmbeddedCredentials:
    """The user and password of the embedded server (``repr`` never shows the password)."""

    user: str
    password: str = field(repr=False)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, OWNER_ONLY)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, OWNER_ONLY)  # O_CREAT's mode is masked by the umask, never widened
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def read_embedded_credentials(data_dir: Path) -> EmbeddedCredentials | None:
    """The credentials kept in ``data_dir``, or None when there are none yet."""
    path = Path(data_dir) / CREDENTIALS_FILE
    try:
        data = json.loads(path.read_text())
        return EmbeddedCredentials(user=str(data["user"]), password=str(data["password"]))
    except FileNotFoundError:
        return None
    except PermissionError as exc:
        raise CredentialsError(
            f"cannot read the embedded NATS credentials {path}: {exc.strerror} "
            "(run promptlab as the user that owns nats.data_dir)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CredentialsError(
            f"the embedded NATS credentials {path} are unreadable: {exc}"
        ) from None


def embedded_credentials(data_dir: Path) -> EmbeddedCredentials:
    """The embedded server's credentials, generated at the first call (0600 files).

    Also (re)writes the server config that accepts them. Call it under the embedded
    server's launch lock, so two processes starting at once agree on one password.
    """
    data_dir = Path(data_dir)
    creds = read_embedded_credentials(data_dir)
    if creds is None:
        creds = EmbeddedCredentials(EMBEDDED_USER, secrets.token_urlsafe(32))
        try:
            _write_private(
                data_dir / CREDENTIALS_FILE,
                json.dumps({"user": creds.user, "password": creds.password}),
            )
        except OSError as exc:
            raise CredentialsError(f"cannot write {data_dir / CREDENTIALS_FILE}: {exc}") from None
    else:
        # Tighten what an older version, or a copy, may have left readable.
        with contextlib.suppress(OSError):
            os.chmod(data_dir / CREDENTIALS_FILE, OWNER_ONLY)
    try:
        _write_private(data_dir / SERVER_CONFIG_FILE, server_config(creds))
    except OSError as exc:
        raise CredentialsError(f"cannot write {data_dir / SERVER_CONFIG_FILE}: {exc}") from None
    return creds


def server_config(creds: EmbeddedCredentials) -> str:
    """nats-server config text accepting ``creds`` and nobody else."""
    # json.dumps quotes both as valid NATS config strings (the password is URL-safe).
    return (
        "# Written by promptlab: only its processes may connect (see credentials.json).\n"
        "authorization {\n"
        f"  user: {json.dumps(creds.user)}\n"
        f"  password: {json.dumps(creds.password)}\n"
        "}\n"
    )


def tls_context(settings: NatsSettings) -> ssl.SSLContext | None:
    """The client TLS context for ``tls_ca_file`` / ``tls_cert_file`` (None: no TLS set)."""
    if not (settings.tls_ca_file or settings.tls_cert_file):
        return None
    try:
        context = ssl.create_default_context(
            cafile=str(settings.tls_ca_file) if settings.tls_ca_file else None
        )
        if settings.tls_cert_file:
            context.load_cert_chain(
                str(settings.tls_cert_file),
                str(settings.tls_key_file) if settings.tls_key_file else None,
            )
    except (OSError, ssl.SSLError) as exc:
        raise CredentialsError(f"nats TLS settings cannot be used: {exc}") from None
    return context


def connect_options(settings: NatsSettings, *, embedded: bool) -> dict[str, Any]:
    """nats-py ``connect()`` keyword arguments that authenticate promptlab.

    ``embedded``: the URL is the running embedded server of ``settings.data_dir``, so
    its generated credentials. Otherwise the external settings (none set: anonymous).
    """
    options: dict[str, Any] = {}
    if settings.url.strip().lower() == "embedded":
        if embedded:
            creds = read_embedded_credentials(Path(settings.data_dir))
            if creds is not None:
                options.update(user=creds.user, password=creds.password)
        return options
    if settings.user:
        options["user"] = settings.user
    if settings.password is not None:
        options["password"] = settings.password.get_secret_value()
    if settings.token is not None:
        options["token"] = settings.token.get_secret_value()
    if settings.creds_file:
        options["user_credentials"] = str(settings.creds_file)
    if settings.nkey_seed_file:
        options["nkeys_seed"] = str(settings.nkey_seed_file)
    context = tls_context(settings)
    if context is not None:
        options["tls"] = context
    return options


def redact_url(url: str) -> str:
    """``url`` (comma-separated servers too) without any ``user:password@`` or token@."""
    out = []
    for part in url.split(","):
        scheme, sep, rest = part.strip().partition("://")
        out.append(scheme + sep + rest.rsplit("@", 1)[-1] if sep else part.rsplit("@", 1)[-1])
    return ",".join(out)
