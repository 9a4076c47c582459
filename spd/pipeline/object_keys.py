"""Each object's (id, cursor) for a whole page at once, without the general path walk per object.

`object_id` and `object_cursor` (spd.sources.object_type) handle every shape: dotted paths,
list indexes, fallback timestamp fields, content hashes, timestamps to normalize. Most objects
need none of that: their id is a string under a top-level key and their time is already UTC
RFC 3339 with `Z` under another. Those take two dict lookups and one format check here; any
other object goes through the general functions, so every triple is exactly what they give.
Only objects on that general path can lack an id or a time, so only they are counted for the
`objects_without_id_or_time` log event. A page whose objects all take the short path (the usual
page of orders) is checked at once: a few passes in C over the whole page instead of a regex and
a handful of lookups per object.
"""

from __future__ import annotations

from typing import Any

from spd.core.times import is_canonical_ts
from spd.core.typing import Triple
from spd.pipeline.poller_support import count_fallbacks
from spd.sources.object_type import ObjectType, object_cursor, object_id

_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_CANONICAL_LINE = b"0000-00-00T00:00:00Z\n"  # is_canonical_ts's shape, digits made 0
_DICT = frozenset({dict})
_STR = frozenset({str})


def all_canonical(cursors: list[str]) -> bool:
    """Whether every one of `cursors` is `YYYY-MM-DDTHH:MM:SSZ` with ASCII digits (each would
    pass is_canonical_ts): one translate of the joined page compared with its expected shape. A
    newline inside a cursor makes the page longer than n lines of that shape, so it fails."""
    if not cursors:
        return True
    try:
        joined = ("\n".join(cursors) + "\n").encode("ascii")
    except UnicodeEncodeError:
        return False
    return joined.translate(_DIGITS_TO_ZERO) == _CANONICAL_LINE * len(cursors)


class ObjectKeys:
    """(id, cursor, object) of the objects of one type, by one `timestamp_field`."""

    def __init__(self, ot: ObjectType, timestamp_field: str) -> None:
        self.ot = ot
        self.timestamp_field = timestamp_field
        id_field = ot.extraction.id_field
        first = next(iter(ot.extraction.timestamp_paths(timestamp_field)), None)
        # Top-level keys only: a dotted path (or a list index) takes the general path.
        self.id_key = id_field if id_field and "." not in id_field else None
        self.time_key = first if first and "." not in first else None

    def triples(self, objects: list[Any]) -> tuple[list[Triple], dict[str, int]]:
        """Each object's (id, cursor, object), and the fallbacks counted (see count_fallbacks)."""
        page = self.whole_page(objects)
        if page is not None:
            return page, {}
        id_key, time_key = self.id_key, self.time_key
        out: list[Triple] = []
        general: list[Triple] = []
        for obj in objects:
            plain = type(obj) is dict
            obj_id = obj.get(id_key) if plain and id_key is not None else None
            cursor = obj.get(time_key) if plain and time_key is not None else None
            if type(obj_id) is str and type(cursor) is str and is_canonical_ts(cursor):
                out.append((obj_id, cursor, obj))
                continue
            triple = (object_id(self.ot, obj), object_cursor(self.ot, obj, self.timestamp_field), obj)
            out.append(triple)
            general.append(triple)
        return out, count_fallbacks(self.ot, general, self.timestamp_field) if general else {}

    def whole_page(self, objects: list[Any]) -> list[Triple] | None:
        """The triples of a page whose objects are all dicts with a str id and a canonical str
        cursor under the top-level keys; None when any is not (each object then decides)."""
        id_key, time_key = self.id_key, self.time_key
        if id_key is None or time_key is None or not objects or set(map(type, objects)) != _DICT:
            return None
        ids = [obj.get(id_key) for obj in objects]
        cursors = [obj.get(time_key) for obj in objects]
        if set(map(type, ids)) != _STR or set(map(type, cursors)) != _STR:
            return None
        return list(zip(ids, cursors, objects)) if all_canonical(cursors) else None
