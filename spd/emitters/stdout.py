"""The stdout emitter: exactly one JSON line per message, flushed before `send` returns.

The writing is in spd.emitters.stdout_writer, imported only when an emitter is built.
"""

from __future__ import annotations

from typing import Literal

from spd.emitters.base import Emitter, EmitterSettings


class StdoutEmitterConfig(EmitterSettings):
    summary = "one JSON line per message on stdout"
    type: Literal["stdout"] = "stdout"

    def build(self, name: str) -> Emitter:
        from spd.emitters.stdout_writer import StdoutEmitter  # lazy: asyncio, for a built emitter only

        return StdoutEmitter(name)
