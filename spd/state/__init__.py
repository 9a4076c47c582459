"""Where spd remembers: poller watermarks and checkpoints, the report ledger, the daemon lock and
the disk reserve, in one SQLite file. Imports only spd.core.
"""
