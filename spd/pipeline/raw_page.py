"""A page of objects read without building them: each object stays the bytes Amazon sent.

A page of 100 orders is about 114 KB of JSON. Parsing it into dicts (orjson.loads) and writing
the same dicts out again (orjson.dumps) was most of the CPU spd spent per page, yet spd itself
reads only each object's id and time. Here msgspec decodes the reply with every object left as
its raw bytes, then only the id and the time of each object; the message splices the bytes in
as they came (an `orjson.Fragment`): the same JSON values, in Amazon's own spelling.

Only a page the dict path would key the same way takes this one: the type's results are a
plain list (no flattening), its id and time are keys (nested ones too), every id is a string,
every time already UTC RFC 3339 with `Z`, and the reply is valid UTF-8. For any other reply
`read` returns None and the caller parses it as before (spd.pipeline.object_keys), so its errors,
fallbacks and triples stay exactly those of the dict path.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import msgspec
import orjson

from spd.core.typing import Triple
from spd.pipeline import poller_support
from spd.pipeline.object_keys import all_canonical
from spd.sources.object_type import ObjectType

_STR = frozenset({str})


@dataclass(frozen=True)
class RawPage:
    """A reply read by RawPageReader: (id, cursor, raw object) of each object, the next token
    and the upper bound the API echoed (as it came)."""

    triples: list[Triple]
    next_token: str | None
    echo: Any


def _struct(name: str, fields: dict[str, Any]) -> type[msgspec.Struct]:
    """A msgspec Struct of the JSON keys in `fields` (each optional: None when absent); any
    other key is skipped unread. Attribute `f<i>` holds the i-th key."""
    names = {f"f{i}": key for i, key in enumerate(fields)}
    return msgspec.defstruct(name, [(f, fields[key] | None, None) for f, key in names.items()],
                             rename=names)


def _envelope(paths: list[tuple[str, ...]], leaf: dict[tuple[str, ...], Any],
              attrs: dict[tuple[str, ...], tuple[str, ...]], name: str = "Reply",
              above: tuple[str, ...] = ()) -> type[msgspec.Struct]:
    """Nested Structs down to each of `paths`, whose values decode as `leaf[path]`; `attrs`
    gets each path as the attribute names that reach it. ValueError when a key is both a
    value and a parent."""
    fields: dict[str, Any] = {}
    below: dict[str, list[tuple[str, ...]]] = {}
    for path in paths:
        key = path[len(above)]
        if len(path) == len(above) + 1:
            fields[key] = leaf[path]
        else:
            below.setdefault(key, []).append(path)
    if set(fields) & set(below):
        raise ValueError(f"overlapping paths {sorted(paths)}")
    for key, subpaths in below.items():
        fields[key] = _envelope(subpaths, leaf, attrs, f"{name}_{key}", above + (key,))
    for path in paths:  # this level's attribute, then the level below's
        index = list(fields).index(path[len(above)])
        attrs[path] = (f"f{index}", *attrs.get(path, ()))
    return _struct(name, fields)


class RawPageReader:
    """Reads the replies of one object type and timestamp field; see the module docstring."""

    def __init__(self, results: tuple[str, ...], token: tuple[str, ...],
                 echo: tuple[str, ...] | None, id_path: tuple[str, ...],
                 time_path: tuple[str, ...]) -> None:
        leaf: dict[tuple[str, ...], Any] = {results: list[msgspec.Raw], token: Any}
        if echo is not None:
            leaf[echo] = Any
        attrs: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._reply = msgspec.json.Decoder(_envelope(list(leaf), leaf, attrs))
        self._results, self._token = attrs[results], attrs[token]
        self._echo = attrs[echo] if echo is not None else None
        keys: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._keys = msgspec.json.Decoder(
            _envelope([id_path, time_path], {id_path: Any, time_path: Any}, keys, "Keys"))
        self._id, self._time = (attrgetter(".".join(keys[p])) for p in (id_path, time_path))

    @classmethod
    def for_type(cls, ot: ObjectType, timestamp_field: str) -> RawPageReader | None:
        """The reader of `ot`'s replies, or None when its objects are not read this way. Pollers
        of the same type share one: each holds the classes msgspec generates for it (10,000
        pollers with a reader of their own held about 80 MB more)."""
        ext = ot.extraction
        time_key = next(iter(ext.timestamp_paths(timestamp_field)), None)
        id_key = ext.id_field
        if ext.flatten is not None or not ext.results_path or not id_key or not time_key:
            return None
        if id_key == time_key or any(part.isdigit() for part in f"{id_key}.{time_key}".split(".")):
            return None  # one key for both, or a list index: for the general path
        try:
            return _shared(tuple(ext.results_path), tuple(ot.paging.token_path),
                           ot.window.echo_path(timestamp_field), tuple(id_key.split(".")),
                           tuple(time_key.split(".")))
        except ValueError:  # paths that do not nest (one key both a value and a parent)
            return None

    def read(self, raw: bytes) -> RawPage | None:
        """The page in `raw`, or None when it is for the dict path (see the module docstring)."""
        try:
            raw.decode("utf-8")  # msgspec leaves the strings inside a raw value unchecked
            reply = self._reply.decode(raw)
            objects = _get(reply, self._results)
            if objects is None or len(objects) > poller_support.MAX_PAGE_OBJECTS:  # refused there
                return None
            bodies = [bytes(o) for o in objects]
            keys = [self._keys.decode(b) for b in bodies]
            ids = list(map(self._id, keys))
            cursors = list(map(self._time, keys))
        except (UnicodeDecodeError, msgspec.DecodeError, AttributeError):  # AttributeError: a
            return None  # level above the id or time missing
        if keys and (set(map(type, ids)) != _STR or set(map(type, cursors)) != _STR
                     or not all_canonical(cursors)):
            return None
        token = _get(reply, self._token) or None
        if token is not None and type(token) is not str:
            return None
        if b"\n" in raw or b"\r" in raw:  # whitespace between tokens: a message is one line
            bodies = [b.replace(b"\n", b" ").replace(b"\r", b" ") for b in bodies]
        echo = _get(reply, self._echo) if self._echo is not None else None
        return RawPage(list(zip(ids, cursors, map(orjson.Fragment, bodies))), token, echo)


@functools.cache
def _shared(results: tuple[str, ...], token: tuple[str, ...], echo: tuple[str, ...] | None,
            id_path: tuple[str, ...], time_path: tuple[str, ...]) -> RawPageReader:
    """The one reader of replies of this shape."""
    return RawPageReader(results, token, echo, id_path, time_path)


def _get(reply: Any, attrs: tuple[str, ...]) -> Any:
    """The value at `attrs` in a decoded reply (None where a level is missing)."""
    for attr in attrs:
        if reply is None:
            return None
        reply = getattr(reply, attr)
    return reply
