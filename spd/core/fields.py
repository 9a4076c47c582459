"""The building blocks of config models: `ConfigModel`, the field types, and the translation of
pydantic errors into one line. Any layer may declare its own settings with them.

Validators raise `fail(message, *loc)`: a final message, placed at pydantic's location plus
`loc`. Everything else pydantic reports is reworded here, so users never see its dump.
"""

from __future__ import annotations

import difflib
import json
import string
import types
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, GetCoreSchemaHandler, SecretStr,
                      ValidationError, model_validator)
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from spd.core.times import format_duration, parse_duration, parse_ts, show_value
from spd.core.problems import Problem
from spd.core.yamlload import KeyPath, YamlDoc

TEMPLATE_FIELDS = ("poller", "object_type", "account", "date")


class ConfigModel(BaseModel):
    """Base of every config section: frozen, unknown keys rejected, numbers accepted as text."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True, defer_build=True)
    internal_keys: ClassVar[frozenset[str]] = frozenset()  # fields set by spd, never in the file

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        """`key:` or `key: null` means the key's default (an error only where the key is required)."""
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        return {k: v for k, v in data.items() if v is not None or k not in fields or fields[k].is_required()}

    @classmethod
    def allowed_keys(cls) -> list[str]:
        """The keys a config file may write in this section."""
        return [k for k in cls.model_fields if k not in cls.internal_keys]


def fail(msg: str, *loc: str | int) -> PydanticCustomError:
    """A validation error whose message is final; `loc` is appended to pydantic's location."""
    return PydanticCustomError("spd", "{msg}", {"msg": msg, "loc": loc})


def show(value: Any) -> str:
    """A value as messages quote it: strings in double quotes."""
    return json.dumps(value) if isinstance(value, str) else show_value(value)


def unknown_key(key: Any, allowed: list[str]) -> str:
    """The message for a key a section does not have, naming the key meant when it is a near miss
    (`timestamp_feild`): the list of allowed keys alone leaves the user to spot the typo."""
    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.75)
    hint = f"did you mean {show(close[0])}? " if close else ""
    return f"unknown key {show(key)}; {hint}allowed keys: {', '.join(allowed) or 'none'}"


def kind(value: Any) -> str:
    """What sort of YAML value this is, for "expected X, got Y"."""
    kinds = ((bool, "true/false"), (int, "a number"), (float, "a number"), (str, "text"),
             (list, "a list"), (dict, "a mapping"))
    return "nothing" if value is None else next((k for t, k in kinds if isinstance(value, t)), "a value")


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise fail(str(exc)) from None


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise fail(f"{format_duration(value)} is not positive; use a duration above zero, such as 30s")
    return value


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc)
    try:
        return parse_ts(value.isoformat() if isinstance(value, datetime) else value)
    except ValueError as exc:
        raise fail(str(exc)) from None


def _text(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise fail("is empty; write a value")
    return value


def _secret(value: SecretStr) -> SecretStr:
    if not value.get_secret_value().strip():
        raise fail("is empty; set the secret (check that its ${ENV} or ${file:PATH} is not empty)")
    return value


def check_url(value: str) -> str:
    """An http(s) URL without query or fragment, trailing slash removed."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise fail(f"{show(value)} is not a URL; use an https:// or http:// URL without a query")
    return value.rstrip("/")


def _template(value: str) -> str:
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError:
        names = ["?"]
    bad = [n for n in names if n not in TEMPLATE_FIELDS]
    if bad:
        allowed = ", ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS)
        raise fail(f"{show(value)} has a placeholder other than {allowed}; use only those "
                   "(write {{ and }} for literal braces)")
    return value


def _unique(value: list[str]) -> list[str]:
    for i, item in enumerate(value):
        if item in value[:i]:
            raise fail(f"{show(item)} is listed twice; list each one once", i)
    return value


class Unchecked:
    """`Annotated[T, Unchecked]`: a field spd fills in itself, taken as it is. Unlike pydantic's
    SkipValidation, no schema of T is built (for an object type: six dataclasses, a third of
    building the config's schema, which every `spd validate` pays)."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.any_schema()


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Interval = Annotated[timedelta, BeforeValidator(_duration), AfterValidator(_positive)]
Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]
Text = Annotated[str, BeforeValidator(_text)]
FilePath = Annotated[Path, BeforeValidator(_text)]
Secret = Annotated[SecretStr, AfterValidator(_secret)]
Url = Annotated[str, AfterValidator(check_url)]
Template = Annotated[str, BeforeValidator(_text), AfterValidator(_template)]
UniqueTexts = Annotated[list[Text], AfterValidator(_unique)]


def schema_problems(exc: ValidationError, doc: YamlDoc, root: type[ConfigModel]) -> list[Problem]:
    """Every problem pydantic found, reworded, at its key path (lines are filled in later)."""
    return [Problem(*_problem(err, doc, root)) for err in exc.errors(include_url=False)]


def _problem(err: Any, doc: YamlDoc, root: type[ConfigModel]) -> tuple[KeyPath, str]:
    ctx, value, kind_ = err.get("ctx") or {}, err.get("input"), err["type"]
    if kind_ == "spd":  # a model validator's own location follows the union tag pydantic adds
        return _normalize(tuple(err["loc"]) + tuple(ctx.get("loc", ())), doc), ctx["msg"]
    path = _normalize(err["loc"], doc)
    if kind_ == "missing":
        model = model_at(root, path[:-1], doc.data)
        required = [k for k, f in model.model_fields.items() if f.is_required()
                    and k not in model.internal_keys] if model else []
        return path[:-1], f"missing required key {show(path[-1])}; required keys: {', '.join(required)}"
    if kind_ == "extra_forbidden":
        model = model_at(root, path[:-1], doc.data)
        return path, unknown_key(path[-1], model.allowed_keys() if model else [])
    if kind_ in ("union_tag_invalid", "union_tag_not_found"):
        tags = ", ".join(_quoted(ctx.get("expected_tags", "")) or ["?"])
        what = f"{show(ctx.get('tag'))} is not a known type" if "tag" in ctx else "has no type"
        return path + ("type",), f"{what}; use one of: {tags}"
    return path, _reword(kind_, value, ctx, err["msg"])


_REWORD = {
    "int": "{v} is not a whole number; use a whole number such as 100",
    "float": "{v} is not a number; use a number such as 0.5",
    "bool": "{v} is not true or false; use true or false",
    "string_type": "expected text, got {k}; write a string",
    "dict_type": "expected a mapping, got {k}; write key: value pairs",
    "model_type": "expected a mapping, got {k}; write key: value pairs",
    "model_attributes_type": "expected a mapping, got {k}; write key: value pairs",
    "list_type": "expected a list, got {k}; write a list such as [a, b]",
    "too_short": "is empty; give at least one",
    "string_too_short": "is empty; write a value",
    "greater_than": "{v} is too small; use a number above {gt}",
    "greater_than_equal": "{v} is too small; use {ge} or more",
    "less_than_equal": "{v} is too large; use {le} or less",
}


def _reword(kind_: str, value: Any, ctx: dict[str, Any], msg: str) -> str:
    if kind_ == "literal_error":
        return f"{show(value)} is not allowed; use one of: {', '.join(_quoted(ctx.get('expected', '')))}"
    family = kind_.split("_", 1)[0] if kind_.startswith(("int_", "float_", "bool_")) else kind_
    template = _REWORD.get(family)
    if template is None:
        return f"{msg.splitlines()[0]}; see config/spd.example.yaml"
    limits = {k: _number(ctx.get(k)) for k in ("gt", "ge", "le")}
    return template.format(v=show(value), k=kind(value), **limits)


def _number(value: Any) -> Any:
    """`0.0` -> `0`: limits read as the user would write them."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _quoted(text: str) -> list[str]:
    """`"'a', 'b' or 'c'"` (pydantic's list of choices) -> `["a", "b", "c"]`."""
    parts = [p.strip() for chunk in str(text).split(" or ") for p in chunk.split(",")]
    return [p[1:-1] if len(p) > 1 and p[0] == p[-1] == "'" else p for p in parts if p]


def _normalize(loc: tuple[Any, ...], doc: YamlDoc) -> KeyPath:
    """Pydantic's location without the union tags it inserts (`emitters.out.file.path`)."""
    path: KeyPath = ()
    for i, key in enumerate(loc):
        if i == len(loc) - 1 or path + (key,) in doc.lines:
            path += (key,)
    return path


def model_at(root: type[ConfigModel], path: KeyPath, data: Any) -> type[ConfigModel] | None:
    """The model class validating the mapping at `path` (discriminated unions by `type`)."""
    tp: Any = root
    for key in path:
        tp = _pick(tp, data)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(key))
            tp = field.annotation if field else None
        elif get_origin(tp) in (dict, list):
            tp = get_args(tp)[-1]
        else:
            return None
        data = data.get(key) if isinstance(data, dict) else None
    tp = _pick(tp, data)
    return tp if isinstance(tp, type) and issubclass(tp, ConfigModel) else None


def _pick(tp: Any, data: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) in (Union, types.UnionType):
        models = [a for a in get_args(tp) if isinstance(a, type) and issubclass(a, BaseModel)]
        if len(models) == 1:
            return models[0]
        tag = data.get("type") if isinstance(data, dict) else None
        return next((m for m in models if "type" in m.model_fields and m.model_fields["type"].default == tag),
                    None)
    return tp

