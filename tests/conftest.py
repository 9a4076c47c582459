"""Registers the shared fixtures; they and every helper live in tests/support (see its __init__)."""

from support.fixtures import (broker, exec_config, exec_sim, hostile_thread, sandbox,  # noqa: F401
                              sim_factory, tmpfs)
