"""How the SP-API client retries: one policy per kind of caller, chosen where the client is built.

A daemon's pollers wait as long as Amazon needs: 429s, 5xx, timeouts and refused connections all
retry with backoff (DESIGN.md §5), since the next poll would only try again. A person waiting on a
one-shot command (`spd exec`, `request`, `check`, `subscribe`) must hear within seconds that an
endpoint cannot be reached at all (connection refused, host not found, a firewall dropping the
connect): backing off through eight attempts takes 25-50 s, three 15 s connect timeouts 45 s, and
the answer does not change. A live server that is slow or throttling still gets the patient
retries, as an answer is likely to come.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts and waits of SpClient (see spd.core.retry.Backoff for the backoff)."""

    max_attempts: int = 8  # any retriable failure: 429, 5xx, timeouts, dropped connections
    # A connection refused, a host not resolved or a connect timed out (the peer was never
    # reached): None, the same as max_attempts; one-shot commands give up sooner.
    connect_attempts: int | None = None
    backoff_base: float = 0.5  # seconds before the second attempt (full jitter), doubling
    backoff_cap: float = 30.0
    max_retry_after: float = 300.0  # a 429's Retry-After is followed up to this
    # Seconds a TCP (and TLS) connect may take, to the SP-API and to LWA. Amazon's endpoints
    # answer a connect in well under a second from anywhere; longer means dropped packets.
    connect_timeout: float = 15.0

    def attempts(self, unreachable: bool) -> int:
        """How many attempts a failure of this kind gets in all (at least one)."""
        limit = self.max_attempts
        if unreachable and self.connect_attempts is not None:
            limit = min(limit, self.connect_attempts)
        return max(1, limit)


DAEMON = RetryPolicy()
# 3 attempts: a listener restarting right then is still found; ~1.5 s of backoff at most. 5 s a
# connect: a firewalled endpoint is reported after about 16 s instead of 45 s.
ONE_SHOT = RetryPolicy(connect_attempts=3, connect_timeout=5.0)
