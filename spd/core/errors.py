"""The one error hierarchy of spd.

Every error a user can cause or meet is an `SpdError`; the CLI prints its message on one line
and exits with its `exit_code`. `retriable` tells retry loops whether trying again can help.
"""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 78  # EX_CONFIG: systemd must not restart on it


class SpdError(Exception):
    """Base of every error spd reports to a user."""

    exit_code: int = EXIT_FAILURE
    retriable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(SpdError):
    """The configuration is missing, unreadable or invalid (exit 78)."""

    exit_code = EXIT_CONFIG


class UsageError(SpdError):
    """Bad command-line arguments, unknown names, invalid operation parameters (exit 2)."""

    exit_code = EXIT_USAGE


class CatalogError(SpdError):
    """The shipped or generated operation catalog is missing or broken."""


class StateError(SpdError):
    """The state database cannot be opened, is locked by a daemon, or is inconsistent."""

    exit_code = EXIT_CONFIG


class StateWriteError(StateError):
    """The state database cannot be written right now (disk full, I/O error, a lock held by
    another connection): the run fails and the next one tries again (exit 1)."""

    exit_code = EXIT_FAILURE
    retriable = True


class StateBusyError(StateWriteError):
    """Another connection (an operator's `sqlite3` shell, another spd command) held the state
    database's write lock for the whole wait: nothing was written; the run fails and the next one
    tries again (exit 1). Not the daemon lock: that is StateLockedError."""


class StateFullError(StateWriteError):
    """The disk under the state database is full (SQLITE_FULL): the run fails (exit 1), and
    only this failure gives up the disk reserve (spd.state.files) to record it."""


class StateLockedError(StateError):
    """Another spd process (a daemon, `once`) holds the state; try again when it stopped (exit 1)."""

    exit_code = EXIT_FAILURE


class AuthError(SpdError):
    """Login With Amazon (or STS) refused or could not be reached (`unreachable`: no connection
    at all, refused, no such host or the connect timed out, which a person waiting need not wait
    out)."""

    def __init__(self, message: str, *, retriable: bool = False, unreachable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.unreachable = unreachable


class ApiError(SpdError):
    """SP-API answered with an error; `errors` is Amazon's `errors` array."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: list[dict[str, Any]] | None = None,
        body: Any = None,
        request_id: str | None = None,
        retriable: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors or []
        self.body = body
        self.request_id = request_id
        self.retriable = retriable

    @property
    def answered(self) -> bool:
        """Whether SP-API answered with an error status: only then is there an error document of
        Amazon's to show (`exec`/`request` print it); a transport failure, a refused redirect or
        spd's own judgement of an answer is one line like any SpdError."""
        return self.status is not None and self.status >= 400

    def error_json(self) -> dict[str, Any]:
        """The SP-API error document, as printed on stderr by `exec`/`request`."""
        if isinstance(self.body, dict) and "errors" in self.body:
            return self.body
        return {"errors": self.errors or [{"code": "Error", "message": self.message}]}


def describe_error(exc: BaseException) -> str:
    """One line for any failure: an SpdError's message, else `internal error: Type: message`
    (a bug in spd: its traceback is logged at debug level)."""
    if isinstance(exc, SpdError):
        return exc.message
    text = " ".join(str(exc).split())
    return f"internal error: {type(exc).__name__}" + (f": {text}" if text else "")


class DeliveryError(SpdError):
    """An emitter could not deliver a page; the poller holds its watermark."""

    retriable = True


class IdentityChangedError(SpdError):
    """A poller's identity changed under an existing watermark (exit 78)."""

    exit_code = EXIT_CONFIG
