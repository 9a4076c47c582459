"""An operation call checked against the catalog before anything is sent (`spd exec`, jobs).

Parameters are checked against the catalog and against what the models require only in
sentences (spd.catalog.contract's `requires`, `exactly_one`, `same_marketplace`, `forbids` and
`requires_with` rows); `--no-validate` sends what either refuses,
with a warning, for the day a model is wrong; a required marketplace parameter left out is
filled from the account's `marketplace_ids`; `--all-pages` is checked against how the operation
pages: by next token, or by position where Amazon says so (spd.catalog.contract).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from spd.catalog import contract
from spd.catalog.contract_types import (EXACTLY_ONE, FORBIDS, OFFSET, REQUIRES, REQUIRES_WITH,
                                        SAME_MARKETPLACE, Given, Offset, OneOf, Requires, Rule)
from spd.catalog.model import MARKETPLACE_PARAMS, Catalog, Operation
from spd.catalog.params import check_request, parse_pairs
from spd.core.errors import UsageError
from spd.core.paths import dig

RAW_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# `--all-pages` merges every page in memory before printing: past this many pages it stops with
# a message instead (`--max-pages` raises it). 1,000 pages is 100,000 orders of getOrders.
DEFAULT_MAX_PAGES = 1000


@dataclass
class ExecRequest:
    """What `spd exec` was asked to do (also what a job runs on every interval)."""

    api: str
    operation: str
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    all_pages: bool = False
    restricted: list[str] | None = None
    validate: bool = True  # False: send what the catalog refuses (a warning says so)
    max_pages: int = DEFAULT_MAX_PAGES  # with all_pages: more pages than this is an error


def read_body(text: str | None) -> Any:
    """`--body JSON` or `--body @file` parsed; None when not given; UsageError when malformed."""
    if text is None:
        return None
    source = "--body"
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--body {text}: cannot read {path}: {exc.strerror or exc}") from None
        source = f"--body @{path}"
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"{source} is not valid JSON: {exc}") from None


def prepare(catalog: Catalog, req: ExecRequest,
            marketplaces: list[str] | None = None) -> tuple[Operation, dict[str, Any]]:
    """The operation and its typed parameters, checked against the catalog (UsageError).

    With `marketplaces` (the account's), a required marketplace parameter left out is filled from
    them; without, it may stay missing until they are known."""
    op = catalog.operation(req.api, req.operation)
    params = dict(req.params)
    fillable = marketplace_params(op, params)
    if marketplaces is not None:
        params.update(fill_marketplaces(op, fillable, marketplaces))
        fillable = []
    try:
        params = check_request(op, params, req.body, fillable)
        check_contract(op, params)
    except UsageError as exc:
        if req.validate:
            raise
        print(f"spd: warning: {exc}; sending it anyway (--no-validate)", file=sys.stderr, flush=True)
        params = {k: v for k, v in params.items() if v is not None}
    if req.all_pages:
        check_paging(op, params, req.body)
    return op, params


@dataclass(frozen=True)
class Breach:
    """One row of the contract table a first page breaks: the parameters it sends that the row
    concerns (`sent`, the row's own order: the one that forbids or requires the others first)
    and those it lacks (`missing`), in words (`problem`) with what a caller that sends what it
    is given can do (`advice`): spd exec's words; `spd validate` says what a poller can do."""

    row: Rule
    problem: str
    advice: str = ""
    sent: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    one_of: bool = False  # any one of `missing` would do
    sep: str = ": "

    def line(self, op: str) -> str:
        """spd exec's line: the problem, what to do, the model's sentence."""
        advice = f"{self.sep}{self.advice}" if self.advice else ""
        return f'{op}: {self.problem}{advice} (the model: "{self.row.quote}")'


class ContractError(UsageError):
    """A request breaking a row of the contract table (exit 2), with the row's breach."""

    def __init__(self, op: Operation, breach: Breach) -> None:
        super().__init__(breach.line(op.name))
        self.op = op
        self.breach = breach


def check_contract(op: Operation, params: Mapping[str, Any]) -> None:
    """ContractError with the first row of `contract_breaches` that `params` break, on one line."""
    for breach in contract_breaches(op, params):
        raise ContractError(op, breach)


def contract_breaches(op: Operation, params: Mapping[str, Any]) -> list[Breach]:
    """What Amazon's model requires of a first page only in a sentence, and `params` break: the
    contract table's `requires` rows ("Either CreatedAfter or LastUpdatedAfter is required"),
    `exactly_one` rows (searchOrders: "exactly one of createdAfter and lastUpdatedAfter"),
    `same_marketplace` rows (fbaInventory's granularityId), `forbids` rows (getOrders:
    "`LastUpdatedAfter` and `LastUpdatedBefore` cannot be set when `CreatedAfter` is set") and
    `requires_with` rows (getInvoices' transaction identifier name and ID); in the table's order.
    A next page is Amazon's to judge by its token."""
    token = op.pagination.token_param if op.pagination is not None else None
    if token is not None and _sent(params, token):
        return []
    breaches = (_broken(row, op, params) for row in contract.rules_for(op.name))
    return [b for b in breaches if b is not None]


def _broken(row: Rule, op: Operation, params: Mapping[str, Any]) -> Breach | None:
    """What `params` break of one row of the contract table, or None."""
    if row.kind == REQUIRES:
        return _unmet(row, row.value, params)
    if row.kind == EXACTLY_ONE:
        return _not_one(row, row.value, params)
    if row.kind == SAME_MARKETPLACE:
        return _other_marketplace(row, op, params)
    if row.kind == FORBIDS:
        return _clash(row, row.value, params)
    if row.kind == REQUIRES_WITH:
        return _unmet(row, Requires(row.value.names, when=(row.value.when,)), params)
    return None


def _unmet(row: Rule, req: Requires, params: Mapping[str, Any]) -> Breach | None:
    """What `params` lack of `req`, or None."""
    given = [cond for cond in req.when if _sent(params, cond)]
    if req.when and not given:
        return None
    if req.any_of:
        if any(_sent(params, name) for name in req.need):
            return None
        missing = list(req.need)
        wanted = f"{' or '.join(req.need)} is"
    else:
        missing = [name for name in req.need if not _sent(params, name)]
        if not missing:
            return None
        wanted = f"{' and '.join(missing)} {'are' if len(missing) > 1 else 'is'}"
    problem = f"{wanted} required" + (f" with {' or '.join(given)}" if given else "")
    return Breach(row, problem, sent=tuple(c.partition("=")[0] for c in given), missing=tuple(missing),
                  one_of=req.any_of)


def _not_one(row: Rule, one: OneOf, params: Mapping[str, Any]) -> Breach | None:
    """Neither of `one.names` sent, or more than one; None when exactly one is."""
    given = [name for name in one.names if _sent(params, name)]
    if not given:
        return Breach(row, f"{' or '.join(one.names)} is required", missing=one.names, one_of=True)
    if len(given) > 1:
        return Breach(row, f"{' and '.join(given)} were {'both ' if len(given) == 2 else ''}given",
                      "give only one of them", sent=tuple(given))
    return None


def _clash(row: Rule, given: Given, params: Mapping[str, Any]) -> Breach | None:
    """What `params` send that `given.when` forbids, or None."""
    if not _sent(params, given.when):
        return None
    clash = [name for name in given.names if _sent(params, name)]
    if not clash:
        return None
    leave = "one of them" if len(clash) == 1 else f"{given.when} or {'both' if len(clash) == 2 else 'all'} of them"
    return Breach(row, f"{' and '.join(clash)} cannot be given with {given.when}", f"leave out {leave}",
                  sent=(given.when.partition("=")[0], *clash))


def _other_marketplace(row: Rule, op: Operation, params: Mapping[str, Any]) -> Breach | None:
    """`row.value` (granularityId) names a marketplace other than the marketplace parameter's."""
    name = str(row.value)
    market = next((p.name for p in op.params if p.name in MARKETPLACE_PARAMS), None)
    value, ids = params.get(name), params.get(market) if market else None
    if value in (None, "") or not ids or market is None:
        return None  # a missing parameter is the catalog's to report
    ids = [str(i) for i in ids] if isinstance(ids, list) else [str(ids)]
    if str(value) in ids:
        return None
    return Breach(row, f"{name} {value} is not the marketplace of {market} ({', '.join(ids)})",
                  "give the same marketplace to both", sent=(name, market), sep="; ")


def _sent(params: Mapping[str, Any], cond: str) -> bool:
    """Whether `NAME` (any value) or `NAME=VALUE` is among the parameters, as the simulator reads
    a query: an empty value is not sent."""
    name, eq, value = cond.partition("=")
    got = params.get(name)
    if got is None or got == "" or got == []:
        return False
    return not eq or str(got) == value


def marketplace_params(op: Operation, params: dict[str, Any]) -> list[str]:
    """Required marketplace parameters of `op` that `params` leaves out."""
    return [p.name for p in op.params if p.required and p.location == "query"
            and p.name in MARKETPLACE_PARAMS and params.get(p.name) is None]


def fill_marketplaces(op: Operation, names: list[str], ids: list[str]) -> dict[str, Any]:
    """The account's marketplace ids for each missing parameter, shaped as it takes them."""
    out: dict[str, Any] = {}
    for name in names:
        param = op.param(name)
        assert param is not None
        if not ids:
            continue  # the missing parameter is reported as such
        if param.type == "array" and (param.max_items is None or len(ids) <= param.max_items):
            out[name] = list(ids)
        elif len(ids) == 1:
            out[name] = ids[0]
        else:
            raise UsageError(f"{op.name}: parameter {name} takes one marketplace and the account "
                             f"has {len(ids)} ({', '.join(ids)}); choose one with -p {name}=ID")
    return out


def check_paging(op: Operation, params: dict[str, Any], body: Any) -> None:
    """UsageError when `--all-pages` cannot be followed for `op` with these arguments."""
    offset = offset_paging(op)
    if offset is not None:
        if offset.total.startswith("param:") and params.get(offset.total[len("param:"):]) is None:
            name = offset.total[len("param:"):]
            raise UsageError(f"{op.name}: --all-pages needs {name} (how many there are to page "
                             f"through) and {offset.limit.split(':', 1)[1]}")
        if offset_value(offset.limit, params, body) is None:
            where = offset.limit.replace("query:", "").replace("body:", "the body's ")
            raise UsageError(f"{op.name}: --all-pages needs {where} (the page size)")
        return
    if op.pagination is None:
        raise UsageError(f"{op.name} does not page; remove --all-pages")
    if op.pagination.result_path is None:
        raise UsageError(f"{op.name}: the catalog does not say where its results are, so pages "
                         "cannot be merged; remove --all-pages and follow the next token yourself")


def offset_paging(op: Operation) -> Offset | None:
    """How `op` pages by position, where Amazon says it does (spd.catalog.contract), else None."""
    found = contract.rule(op.name, OFFSET)
    return found.value if found is not None else None


def build_exec_request(api: str, operation: str, pairs: list[str], body: str | None,
                       all_pages: bool, restricted: str | None, validate: bool = True,
                       max_pages: int | None = None) -> ExecRequest:
    """An ExecRequest from command-line text (`max_pages` None: the default cap)."""
    elements = [e.strip() for e in restricted.split(",") if e.strip()] if restricted else None
    if max_pages is None:
        max_pages = DEFAULT_MAX_PAGES
    elif max_pages < 1:
        raise UsageError(f"--max-pages {max_pages}: give a number of pages, 1 or more")
    return ExecRequest(api, operation, parse_pairs(pairs), read_body(body), all_pages, elements,
                       validate, max_pages)


def check_raw(method: str, path: str) -> tuple[str, str]:
    """The method upper-cased and the path, or UsageError."""
    method = method.upper()
    if method not in RAW_METHODS:
        raise UsageError(f"method {method!r} is not supported; use one of {', '.join(RAW_METHODS)}")
    if "://" in path or not path.startswith("/"):
        raise UsageError(f"PATH {path!r} must be a path such as /orders/v0/orders (the account's "
                         "endpoint supplies the host)")
    return method, path


def offset_value(where: str, params: dict[str, Any], body: Any, response: Any = None) -> Any:
    """An integer at `query:NAME`, `param:NAME`, `body:a.b` or `response:a.b`, or None."""
    kind, _, path = where.partition(":")
    source = {"query": params, "param": params, "body": body, "response": response}[kind]
    value = source.get(path) if kind in ("query", "param") else dig(source, path)
    return int(value) if isinstance(value, (int, str)) and str(value).isdigit() else None
