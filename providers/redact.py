"""Secret redaction: no provider key may reach a client, an event or a log."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# Shapes of credentials that must never be echoed even when we do not know the value:
# bearer tokens and the common provider key prefixes.
_KEY_PATTERN = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}|\b(sk|pk|rk|gsk|xai|key)-[A-Za-z0-9_-]{8,}"
)


class Redactor:
    """Replaces known secrets (provider keys read from the environment), key-shaped
    strings and whatever the operator's ``patterns`` (regular expressions, e.g.
    ``server.redact_patterns``) match with ``***``. The provider registry feeds it the
    keys it reads."""

    def __init__(self, secrets: Iterable[str] = (), *, patterns: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)
        self._patterns = [re.compile(p) for p in patterns]

    def add(self, secret: str | None) -> None:
        # Very short values would redact ordinary words; real keys are long.
        if secret and len(secret) >= 6 and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        text = _KEY_PATTERN.sub(lambda m: (m.group(1) or "") + "***", text)
        for pattern in self._patterns:
            text = pattern.sub("***", text)
        return text

    def redact_value(self, value: Any) -> Any:
        """``value`` with every string in it redacted (lists and dicts walked; keys too)."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list | tuple):
            return [self.redact_value(v) for v in value]
        if isinstance(value, dict):
            return {self.redact(str(k)): self.redact_value(v) for k, v in value.items()}
        return value
