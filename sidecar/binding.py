"""Execution ids that say which client key made them, so feedback is bound to its caller.

With client keys configured (``server.api_keys``), an execution id is 32 random hex
characters followed by a 16-hex tag, HMAC-SHA256 of the random part keyed by the API key
that made the call. ``POST /v1/feedback`` recomputes the tag with the caller's key: a
different key (or a made-up id) gets the same 404 as an id nobody issued; an admin key
may rate any execution.

Why a tag in the id rather than a table of who made what: every replica, and a replica
after a restart, can check it with nothing but the key the caller presents, so there is
no lookup on the hot path, no database and no state to share; neither the key nor any
hash of it travels in events, logs or the store. The cost: a tag only a key holder can
make is also a tag only a key holder can check, so ids made before client keys were
configured (32 hex, no tag), or by a key since removed, can be rated only with an admin
key. An id is public to whoever holds it, so a client key must be a random secret (as
any bearer key): a guessable key could be recovered from an id by trying candidates.

Without client keys there is nothing to bind to: ids are 32 random hex characters, as
before, and anyone may rate any execution.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from promptlab.sidecar.auth import KeyRing, bearer

RANDOM_HEX = 32
TAG_HEX = 16


def _tag(key: bytes, nonce: str) -> str:
    return hmac.new(key, nonce.encode(), hashlib.sha256).hexdigest()[:TAG_HEX]


class ExecutionIds:
    """Issues execution ids and checks that feedback comes from the key that made one."""

    def __init__(self, client_keys: KeyRing, admin_keys: KeyRing) -> None:
        self.client_keys = client_keys
        self.admin_keys = admin_keys

    @property
    def binding(self) -> bool:
        """True when ids are bound to client keys (``server.api_keys`` is set)."""
        return self.client_keys.enabled

    def new(self, authorization: str | None) -> str:
        """A fresh execution id for a call made with ``authorization``."""
        nonce = os.urandom(RANDOM_HEX // 2).hex()
        key = bearer(authorization) if self.binding else None
        if key is None:
            return nonce
        return nonce + _tag(key, nonce)

    def may_rate(self, execution_id: str, authorization: str | None) -> bool:
        """True when the caller made ``execution_id``, holds an admin key, or no client
        keys are configured."""
        if not self.binding:
            return True
        if self.admin_keys.enabled and self.admin_keys.accepts(authorization):
            return True
        key = bearer(authorization)
        if key is None or len(execution_id) != RANDOM_HEX + TAG_HEX:
            return False
        nonce, tag = execution_id[:RANDOM_HEX], execution_id[RANDOM_HEX:]
        return hmac.compare_digest(_tag(key, nonce), tag)
