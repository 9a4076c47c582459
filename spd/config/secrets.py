"""Every secret of a config registered with the redaction, before anything is logged."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

from spd.core.redaction import redact_secrets


def register_config_secrets(config: BaseModel) -> None:
    """Registers every SecretStr in the config with the log redactor."""
    redact_secrets.register(collect_secrets(config))


def collect_secrets(value: Any) -> list[str]:
    """All secret strings inside a (nested) pydantic model, and passwords inside URLs."""
    if isinstance(value, SecretStr):
        return [value.get_secret_value()]
    if isinstance(value, str) and "://" in value and "@" in value:
        return [p for p in (urlsplit(value).password,) if p]
    if isinstance(value, BaseModel):
        return [s for name in type(value).model_fields for s in collect_secrets(getattr(value, name))]
    if isinstance(value, dict):
        return [s for v in value.values() for s in collect_secrets(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in collect_secrets(v)]
    return []
