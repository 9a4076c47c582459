"""`spd objects`, `spd ops` and `spd models build`: what the catalog and the object types say."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from spd.catalog import ops
from spd.catalog.build import build_catalog, default_models_dir
from spd.catalog.model import load_catalog
from spd.commands.catalog_views import print_object_type, print_operation
from spd.core.errors import UsageError
from spd.core.output import Column, print_json, print_listing, wants_json
from spd.sources import describe
from spd.sources.reports import registry

API_COLUMNS = (Column("API", "id"), Column("VERSION", "version"),
               Column("OPERATIONS", "operations", "right"), Column("TITLE", "title"))
OPERATION_COLUMNS = (Column("OPERATION", "id"), Column("METHOD", "method"), Column("PATH", "path"),
                     Column("RATE", "rate", "right"), Column("BURST", "burst", "right"))
OBJECT_COLUMNS = (Column("TYPE", "name"), Column("KIND", lambda r: r.get("report_kind") or "operation"),
                  Column("SUPPORTED", "supported"),
                  Column("TIMESTAMPS", lambda r: r.get("timestamp_fields") or r.get("format")),
                  Column("NOTES", lambda r: r.get("only") if "only" in r else _report_note(r)))


def _report_note(row: dict[str, Any]) -> str | None:
    """A report type's required options, or that it cannot be requested."""
    if not row.get("requestable"):
        return "not requestable"
    required = row.get("required_options")
    return f"needs {', '.join(required)}" if required else None


def cmd_objects(args: argparse.Namespace) -> int:
    if args.schema:
        if not args.type:
            raise UsageError("spd objects --schema needs an object type")
        print_json(describe.object_schema(args.type))
    elif args.type:
        described = describe.describe_object_type(args.type)
        if described["kind"] == "report":  # what Amazon documents of the report type
            described["report"] = registry.describe_report_spec(registry.report_spec(
                described["name"][len(registry.REPORT_PREFIX):]))
        if wants_json(args.json):
            print_json(described)
        else:
            print_object_type(described)
    else:
        types = describe.list_object_types() + registry.list_report_types()
        print_listing(types, types, OBJECT_COLUMNS, json_flag=args.json)
    return 0


def cmd_ops(args: argparse.Namespace) -> int:
    catalog = load_catalog()
    if args.api is None:
        apis = ops.list_apis(catalog)
        print_listing(apis, apis, API_COLUMNS, json_flag=args.json)
    elif args.operation is None:
        operations = ops.list_operations(catalog, args.api)
        print_listing(operations, operations, OPERATION_COLUMNS, json_flag=args.json)
    elif args.schema:
        print_json(ops.operation_schema(catalog, args.api, args.operation))
    else:
        described = ops.describe_operation(catalog, args.api, args.operation)
        if wants_json(args.json):
            print_json(described)
        else:
            print_operation(described, catalog.operation(args.api, args.operation).schema("body"))
    return 0


def cmd_models_build(args: argparse.Namespace) -> int:
    dest = Path(args.to) if args.to else default_models_dir()
    report = build_catalog(Path(args.source), dest)
    print(report)
    return 0
