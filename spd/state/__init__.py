"""Where spd remembers: poller watermarks and checkpoints, the report ledger, the daemon lock and
the disk reserve. `backend` is the async interface every backend implements; `store` (with
`ledger`) is the SQLite one. Imports only spd.core.
"""
