"""Redaction: no secret in anything spd writes or prints, and tracebacks only at debug level.

The log pipeline runs `redact_secrets` on every event (spd.core.logging); everything else spd writes
or prints that a server may have put words into goes through `redact()` (text: the state's
last_error and note, CLI error lines, the systemd status line, dead-letter records) or
`redact_data()` (JSON: `spd exec`'s error document). A traceback may quote anything: it is shown
only when logging was configured at debug level (`debug_enabled()`).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

REDACTED = "[redacted]"
_PREFIX = 4  # secrets shorter than this are not registered (they would match too much)

# Keys whose values are secret whatever they hold.
_SECRET_KEY = re.compile(
    r"(secret|password|passwd|refresh_token|access_token|session_token|security_token"
    r"|authorization|x-amz-access-token|api_key|apikey|credential)",
    re.IGNORECASE,
)
# Values that look like LWA tokens (Atza| access, Atzr| refresh) or an Authorization value.
_SECRET_VALUE = re.compile(r"(Atz[ar]\|[^\s\"',;&]+|(?:Bearer|Basic)\s+[^\s\"',;&]+)")
# `name: value` / `name=value` pairs in text a server echoed back (headers, forms, JSON): the
# value goes when it is token-like (8+ characters without spaces). Not `${NAME_SECRET:-default}`,
# the shell's default syntax that spd's own hints about unset variables show.
_SECRET_PAIR = re.compile(
    r"(?i)((?:authorization|x-amz-access-token|x-amz-security-token|x-api-key|api[-_]?key"
    r"|client_secret|refresh_token|access_token|password|secret)[\"']?\s*(?::(?!-)|=)\s*[\"']?)"
    r"([^\s\"',;&}]{8,})")
# The password of a URL's user:password@.
_URL_PASSWORD = re.compile(r"(://[^/\s:@]+:)([^@\s/]+)(@)")


class RedactSecrets:
    """structlog processor: replaces secret values anywhere in an event with `[redacted]`.

    Three nets: values under secret-sounding keys, values shaped like LWA tokens, and the exact
    secret strings registered from the configuration (so a secret inside an error text goes too).
    """

    def __init__(self) -> None:
        self._known: set[str] = set()
        # the known secrets by their first _PREFIX characters: a config of 2,000 accounts holds
        # thousands, and every string of every log event is searched for them
        self._by_prefix: dict[str, list[str]] = {}

    def register(self, secrets: Iterable[str | None]) -> None:
        """Adds exact secret strings (from the config) to redact wherever they appear."""
        for secret in secrets:
            if secret and len(secret) >= _PREFIX and secret not in self._known:
                self._known.add(secret)
                self._by_prefix.setdefault(secret[:_PREFIX], []).append(secret)

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        return {key: self._clean(key, value) for key, value in event.items()}

    def _clean(self, key: str, value: Any) -> Any:
        if _SECRET_KEY.search(key) and value not in (None, "", False):
            return REDACTED
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self._clean(str(k), v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._clean("", v) for v in value]
        return value

    def scrub(self, text: str) -> str:
        """Removes every known or token-shaped secret from a string."""
        for secret in self._known_in(text):
            text = text.replace(secret, REDACTED)
        text = _SECRET_VALUE.sub(REDACTED, text)
        text = _SECRET_PAIR.sub(lambda m: m.group(1) + REDACTED, text)
        return _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)

    def _known_in(self, text: str) -> list[str]:
        """The known secrets inside `text`, longest first. A text shorter than the list of
        secrets is read once, looking each place up by its first characters, rather than
        searched once per secret: log lines are short, configs may hold thousands."""
        if len(text) > len(self._known):
            found = {secret for secret in self._known if secret in text}
        else:
            found = set()
            index = self._by_prefix
            for at in range(len(text) - _PREFIX + 1):
                for secret in index.get(text[at:at + _PREFIX], ()):
                    if text.startswith(secret, at):
                        found.add(secret)
        return sorted(found, key=len, reverse=True)

    def clean(self, value: Any) -> Any:
        """A JSON-like value with every secret removed from its strings and secret keys."""
        return self._clean("", value)


redact_secrets = RedactSecrets()
_debug = False  # whether logging was configured at debug level


def set_debug(enabled: bool) -> None:
    """Called by spd.core.logging.configure_logging with whether the level is debug."""
    global _debug
    _debug = enabled


def debug_enabled() -> bool:
    """True when logging was configured at debug level (`log: {level: debug}`)."""
    return _debug


def redact(text: str) -> str:
    """`text` without any secret the log redaction knows of (configured or token-shaped)."""
    return redact_secrets.scrub(text)


def redact_data(value: Any) -> Any:
    """A JSON-like value without any secret the log redaction knows of."""
    return redact_secrets.clean(value)
