"""The messages spd emits: DESIGN §4 JSON, serialized once with orjson and shared by emitters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from spd.core.times import normalize_timestamp, now_ms, rfc3339
from spd.core.typing import Triple
from spd.emitters.base import Message

EMIT_INDIVIDUALLY = "individually"
EMIT_PAGE = "page"
# A page message holds at most this many objects; a larger API page (getInvoices and AWD inbound
# shipments page by 200) becomes several messages with the same `page` number.
MAX_PAGE_RESULTS = 100
# Datetimes inside raw objects (report rows parsed by spd) also serialize as UTC with Z.
_DUMPS_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def normalize_cursor(cursor: str | datetime | None) -> str | None:
    """An object's timestamp as UTC RFC 3339 with Z; text that is not a timestamp passes as is."""
    if cursor is None or isinstance(cursor, datetime):
        return rfc3339(cursor) if cursor is not None else None
    return normalize_timestamp(cursor) or cursor


def build_messages(
    *,
    poller: str,
    account: str,
    object_type: str,
    emit: str,
    window: tuple[datetime, datetime | None],
    page: int,
    objects: list[Triple],
    emitted_at: datetime | None = None,
) -> list[Message]:
    """The messages for one delivered page: one per object (`individually`) or one (`page`).

    `objects` holds `(id, cursor, data)`; `emitted_at` defaults to now (tests pin it). An empty
    page gives no message in either mode (no `"results": []` noise on every idle poll).
    """
    stamp = rfc3339(emitted_at or now_ms())
    if emit == EMIT_PAGE and objects:
        head = {
            "poller": poller,
            "account": account,
            "object_type": object_type,
            "window": [rfc3339(window[0]), rfc3339(window[1]) if window[1] else None],
            "page": page,
            "emitted_at": stamp,
        }
        return [Message(_dumps({**head, "results": [data for _, _, data in objects[i:i + MAX_PAGE_RESULTS]]}),
                        poller, poller, account, object_type)
                for i in range(0, len(objects), MAX_PAGE_RESULTS)]
    if emit not in (EMIT_INDIVIDUALLY, EMIT_PAGE):
        raise ValueError(f"emit must be {EMIT_INDIVIDUALLY!r} or {EMIT_PAGE!r}, not {emit!r}")
    return [
        Message(
            _dumps({
                "poller": poller,
                "account": account,
                "object_type": object_type,
                "id": obj_id,
                "cursor": normalize_cursor(cursor),
                "emitted_at": stamp,
                "data": data,
            }),
            obj_id, poller, account, object_type,
        )
        for obj_id, cursor, data in objects
    ]


def _dumps(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body, option=_DUMPS_OPTIONS)
