"""`spd ops API OPERATION` and `spd objects TYPE` for a person at a terminal.

The JSON of those two commands (what scripts read) is laid out as a few aligned tables drawn
by spd.core.output's `print_table`, the helper of every other listing: a headerless one of
facts, then one per kind of row (parameters, body fields, cursor fields, bounds, Amazon's
sentences). Every value of the JSON appears somewhere; quoted sentences wrap at the terminal's
width. The catalog keeps no descriptions (DESIGN.md: only structure is shipped), so none are shown.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

from spd.core.output import Column, cell_text, print_table

FACT_COLUMNS = (Column("", "what"), Column("", "value", wrap=True))
PARAM_COLUMNS = (Column("PARAMETER", "name"), Column("IN", "location"),
                 Column("REQUIRED", "required"), Column("TYPE", lambda p: _param_type(p)),
                 Column("FORMAT / LIMITS", lambda p: _limits(p), wrap=True))
BODY_COLUMNS = (Column("BODY FIELD", "name"), Column("TYPE", "type"), Column("REQUIRED", "required"))
CURSOR_COLUMNS = (Column("CURSOR", "cursor"), Column("OBJECT FIELD", "object_field"),
                  Column("UPPER BOUND", "upper_bound"), Column("ECHOED AT", "echo"),
                  Column("NEEDS PARAMS", "needs_params"))
BOUND_COLUMNS = (Column("CURSOR", "cursor"), Column("END", "end"), Column("PARAMETER", "param"),
                 Column("BOUND", "bound"), Column("AMAZON SAYS", "says", wrap=True))
RULE_COLUMNS = (Column("RULE", "rule"), Column("WHERE", "where"),
                Column("AMAZON SAYS", "says", wrap=True))
# Each param key of spd.catalog.ops' JSON shown in FORMAT / LIMITS, with its words
_LIMIT_WORDS = (("format", "format"), ("minimum", "minimum"), ("maximum", "maximum"),
                ("min_length", "min length"), ("max_length", "max length"),
                ("min_items", "min items"), ("max_items", "max items"), ("pattern", "pattern"),
                ("item_min_length", "each item min length"),
                ("item_max_length", "each item max length"), ("item_pattern", "each item pattern"),
                ("default", "default"))


def print_operation(op: Mapping[str, Any], body: Mapping[str, Any] | None,
                    stream: IO[Any] | None = None) -> None:
    """`spd ops API OPERATION`: `op` is spd.catalog.ops' JSON, `body` its body's JSON Schema."""
    out = sys.stdout if stream is None else stream
    out.write(f"{op['api']}.{op['id']}: {op['method']} {op['path']}\n")
    _facts(out, _operation_facts(op))
    _section(out, op["params"], PARAM_COLUMNS, "no parameters")
    if body is not None:
        _section(out, body_fields(body), BODY_COLUMNS, "a body without fields")


def _operation_facts(op: Mapping[str, Any]) -> list[tuple[str, Any]]:
    pag = op["pagination"]
    facts: list[tuple[str, Any]] = []
    if op["operation_id"] != op["id"]:
        facts.append(("operation id", op["operation_id"]))
    facts += [
        ("rate", "not stated in the model" if op["rate"] is None and op["burst"] is None
         else f"{cell_text(op['rate'])} requests/s, burst {cell_text(op['burst'])}"),
        ("pagination", "none (one page)" if pag is None else
         f"next page: send {pag['token_param']} = the reply's {pag['token_path']}"
         + (f"; results at {pag['result_path']}" if pag["result_path"] else "")),
        ("body", f"JSON (fields below; the whole schema: spd ops {op['api']} {op['id']} --schema)"
         if op["has_body"] else "none"),
        ("grantless", op["grantless_scope"] or "no (called with a seller's authorization)"),
        ("restricted", "yes (personal data: needs a Restricted Data Token)" if op["restricted"]
         else "no"),
        ("sandbox", "sandbox only" if op["sandbox_only"] else op["sandbox"]),
        ("deprecated", op["deprecated"]),
        ("safe", "yes (read-only: a retry after a 5xx or timeout cannot do harm)" if op["safe"]
         else "no (it changes something)"),
    ]
    return facts


def _param_type(param: Mapping[str, Any]) -> str:
    """`string`, or `array of string (csv)`."""
    kind = cell_text(param.get("type"))
    if "items_type" in param:
        kind = f"{kind} of {param['items_type']}"
    if "collection_format" in param:
        kind = f"{kind} ({param['collection_format']})"
    return kind


def _limits(param: Mapping[str, Any]) -> str | None:
    """What the model allows beyond the type: enum, format, ranges, patterns, default."""
    parts = []
    if "enum" in param:
        each = "each item " if param.get("type") == "array" else ""
        parts.append(f"{each}one of {cell_text(param['enum'])}")
    parts += [f"{words} {cell_text(param[key])}" for key, words in _LIMIT_WORDS if key in param]
    if param.get("greedy"):
        parts.append("greedy (the value may contain /)")
    return "; ".join(parts) or None


def body_fields(schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The top-level fields of a request body's JSON Schema: name, type, required."""
    required = set(schema.get("required") or ())
    properties = schema.get("properties") or {}
    if not properties:
        return [{"name": "(the body)", "type": _schema_type(schema), "required": True}]
    return [{"name": name, "type": _schema_type(prop), "required": name in required}
            for name, prop in properties.items()]


def _schema_type(schema: Mapping[str, Any]) -> str:
    """`string`, `Address` (a definition), `array of Item`."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    kind = schema.get("type")
    if kind == "array" and isinstance(schema.get("items"), Mapping):
        return f"array of {_schema_type(schema['items'])}"
    if "enum" in schema:
        return f"{cell_text(kind)}: one of {cell_text(schema['enum'])}"
    return cell_text(kind if kind is not None else "any")


def print_object_type(described: Mapping[str, Any], stream: IO[Any] | None = None) -> None:
    """`spd objects TYPE`: `described` is spd.sources.describe's JSON (with `report` for
    report types)."""
    out = sys.stdout if stream is None else stream
    out.write(f"{described['name']}: {described['kind']} type, from {described['api']} "
              f"{described['operation']}\n")
    _facts(out, _object_facts(described))
    stamps = described["timestamp_fields"] or {}
    _section(out, _cursor_rows(described, stamps), CURSOR_COLUMNS, "no cursor fields")
    rules = list(described["amazon_says"] or ())
    bounds = _bound_rows(stamps, rules)
    if bounds:
        _section(out, bounds, BOUND_COLUMNS, "")
    quoted = {id(rule) for row in bounds for rule in row["rules"]}
    rest = [{"rule": r["rule"], "where": r["where"], "says": _says([r])}
            for r in rules if id(r) not in quoted]
    if rest:
        _section(out, rest, RULE_COLUMNS, "")
    if described.get("report"):
        out.write("\n")
        _facts(out, _report_facts(described["report"]))


def _next_page(d: Mapping[str, Any]) -> str:
    """How the poller asks for the next page: the token, where the reply has it, what goes with it."""
    if d["token_param"] is None:
        return "none (one page)"
    if not d["token_path"]:  # a report: createReport's reply is the report id, no pages
        return f"none (one reply, followed by its {d['token_param']})"
    paging = f"send {d['token_param']} = the reply's {d['token_path']}"
    if d["token_alone"]:
        paging += ", alone (without the first page's parameters)"
    if d["token_params"]:
        paging += f", with {_pairs(d['token_params'])}"
    if d["token_ttl"]:
        paging += f"; a token lives {d['token_ttl']}"
    return paging


def _object_facts(d: Mapping[str, Any]) -> list[tuple[str, Any]]:
    facts: list[tuple[str, Any]] = [
        ("aliases", d["aliases"]), ("supported", d["supported"]), ("only", d["only"]),
        ("results", d["results_path"]), ("id field", d["id_field"]), ("next page", _next_page(d)),
        ("page size", None if d["page_size_param"] is None
         else f"{d['page_size_param']}, at most {cell_text(d['page_size_max'])}"),
        ("marketplaces", None if d["marketplace_param"] is None else
         f"{d['marketplace_param']}, " + ("one per request (a series per marketplace)"
                                          if d["single_marketplace"] else "all in one request")),
        ("lag", None if d["lag"] is None else f"{d['lag']} (a window ends at least this long before now)"),
        ("max window", d["max_window"] or "no limit"),
        ("max age", "no limit stated" if d["max_age"] is None
         else f"{d['max_age']} (how far back the API reaches)"),
        ("fixed params", None if not d["fixed_params"] else _pairs(d["fixed_params"])),
        ("needs params", d["needs_params"]), ("flatten", d["flatten"]),
        ("include", d["includes"]),
    ]
    return facts


def _cursor_rows(d: Mapping[str, Any], stamps: Mapping[str, Any]) -> list[dict[str, Any]]:
    echo = d["echo_before"] or {}
    return [{"cursor": name, "object_field": spec["object_field"], "upper_bound": spec["upper_bound"],
             "echo": echo.get(name), "needs_params": spec["needs_params"]}
            for name, spec in stamps.items()]


def _bound_rows(stamps: Mapping[str, Any], rules: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per end of each cursor's filter, with the `bound` sentences about its parameter."""
    rows = []
    for name, spec in stamps.items():
        bounds = spec["bounds"] or {}
        for end in ("after", "before"):
            param = spec[f"{end}_param"]
            if param is None and end not in bounds:
                continue
            said = [r for r in rules if r["rule"] == "bound" and param is not None and r["where"] == param]
            rows.append({"cursor": name, "end": end,
                         "param": param if param is not None else "none (polls from the watermark)",
                         "bound": bounds.get(end), "says": _says(said), "rules": said})
    return rows


def _says(rules: Iterable[Mapping[str, Any]]) -> str | None:
    """Amazon's sentences, quoted, each with its source when it is not the model file."""
    quotes = [f"\"{r['quote']}\"" + (f" ({r['source']})" if r.get("source") else "") for r in rules]
    return " ".join(quotes) or None


def _report_facts(report: Mapping[str, Any]) -> list[tuple[str, Any]]:
    options = report["options"]
    return [
        ("report kind", report["report_kind"]), ("requestable", report["requestable"]),
        ("options", None if not options else
         "; ".join(f"{name}: {cell_text(values)}" for name, values in options.items())),
        ("required options", report["required_options"]),
        ("period aligned", report["period_aligned"]), ("spans periods", report["spans_periods"]),
        ("format", report["format"]), ("row id", report["row_id"]), ("source", report["source"]),
    ]


def _pairs(pairs: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in pairs.items())


def _facts(out: IO[Any], facts: Sequence[tuple[str, Any]]) -> None:
    """Label/value lines, aligned, without a header; those without a value are left out."""
    print_table(({"what": what, "value": value} for what, value in facts
                 if value is not None and value != "" and value != []), FACT_COLUMNS,
                stream=out, header=False)


def _section(out: IO[Any], rows: Sequence[Mapping[str, Any]], columns: Sequence[Column],
             empty: str) -> None:
    """A blank line, then a table (its header names the section)."""
    out.write("\n")
    print_table(rows, columns, stream=out, empty=empty)
