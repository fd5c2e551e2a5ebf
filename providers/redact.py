"""Secret redaction: no provider key may reach a client, an event or a log."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Shapes of credentials that must never be echoed even when we do not know the value:
# bearer tokens and the common provider key prefixes.
_KEY_PATTERN = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}|\b(sk|pk|rk|gsk|xai|key)-[A-Za-z0-9_-]{8,}"
)


class Redactor:
    """Replaces known secrets (provider keys read from the environment) and key-shaped
    strings with ``***``. The provider registry feeds it the keys it reads."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        # Very short values would redact ordinary words; real keys are long.
        if secret and len(secret) >= 6 and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return _KEY_PATTERN.sub(lambda m: (m.group(1) or "") + "***", text)
