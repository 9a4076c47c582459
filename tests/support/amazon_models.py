"""Amazon's model files read directly (never spd's catalog or registry): operations, parameters,
response and request schemas, descriptions. The contract tests judge spd against these."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .spd import SHARED_MODELS

METHODS = ("get", "put", "post", "delete", "patch")


@dataclass
class ModelOp:
    """One operation as Amazon's model file states it."""

    api: str
    doc: dict[str, Any]
    path: str
    method: str
    raw: dict[str, Any]
    params: dict[str, dict[str, Any]]

    @property
    def name(self) -> str:
        return f"{self.api}.{self.raw['operationId']}"

    def resolve(self, schema: Any) -> dict[str, Any]:
        seen: set[str] = set()
        while isinstance(schema, dict) and "$ref" in schema:
            ref = schema["$ref"].rsplit("/", 1)[-1]
            if ref in seen:
                return {}
            seen.add(ref)
            schema = self.doc["definitions"][ref]
        return schema if isinstance(schema, dict) else {}

    def properties(self, schema: Any) -> dict[str, Any]:
        schema = self.resolve(schema)
        props = dict(schema.get("properties") or {})
        for part in schema.get("allOf") or ():
            props.update(self.properties(part))
        return props

    def response(self) -> dict[str, Any]:
        for code in sorted(self.raw.get("responses") or {}):
            resp = self.raw["responses"][code]
            if code.startswith("2") and isinstance(resp, dict) and "schema" in resp:
                return resp["schema"]
        return {}

    def at(self, schema: Any, path: tuple[str, ...] | list[str]) -> dict[str, Any] | None:
        """The (resolved) schema at a property path; a numeric step enters an array's items."""
        node = self.resolve(schema)
        for key in path:
            if key.isdigit():
                node = self.resolve(node.get("items"))
                continue
            sub = self.properties(node).get(key)
            if sub is None:
                return None
            node = {**self.resolve(sub), **{k: v for k, v in sub.items() if k != "$ref"}}
        return node

    def body_schema(self) -> dict[str, Any]:
        body = next((p for p in self.params.values() if p.get("in") == "body"), None)
        return self.resolve(body.get("schema")) if body else {}


@lru_cache(maxsize=None)
def model_ops() -> dict[str, ModelOp]:
    """Every operation of every model file, by "api.operationId"."""
    assert SHARED_MODELS is not None
    out: dict[str, ModelOp] = {}
    for file in sorted(Path(SHARED_MODELS).rglob("*.json")):
        doc = json.loads(file.read_text())
        if not isinstance(doc.get("paths"), dict):
            continue
        shared = doc.get("parameters") or {}
        for path, item in doc["paths"].items():
            for method in METHODS:
                raw = item.get(method)
                if not isinstance(raw, dict):
                    continue
                params: dict[str, dict[str, Any]] = {}
                for p in [*(item.get("parameters") or ()), *(raw.get("parameters") or ())]:
                    if "$ref" in p:
                        p = shared[p["$ref"].rsplit("/", 1)[-1]]
                    params[p["name"]] = p
                op = ModelOp(file.stem, doc, path, method, raw, params)
                out.setdefault(op.name, op)
    return out


def description_at(op: ModelOp, where: str | None, results: tuple[str, ...] | None = None) -> str:
    """The description text a contract row quotes: the operation's, a parameter's, a result
    item property's (`item.a.b`) or a request body property's (`body.a.b`)."""
    if where is None:
        return op.raw.get("description", "")
    if where.startswith("item."):
        assert results is not None
        items = op.resolve((op.at(op.response(), results) or {}).get("items"))
        node = op.at(items, where[len("item."):].split("."))
        return (node or {}).get("description", "")
    if where.startswith("body."):
        node = op.at(op.body_schema(), where[len("body."):].split("."))
        return (node or {}).get("description", "")
    return op.params[where].get("description", "")
