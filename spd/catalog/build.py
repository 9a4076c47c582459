"""Generate spd's operation catalog (`models/`) from Amazon's SP-API model files.

One compact JSON file per API plus `index.json`. Only structure is kept: no descriptions,
examples or other prose from the models. The output is deterministic (sorted keys).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import orjson

from spd.catalog.model import collect_refs, shipped_models
from spd.core.errors import CatalogError

FORMAT = 1
INDEX = "index.json"
METHODS = ("get", "put", "post", "delete", "patch")

# JSON Schema keywords kept in body/response schemas; everything else (description,
# example, title, x-* extensions) is dropped.
_SCHEMA_KEYS = frozenset({
    "$ref", "type", "format", "enum", "items", "properties", "required",
    "additionalProperties", "allOf", "anyOf", "oneOf", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern",
    "minItems", "maxItems", "uniqueItems", "multipleOf", "minProperties",
    "maxProperties", "default", "readOnly", "discriminator",
})
_PARAM_LIMITS = {
    "minimum": "minimum", "maximum": "maximum", "minLength": "min_length",
    "maxLength": "max_length", "minItems": "min_items", "maxItems": "max_items",
    "pattern": "pattern", "default": "default",
}
_ITEM_LIMITS = {"minLength": "item_min_length", "maxLength": "item_max_length",
                "pattern": "item_pattern"}
_PLAN_RE = re.compile(r"usage plans?:", re.IGNORECASE)
_NEXT_RE = re.compile(r"next|pag", re.IGNORECASE)
_NOT_RESULTS = frozenset({"errors", "warnings"})
# Read-only operations sent as POST/PUT (batch look-ups, searches, quotes): safe to retry.
_READ_ONLY = re.compile(r"(get|list|search|query|estimate|preview|retrieve|check|validate)[A-Z]")

# The models say only in prose which scope a grantless operation needs.
GRANTLESS_SCOPES = {"notifications": "sellingpartnerapi::notifications"}
GRANTLESS_OPERATIONS = {
    ("application_2023-11-30", "rotateApplicationClientSecret"):
        "sellingpartnerapi::client_credential:rotation",
}
# Operations that return personal data (PII) and take a Restricted Data Token
# (Tokens API use-case guide); the models carry no machine-readable mark for this.
RESTRICTED = {
    "ordersV0": {"getOrders", "getOrder", "getOrderItems", "getOrderAddress",
                 "getOrderBuyerInfo", "getOrderItemsBuyerInfo", "getOrderRegulatedInfo"},
    "merchantFulfillmentV0": {"getShipment", "cancelShipment", "createShipment"},
    "shipmentInvoicingV0": {"getShipmentDetails"},
    "vendorDirectFulfillmentOrdersV1": {"getOrders", "getOrder"},
    "vendorDirectFulfillmentOrders_2021-12-28": {"getOrders", "getOrder"},
    "vendorDirectFulfillmentShippingV1": {
        "getShippingLabels", "getShippingLabel",
        "getPackingSlips", "getPackingSlip", "getCustomerInvoices", "getCustomerInvoice"},
    "vendorDirectFulfillmentShipping_2021-12-28": {
        "getShippingLabels", "getShippingLabel", "createShippingLabels",
        "getPackingSlips", "getPackingSlip", "getCustomerInvoices", "getCustomerInvoice"},
}


@dataclass
class BuildReport:
    """What `build_catalog` produced."""

    apis: int = 0
    operations: int = 0
    usage_plans: int = 0
    numeric_rates: int = 0
    paginated: int = 0
    files: list[str] = field(default_factory=list)
    total_bytes: int = 0
    largest_file: tuple[str, int] = ("", 0)
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{self.apis} APIs, {self.operations} operations ({self.usage_plans} with a "
                f"Usage Plan, {self.numeric_rates} with a numeric rate, {self.paginated} "
                f"paginated); {len(self.files)} files, {self.total_bytes} bytes"
                + "".join(f"; warning: {w}" for w in self.warnings))


def dumps(obj: Any) -> bytes:
    """The one serialisation of catalog files: compact, sorted keys, trailing newline."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) + b"\n"


def parse_usage_plan(description: str) -> tuple[bool, float | None, int | None]:
    """(has a Usage Plan, rate, burst) from an operation description's markdown table."""
    text = description.replace("\\n", "\n")  # one model has literal backslash-n
    match = _PLAN_RE.search(text)
    if not match:
        return False, None, None
    in_table = False
    for line in text[match.end():].splitlines():
        line = line.strip()
        if not line.startswith("|"):
            if in_table:
                break
            continue
        in_table = True
        cells = [c.strip() for c in line.strip("|").split("|")]
        if any("rate" in c.lower() for c in cells) or all(set(c) <= set("-: ") for c in cells):
            continue  # header or separator row
        # 3-column variant: | Default | rate | burst | -> last two cells
        try:
            return True, float(cells[-2]), int(float(cells[-1]))
        except (ValueError, IndexError):
            return True, None, None  # placeholders such as `| n | n |`
    return True, None, None


def clean_schema(schema: Any) -> Any:
    """A copy of a Swagger schema with only validation keywords (no prose, no x-*)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: clean_schema(sub) for name, sub in value.items()}
        elif key in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
            out[key] = [clean_schema(sub) for sub in value]
        elif key in ("items", "additionalProperties"):
            out[key] = clean_schema(value)
        else:
            out[key] = value
    return out


def definitions_closure(roots: set[str], definitions: dict[str, Any]) -> dict[str, Any]:
    """Cleaned definitions reachable from `roots`."""
    out: dict[str, Any] = {}
    todo = sorted(roots)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        if name not in definitions:
            raise CatalogError(f"definition {name!r} is referenced but missing")
        out[name] = clean_schema(definitions[name])
        refs: set[str] = set()
        collect_refs(out[name], refs)
        todo.extend(sorted(refs - out.keys()))
    return out


class _Model:
    """One Swagger model file and helpers to walk its schemas."""

    def __init__(self, api_id: str, doc: dict[str, Any]) -> None:
        self.api_id = api_id
        self.doc = doc
        self.definitions: dict[str, Any] = doc.get("definitions") or {}

    def resolve(self, schema: Any) -> dict[str, Any]:
        seen: set[str] = set()
        while isinstance(schema, dict) and "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name in seen or name not in self.definitions:
                return {}
            seen.add(name)
            schema = self.definitions[name]
        return schema if isinstance(schema, dict) else {}

    def properties(self, schema: Any) -> dict[str, Any]:
        """Properties of an object schema, following $ref and merging allOf."""
        schema = self.resolve(schema)
        props = dict(schema.get("properties") or {})
        for part in schema.get("allOf") or ():
            props.update(self.properties(part))
        return props

    def param(self, raw: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in raw:
            raw = (self.doc.get("parameters") or {}).get(raw["$ref"].rsplit("/", 1)[-1], {})
        return raw


def _param_entry(model: _Model, raw: dict[str, Any]) -> dict[str, Any]:
    location = raw.get("in")
    entry: dict[str, Any] = {"name": raw["name"], "location": location,
                             "required": bool(raw.get("required", location == "path"))}
    if location == "body":
        schema = model.resolve(raw.get("schema"))
        entry["type"] = schema.get("type") or "object"
        return entry
    items = raw.get("items") or {}
    for key, value in (("type", raw.get("type")), ("format", raw.get("format")),
                       ("items_type", items.get("type")),
                       ("enum", raw.get("enum") or items.get("enum"))):
        if value is not None:
            entry[key] = value
    if raw.get("type") == "array":
        entry["collection_format"] = raw.get("collectionFormat") or "csv"
    for key, name in _PARAM_LIMITS.items():
        if raw.get(key) is not None:
            entry[name] = raw[key]
    for key, name in _ITEM_LIMITS.items():
        if items.get(key) is not None:
            entry[name] = items[key]
    if raw.get("x-amazon-spds-greedy-path-parameter"):
        entry["greedy"] = True
    return entry


def _merged_params(model: _Model, item: dict[str, Any], op: dict[str, Any]) -> list[dict[str, Any]]:
    """Path-level then operation-level parameters; the operation's win on (name, in)."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in list(item.get("parameters") or ()) + list(op.get("parameters") or ()):
        raw = model.param(raw)
        if raw:
            merged[(raw["name"], raw.get("in", ""))] = raw
    return list(merged.values())


def _success_schema(op: dict[str, Any]) -> Any:
    for code in sorted(op.get("responses") or {}):
        response = op["responses"][code]
        if code.startswith("2") and isinstance(response, dict) and "schema" in response:
            return response["schema"]
    return None


def _walk(model: _Model, schema: Any, path: tuple[str, ...],
          depth: int = 0) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Yield (path, resolved schema) for every property, depth-first, to a bounded depth."""
    if depth > 5:
        return
    for name, sub in model.properties(schema).items():
        resolved = model.resolve(sub)
        yield path + (name,), resolved
        if resolved.get("type") != "array":
            yield from _walk(model, resolved, path + (name,), depth + 1)


def find_pagination(model: _Model, params: list[dict[str, Any]], schema: Any) -> dict[str, Any] | None:
    """Token parameter, token location and result array location, or None."""
    token_params = [p["name"] for p in params if p.get("in") == "query"
                    and "token" in p["name"].lower() and _NEXT_RE.search(p["name"])]
    if not token_params or schema is None:
        return None
    token_param = token_params[0]
    props = list(_walk(model, schema, ()))
    tokens = [path for path, s in props if s.get("type") == "string"
              and "token" in path[-1].lower() and "next" in path[-1].lower()]
    if not tokens:
        return None
    exact = [p for p in tokens if p[-1] == token_param]
    token_path = min(exact or tokens, key=len)
    return {"token_param": token_param, "token_path": list(token_path),
            "result_path": _result_path(model, props, token_path)}


def _result_path(model: _Model, props: list[tuple[tuple[str, ...], dict[str, Any]]], token_path: tuple[str, ...]) -> list[str] | None:
    """The array beside the token or one of its ancestors, else an object of arrays beside the
    token (financial events: one list per event type), else the only shallowest array."""
    arrays = [path for path, s in props
              if s.get("type") == "array" and path[-1] not in _NOT_RESULTS]
    for level in range(len(token_path) - 1, -1, -1):
        beside = [p for p in arrays if len(p) == level + 1 and p[:level] == token_path[:level]]
        if beside:
            return list(beside[0])
    level = len(token_path) - 1
    for path, schema in props:
        if len(path) == level + 1 and path[:level] == token_path[:level] and _all_arrays(model, schema):
            return list(path)
    shallowest = [p for p in arrays if len(p) == min(map(len, arrays), default=0)]
    return list(shallowest[0]) if len(shallowest) == 1 else None


def _all_arrays(model: _Model, schema: dict[str, Any]) -> bool:
    """An object whose properties are all arrays (several result lists in one object)."""
    props = model.properties(schema)
    return len(props) > 1 and all(model.resolve(s).get("type") == "array" for s in props.values())


def _sandbox_only(item: dict[str, Any], op: dict[str, Any]) -> bool:
    return bool(item.get("x-amzn-api-sandbox-only") or op.get("x-amzn-api-sandbox-only"))


def _has_sandbox(item: dict[str, Any], op: dict[str, Any]) -> bool:
    if "x-amzn-api-sandbox" in item or "x-amzn-api-sandbox" in op:
        return True
    return any(isinstance(r, dict) and "x-amzn-api-sandbox" in r
               for r in (op.get("responses") or {}).values())


def _grantless(api_id: str, op: dict[str, Any], report: BuildReport) -> str | None:
    scope = GRANTLESS_OPERATIONS.get((api_id, op["operationId"]))
    if scope is None and "grantless" in (op.get("description") or "").lower():
        scope = GRANTLESS_SCOPES.get(api_id)
        if scope is None:
            report.warnings.append(f"{api_id}.{op['operationId']}: grantless, scope unknown")
    return scope


def _operation_entry(model: _Model, path: str, method: str, item: dict[str, Any],
                     op: dict[str, Any], report: BuildReport) -> dict[str, Any]:
    params = _merged_params(model, item, op)
    has_plan, rate, burst = parse_usage_plan(op.get("description") or "")
    body = next((p for p in params if p.get("in") == "body"), None)
    success = _success_schema(op)
    entry: dict[str, Any] = {"operation_id": op["operationId"], "method": method.upper(),
                             "path": path, "params": [_param_entry(model, p) for p in params]}
    optional = {
        "has_body": body is not None,
        "usage_plan": has_plan,
        "rate": rate,
        "burst": burst,
        "pagination": find_pagination(model, params, success),
        "grantless_scope": _grantless(model.api_id, op, report),
        "restricted": op["operationId"] in RESTRICTED.get(model.api_id, ()),
        "sandbox": _has_sandbox(item, op),
        "sandbox_only": _sandbox_only(item, op),
        "deprecated": bool(op.get("deprecated")),
        "safe": method == "get" or bool(_READ_ONLY.match(op["operationId"])),
        "body_schema": clean_schema(body["schema"]) if body and "schema" in body else None,
        "response_schema": clean_schema(success) if success is not None else None,
    }
    # absent means None/False: keeps the files small
    entry.update({k: v for k, v in optional.items() if v is not None and v is not False})
    return entry


def build_api(api_id: str, doc: dict[str, Any], report: BuildReport) -> dict[str, Any]:
    """The catalog document of one API (one model file)."""
    model = _Model(api_id, doc)
    raw = [(path, method, item, item[method])
           for path, item in (doc.get("paths") or {}).items()
           for method in METHODS if isinstance(item.get(method), dict)]
    counts: dict[str, int] = {}
    for *_, op in raw:
        counts[op["operationId"]] = counts.get(op["operationId"], 0) + 1
    operations: dict[str, Any] = {}
    for path, method, item, op in raw:
        op_id = op["operationId"]
        if counts[op_id] > 1:  # one operationId for several methods: id@METHOD
            op_id = f"{op_id}@{method.upper()}"
        if op_id in operations:
            raise CatalogError(f"{api_id}: operation id {op_id!r} is not unique")
        operations[op_id] = _operation_entry(model, path, method, item, op, report)
    refs: set[str] = set()
    for entry in operations.values():
        collect_refs(entry.get("body_schema"), refs)
        collect_refs(entry.get("response_schema"), refs)
    info = doc.get("info") or {}
    return {"format": FORMAT, "id": api_id, "title": str(info.get("title", "")).strip(),
            "version": str(info.get("version", "")).strip(), "operations": operations,
            "definitions": definitions_closure(refs, model.definitions)}


def _read_models(src: Path) -> dict[str, dict[str, Any]]:
    """Every Swagger model under `src`, keyed by file stem (the API id)."""
    if not src.is_dir():
        raise CatalogError(f"{src}: not a directory; give a checkout of "
                           "amzn/selling-partner-api-models (or its models/ folder)")
    models: dict[str, dict[str, Any]] = {}
    for path in sorted(src.rglob("*.json")):
        try:
            doc = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise CatalogError(f"{path}: cannot read model file: {exc}") from exc
        if not (isinstance(doc, dict) and "swagger" in doc and "paths" in doc):
            continue  # JSON schemas and other files in a checkout
        if path.stem in models:
            raise CatalogError(f"{path}: a second model file named {path.stem}.json")
        models[path.stem] = doc
    if not models:
        raise CatalogError(f"{src}: no SP-API model files (Swagger *.json) found")
    return models


def _write(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _remove_stale(dest: Path, keep: set[str]) -> None:
    """Delete catalog files a previous build wrote that this build no longer produces."""
    index = dest / INDEX
    if not index.exists():
        return
    try:
        old = orjson.loads(index.read_bytes()).get("apis", {})
    except (orjson.JSONDecodeError, AttributeError):
        return
    for entry in old.values():
        name = entry.get("file", "") if isinstance(entry, dict) else ""
        if name and name not in keep and "/" not in name and (dest / name).is_file():
            (dest / name).unlink()


def build_catalog(src: Path, dest: Path) -> BuildReport:
    """Generate the catalog in `dest` from every model file under `src`."""
    src, dest = Path(src), Path(dest)
    report = BuildReport()
    outputs: dict[str, bytes] = {}
    index: dict[str, Any] = {}
    for api_id, doc in _read_models(src).items():
        api = build_api(api_id, doc, report)
        name = f"{api_id}.catalog.json"  # not `<api>.json`: never mistaken for Amazon's model files
        outputs[name] = dumps(api)
        index[api_id] = {"file": name, "title": api["title"], "version": api["version"],
                         "operations": len(api["operations"])}
        _count(report, api)
    outputs[INDEX] = dumps({"format": FORMAT, "apis": index})
    dest.mkdir(parents=True, exist_ok=True)
    _remove_stale(dest, set(outputs))
    for name, data in outputs.items():
        _write(dest / name, data)
        report.files.append(name)
        report.total_bytes += len(data)
        if len(data) > report.largest_file[1]:
            report.largest_file = (name, len(data))
        if len(data) > 1_000_000:
            report.warnings.append(f"{name}: {len(data)} bytes (over 1 MB)")
    return report


def _count(report: BuildReport, api: dict[str, Any]) -> None:
    report.apis += 1
    for op in api["operations"].values():
        report.operations += 1
        report.usage_plans += bool(op.get("usage_plan"))
        report.numeric_rates += op.get("rate") is not None
        report.paginated += "pagination" in op


def default_models_dir() -> Path:
    """Where the shipped catalog lives (the repo's `models/` in an editable install)."""
    return shipped_models()
