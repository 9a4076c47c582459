"""Registers the shared fixtures; they and every helper live in tests/support (see its __init__)."""

from support.fixtures import broker, hostile_thread, sandbox, sim_factory, tmpfs  # noqa: F401
