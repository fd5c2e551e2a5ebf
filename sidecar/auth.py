"""Who may call: Bearer keys on ``/v1``, admin keys (or loopback only) on ``/admin``.

Keys are compared with :func:`hmac.compare_digest` against every configured key, so the
time taken says nothing about how much of a key was right or which key matched.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence

from pydantic import SecretStr

from promptlab.sidecar.errors import Forbidden, Unauthorized


def bearer(authorization: str | None) -> bytes | None:
    """The key of an ``Authorization: Bearer <key>`` header (None without one)."""
    if not authorization or not authorization[:7].lower() == "bearer ":
        return None
    return authorization[7:].strip().encode() or None


class KeyRing:
    """A set of accepted Bearer keys; empty means the route is open."""

    def __init__(self, keys: Sequence[SecretStr | str]) -> None:
        self._keys = [
            (k.get_secret_value() if isinstance(k, SecretStr) else k).encode() for k in keys
        ]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def accepts(self, authorization: str | None) -> bool:
        """True when the ``Authorization`` header carries one of the keys."""
        presented = bearer(authorization)
        if presented is None:
            return False
        ok = False
        for key in self._keys:
            # No early exit: every key is compared whatever the result.
            ok |= hmac.compare_digest(presented, key)
        return ok


def is_loopback(peer: str | None) -> bool:
    """True for 127.0.0.0/8 and ::1 peers (and unix sockets, which have no address)."""
    if not peer:
        return True
    try:
        return ipaddress.ip_address(peer.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def check_client(keys: KeyRing, authorization: str | None) -> None:
    """Raise 401 unless the call may use ``/v1``."""
    if keys.enabled and not keys.accepts(authorization):
        raise Unauthorized(
            "invalid or missing API key: send Authorization: Bearer <key>", code="invalid_api_key"
        )


def check_admin(keys: KeyRing, authorization: str | None, peer: str | None) -> None:
    """Raise 401/403 unless the call may use ``/admin``.

    Without admin keys the admin API is reachable from loopback peers only.
    """
    if not keys.enabled:
        if not is_loopback(peer):
            raise Forbidden(
                "the admin API is only reachable from loopback unless server.admin_keys is set",
                code="admin_loopback_only",
            )
        return
    if not authorization:
        raise Unauthorized(
            "admin key required: send Authorization: Bearer <admin key>", code="invalid_api_key"
        )
    if not keys.accepts(authorization):
        raise Forbidden("this key is not an admin key", code="not_admin")
