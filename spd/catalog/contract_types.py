"""The vocabulary of Amazon's contract table (`spd.catalog.contract`): what kind of rule a row states
and the typed value it carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

BOUND = "bound"  # value: Bound; where: the parameter
ID = "id"  # value: the dotted path of a result item's identifier; where: item.PATH
PAGE_SIZE = "page_size"  # value: the maximum the prose gives, or None (the schema's); where: the parameter
LAG = "lag"  # value: Limit; where: the bound that must be this far in the past
MAX_WINDOW = "max_window"  # value: Limit between the created (or updated) bounds
MAX_AGE = "max_age"  # value: Limit: how far back the lower bound may reach
REQUIRES = "requires"  # value: Requires (first pages)
EXACTLY_ONE = "exactly_one"  # value: OneOf (first pages): one of them is required, and no more
PAGE2 = "page2"  # value: Page2
TOKEN_TTL = "token_ttl"  # value: timedelta
OMIT_MARKETPLACE = "omit_marketplace"  # value: the parameter; data served only without it
DEFAULT_REACH = "default_reach"  # value: (parameter, timedelta) assumed when it is left out
SAME_MARKETPLACE = "same_marketplace"  # value: a parameter that must name the marketplace
OFFSET = "offset"  # value: Offset (paging by position rather than token)
REPORT_PERIOD = "report_period"  # value: {period: (first day, last day)} of aligned report dates
# Sentences tying one parameter to another ("cannot be set when", "required when"). spd exec
# applies them; the simulator does not read them (it keeps its own reading of those sentences),
# which is why `requires_with` is not a `requires` row with `when`, that both read.
FORBIDS = "forbids"  # value: Given (first pages): with `when` sent, none of `names` may be
REQUIRES_WITH = "requires_with"  # value: Given (first pages): with `when` sent, all of `names` must be


@dataclass(frozen=True)
class Bound:
    """One end of a time filter: the timestamp it filters (`created` or `updated`), which end,
    the result item's field it compares (None: items carry no such time) and whether the
    instant itself is included (None: the model does not say)."""

    field: str
    end: str  # "after" | "before"
    item_field: str | tuple[str, ...] | None
    inclusive: bool | None


@dataclass(frozen=True)
class Limit:
    """A duration limit and what Amazon does beyond it: refuse (400) or answer empty."""

    delta: timedelta
    beyond: str = "error"  # "error" | "empty"


@dataclass(frozen=True)
class Requires:
    """`need` must be sent (all of them, or one with `any_of`) whenever one of `when` is sent
    (`NAME` or `NAME=VALUE`; empty: always)."""

    need: tuple[str, ...]
    when: tuple[str, ...] = ()
    any_of: bool = False


@dataclass(frozen=True)
class OneOf:
    """Exactly one of `names` must be sent: neither is refused, and so is more than one."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class Given:
    """What sending `when` (`NAME` or `NAME=VALUE`) does to `names`: forbids them (`forbids`)
    or requires them all (`requires_with`)."""

    when: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class Page2:
    """What a next-page request carries: `same` arguments plus the token (`except_` may change),
    the token `only`, or the token with `set` values, the filters then being ignored (`ignores`)."""

    mode: str  # "same" | "only" | "ignores"
    set: tuple[tuple[str, str], ...] = ()
    except_: tuple[str, ...] = ()


@dataclass(frozen=True)
class Offset:
    """Paging by position: where the offset and page size go (`query:NAME` or `body:a.b`) and
    where the total comes from (`response:a.b`, or `param:NAME` of the request)."""

    offset: str
    limit: str
    total: str
    results: str | None  # response path of the result list; None: each page is a document


@dataclass(frozen=True)
class Rule:
    """One rule of one operation, with the sentence that states it."""

    op: str  # "api.operationId", the catalog's operation name
    kind: str
    value: Any
    quote: str
    where: str | None = None  # None: the operation's description
    source: str | None = None  # a guide or report schema URL when the quote is not in the model
    note: str = field(default="", compare=False)  # how the row reads the sentence, where needed
