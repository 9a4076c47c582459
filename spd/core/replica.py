"""The replica's id: `$SPD_REPLICA_ID` verbatim, else hostname:pid (DESIGN §13)."""

from __future__ import annotations

import os

ENV = "SPD_REPLICA_ID"


def replica_id() -> str:
    """This process's replica id."""
    # uname's node name is what gethostname() returns, without importing socket (~4 ms a start)
    return os.environ.get(ENV) or f"{os.uname().nodename}:{os.getpid()}"


def publish_replica_id() -> str:
    """Puts the id into the environment (when unset), so that `${SPD_REPLICA_ID}` in the config
    (a file emitter's path: one file per replica) names this replica; returns it."""
    rid = replica_id()
    os.environ.setdefault(ENV, rid)
    return rid
