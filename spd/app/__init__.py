"""The application: the runtime built from one config, the daemon (scheduler, signals, systemd,
/metrics), `spd once`, `status`/`reset` and `exec`/`request`. Below spd.cli and spd.demo.
"""
