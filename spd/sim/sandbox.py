"""Amazon's static sandbox, from the `x-amzn-api-sandbox` examples of Amazon's model files.

`spd sim --sandbox --models DIR` answers every operation with static examples: a request whose
parameters match a case gets that case's response and status; a request that matches no case
gets Amazon's 400 `InvalidInput` "Could not match input arguments"; a path or method the
sandbox does not serve gets a 404. Usage plans are not enforced in sandbox mode.

Matching: every parameter a case names must equal the request's (path segments and query
values as text, arrays element by element, the body as JSON). A case parameter written without
a `value` wrapper is read as the value itself, and an empty one (`{}`) matches anything; both
are slips in Amazon's models. A case naming the body under another name than the model's body
parameter (often just "body") is compared with the request body. When several cases match, the
one naming the most parameters wins, then the first in the model.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from spd.sim.common import ApiReject
from spd.sim.limits import UNLIMITED_RATE

if TYPE_CHECKING:  # the state is made by spd.sim.app, which serves these routes
    from spd.sim.app import SimState

NO_MATCH = {"errors": [{"code": "InvalidInput", "message": "Could not match input arguments",
                        "details": ""}]}
NOT_FOUND = {"errors": [{"code": "NotFound", "message": "Resource not found", "details": ""}]}
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
ANY = object()  # a case parameter that matches every value


@dataclass
class Case:
    """One static example: the parameters to match, then the status, body and headers."""

    status: int
    params: dict[str, Any]
    response: Any
    has_response: bool
    headers: dict[str, str]
    specificity: int


@dataclass
class Route:
    """One sandboxed operation of one model file."""

    api: str
    operation_id: str
    method: str
    template: str
    regex: re.Pattern[str]
    params: dict[str, dict[str, Any]]  # name -> the model's parameter object
    cases: list[Case] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.api}.{self.operation_id}"


class SandboxIndex:
    """Every sandboxed operation, found by method and path."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes: dict[str, list[Route]] = {}
        for route in sorted(routes, key=_specificity):
            self.routes.setdefault(route.method, []).append(route)

    @property
    def route_count(self) -> int:
        return sum(len(rs) for rs in self.routes.values())

    @property
    def case_count(self) -> int:
        return sum(len(r.cases) for rs in self.routes.values() for r in rs)

    def find(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for a request and its path parameters (decoded), or None."""
        path = raw_path.rstrip("/") or "/"
        for route in self.routes.get(method.upper(), ()):
            found = route.regex.fullmatch(path)
            if found:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
        return None


def _specificity(route: Route) -> tuple[int, int]:
    literal = sum(1 for s in route.template.split("/") if s and not s.startswith("{"))
    return (-literal, -len(route.template))


def load_sandbox(directory: Path) -> SandboxIndex:
    """Reads every model file under `directory` (Amazon's models/ tree or a copy of it)."""
    files = sorted(Path(directory).rglob("*.json"))
    if not files:
        raise ValueError(f"{directory}: no model files (*.json) found")
    routes: list[Route] = []
    for file in files:
        model = orjson.loads(file.read_bytes())
        if isinstance(model, dict) and isinstance(model.get("paths"), dict):
            routes.extend(_routes(file.stem, model))
    return SandboxIndex(routes)


def _routes(api: str, model: dict[str, Any]) -> list[Route]:
    shared = model.get("parameters") or {}
    routes = []
    for template, item in model["paths"].items():
        if not isinstance(item, dict):
            continue
        for method in HTTP_METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            params = {}
            for raw in [*(item.get("parameters") or ()), *(op.get("parameters") or ())]:
                param = _resolve(raw, shared)
                if "name" in param:
                    params[param["name"]] = param
            cases = _cases(op)
            if cases:
                routes.append(Route(api, op.get("operationId", method), method.upper(), template,
                                    _template_regex(template), params, cases))
    return routes


def _resolve(param: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    ref = param.get("$ref")
    return shared.get(ref.rsplit("/", 1)[-1], {}) if isinstance(ref, str) else param


def _template_regex(template: str) -> re.Pattern[str]:
    parts = []
    for segment in template.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            parts.append(f"(?P<{_group(segment[1:-1])}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("/" + "/".join(parts))


def _group(name: str) -> str:
    return name if name.isidentifier() else re.sub(r"\W", "_", name)


def _cases(op: dict[str, Any]) -> list[Case]:
    cases = []
    for status, response in (op.get("responses") or {}).items():
        sandbox = response.get("x-amzn-api-sandbox") if isinstance(response, dict) else None
        for raw in (sandbox or {}).get("static") or ():
            params = {n: _expected(v) for n, v in ((raw.get("request") or {}).get("parameters")
                                                   or {}).items()}
            headers = {n: str(v.get("value", v)) if isinstance(v, dict) else str(v)
                       for n, v in (raw.get("responseHeaders") or {}).items()}
            cases.append(Case(int(status), params, raw.get("response"), "response" in raw,
                              headers, sum(1 for v in params.values() if v is not ANY)))
    return cases


def _expected(spec: Any) -> Any:
    if isinstance(spec, dict) and "value" in spec:
        return spec["value"]
    if spec == {} or spec is None:
        return ANY
    return spec


# --- matching ---------------------------------------------------------------------------------


def match(route: Route, path_values: dict[str, str], query: Any, headers: Any,
          body: Any) -> Case | None:
    """The matching case naming the most parameters (first in the model on a tie), or None."""
    best: Case | None = None
    for case in route.cases:
        if all(_param_matches(route, name, expected, path_values, query, headers, body)
               for name, expected in case.params.items()):
            if best is None or case.specificity > best.specificity:
                best = case
    return best


def _param_matches(route: Route, name: str, expected: Any, path_values: dict[str, str],
                   query: Any, headers: Any, body: Any) -> bool:
    if expected is ANY:
        return True
    param = route.params.get(name)
    where = param.get("in") if param else ("body" if body is not None else "query")
    if where == "body":
        return bool(body == expected)
    if where == "path":
        actual = path_values.get(_group(name))
        return actual is not None and _same_scalar(expected, actual)
    if where == "header":
        value = headers.get(name)
        return value is not None and _same_scalar(expected, value)
    values = query.getall(name, [])
    if not values:
        return False
    if isinstance(expected, list):
        return _same_list(expected, values, (param or {}).get("collectionFormat"))
    return len(values) == 1 and _same_scalar(expected, values[0])


def _same_list(expected: list[Any], values: list[str], collection_format: str | None) -> bool:
    separator = {"ssv": " ", "tsv": "\t", "pipes": "|"}.get(collection_format or "csv", ",")
    items = values if len(values) > 1 or collection_format == "multi" else values[0].split(separator)
    return len(items) == len(expected) and all(_same_scalar(e, a) for e, a in zip(expected, items))


def _same_scalar(expected: Any, actual: str) -> bool:
    if isinstance(expected, bool):
        return actual.lower() == str(expected).lower()
    if isinstance(expected, (int, float)):
        try:
            return float(actual) == float(expected)
        except ValueError:
            return False
    if isinstance(expected, (dict, list)):
        return actual == orjson.dumps(expected).decode()
    return actual == str(expected)


# --- the aiohttp side -------------------------------------------------------------------------

SANDBOX = web.AppKey("spd_sim_sandbox", SandboxIndex)


def _reply(body: Any, status: int, headers: dict[str, str], has_body: bool = True) -> web.Response:
    if status == 204 or not has_body:
        return web.Response(status=status, headers=headers)  # a 204 carries no content
    return web.Response(body=orjson.dumps(body), status=status, headers=headers,
                        content_type="application/json")


async def sandbox_endpoint(state: SimState, request: web.Request) -> web.StreamResponse:
    """Every SP-API request in sandbox mode: route → auth → parse → match → the case's answer."""
    headers = {"x-amzn-RequestId": str(uuid.uuid4()), "x-amzn-RateLimit-Limit": UNLIMITED_RATE}
    found = request.app[SANDBOX].find(request.method, request.raw_path.split("?", 1)[0])
    if found is None:
        return _reply(NOT_FOUND, 404, headers)
    route, path_values = found
    stats = state.stats.setdefault(route.name, Counter())
    stats["requests"] += 1
    try:
        state._authorize(request)
        body = await _read_body(request)
    except ApiReject as exc:
        stats["client_errors"] += 1
        return _reply(exc.body(), exc.status, headers)
    case = match(route, path_values, request.query, request.headers, body)
    if case is None:
        stats["client_errors"] += 1
        return _reply(NO_MATCH, 400, headers)
    stats["ok" if case.status < 400 else "client_errors"] += 1
    return _reply(case.response, case.status, {**headers, **case.headers}, case.has_response)


async def _read_body(request: web.Request) -> Any:
    raw = await request.read() if request.can_read_body else b""
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiReject(400, "InvalidInput", "The request body is not valid JSON.") from None


def add_sandbox_routes(app: web.Application, directory: Path, state: SimState) -> None:
    """Serves the static sandbox of the model files in `directory` on every other path."""
    app[SANDBOX] = load_sandbox(directory)
    app.router.add_route("*", "/{tail:.*}", functools.partial(sandbox_endpoint, state))
