"""The emitter types, one line each: every type is one module owning its config model, builder
and description (an `EmitterSettings`); the config's discriminated union is built from this list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Union

from pydantic import Field

from spd.emitters.base import Emitter, EmitterSettings
from spd.emitters.file import FileEmitterConfig
from spd.emitters.kafka import KafkaEmitterConfig  # aiokafka stays unimported until one is built
from spd.emitters.stdout import StdoutEmitterConfig
from spd.emitters.webhook import WebhookEmitterConfig

EMITTER_MODELS: tuple[type[EmitterSettings], ...] = (
    StdoutEmitterConfig,
    FileEmitterConfig,
    WebhookEmitterConfig,
    KafkaEmitterConfig,
)
EMITTER_TYPES = tuple(model.type_name() for model in EMITTER_MODELS)

if TYPE_CHECKING:
    EmitterConfig = EmitterSettings
else:  # `emitters.NAME` of the config: the model whose `type` matches
    EmitterConfig = Annotated[Union[EMITTER_MODELS], Field(discriminator="type")]


def build_emitter(name: str, config: EmitterSettings) -> Emitter:
    """The emitter a validated emitter config describes (opens nothing until `start()`)."""
    return config.build(name)
