"""The Notifications API v1 (destinations and subscriptions) and the notifications it sends.

Rules come from Amazon's model (notifications.json) as the catalog carries it: which operations
are grantless and with which scope, the required body keys, the SQS ARN pattern, the
`eventFilterType` enum, and that `eventFilter` and `filterExpression` are mutually exclusive.
A second destination for the same resource and a second subscription of one type and payload
version are 409 conflicts ("The resource specified conflicts with the current state").

With `SimSettings.sqs_endpoint`, the simulator publishes an ORDER_CHANGE notification (Amazon's
PascalCase envelope) into every subscribed SQS destination when an order changes, so push and
poll can be compared (`spd demo`, the push benchmark).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from spd.catalog.model import load_catalog
from spd.sim.common import ApiReject, Call

API = "notifications"
ARN_RE = re.compile(r"^arn:aws:sqs:\S+:\S+:\S+")  # SqsResource.arn's pattern
CONFLICT = "The resource specified conflicts with the current state."
NOT_FOUND = "The resource specified does not exist."


@dataclass
class NotificationWorld:
    """Destinations and subscriptions per caller, and what was published."""

    destinations: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> Destination
    subscriptions: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    # (caller, notificationType, payloadVersion) -> Subscription
    published: int = 0
    publish_errors: int = 0


def _definition(name: str) -> dict[str, Any]:
    return dict(load_catalog().api(API).definitions.get(name, {}))


def event_filter_types() -> frozenset[str]:
    """The `eventFilterType` enum of the model's EventFilter."""
    for part in _definition("EventFilter").get("allOf", []):
        enum = part.get("properties", {}).get("eventFilterType", {}).get("enum")
        if enum:
            return frozenset(enum)
    return frozenset()


def _enum(name: str) -> frozenset[str]:
    return frozenset(_definition(name).get("enum", []))


def check_scope(call: Call) -> None:
    """Grantless operations take a client_credentials token of their scope; the others a
    selling partner's token (as the catalog, from the model, says)."""
    op = load_catalog().operation(API, call.operation.split(".", 1)[1])
    scope = getattr(call.grant, "scope", None) if call.grant is not None else None
    if call.grant is None:
        return  # auth switched off
    if op.grantless_scope is not None and scope != op.grantless_scope:
        raise ApiReject(403, "Unauthorized", "Access to requested resource is denied.",
                        f"{op.id} is grantless: use a token of scope {op.grantless_scope}")
    if op.grantless_scope is None and scope is not None:
        raise ApiReject(403, "Unauthorized", "Access to requested resource is denied.",
                        f"{op.id} needs a selling partner's authorization, not a grantless token")


def _world(call: Call) -> NotificationWorld:
    world: NotificationWorld = call.state.notifications
    return world


def _body(call: Call) -> dict[str, Any]:
    if not isinstance(call.body, dict):
        raise ApiReject(400, "InvalidInput", "Request has missing or invalid parameters and cannot be parsed.")
    return call.body


def _bad(details: str) -> ApiReject:
    return ApiReject(400, "InvalidInput", "Request has missing or invalid parameters and cannot be parsed.",
                     details)


async def create_destination(call: Call) -> dict[str, Any]:
    """POST /notifications/v1/destinations (grantless)."""
    check_scope(call)
    body = _body(call)
    name, spec = body.get("name"), body.get("resourceSpecification")
    if not isinstance(name, str) or not name or not isinstance(spec, dict):
        raise _bad("name and resourceSpecification are required")
    kinds = [k for k in ("sqs", "eventBridge") if k in spec]
    if len(kinds) != 1:
        raise _bad("give exactly one resource type: sqs or eventBridge")
    if kinds == ["sqs"]:
        arn = (spec["sqs"] or {}).get("arn") if isinstance(spec["sqs"], dict) else None
        if not isinstance(arn, str) or len(arn) > 1000 or not ARN_RE.match(arn):
            raise _bad("sqs.arn must be an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:NAME)")
        resource: dict[str, Any] = {"sqs": {"arn": arn}}
    else:
        eb = spec["eventBridge"] if isinstance(spec["eventBridge"], dict) else {}
        if not eb.get("accountId") or not eb.get("region"):
            raise _bad("eventBridge needs accountId and region")
        resource = {"eventBridge": {"accountId": eb["accountId"], "region": eb["region"], "name": name}}
    world = _world(call)
    if any(d["resource"] == resource for d in world.destinations.values()):
        raise ApiReject(409, "Conflict", CONFLICT, "a destination for this resource already exists")
    destination_id = str(uuid.uuid4())
    destination = {"name": name, "destinationId": destination_id, "resource": resource}
    world.destinations[destination_id] = destination
    return {"payload": destination}


async def get_destinations(call: Call) -> dict[str, Any]:
    """GET /notifications/v1/destinations (grantless)."""
    check_scope(call)
    return {"payload": list(_world(call).destinations.values())}


def _destination(call: Call) -> dict[str, Any]:
    destination_id = call.path.rstrip("/").rsplit("/", 1)[-1]
    found = _world(call).destinations.get(destination_id)
    if found is None:
        raise ApiReject(404, "NotFound", NOT_FOUND, f"no destination {destination_id}")
    return found


async def get_destination(call: Call) -> dict[str, Any]:
    """GET /notifications/v1/destinations/{destinationId} (grantless)."""
    check_scope(call)
    return {"payload": _destination(call)}


async def delete_destination(call: Call) -> dict[str, Any]:
    """DELETE /notifications/v1/destinations/{destinationId} (grantless)."""
    check_scope(call)
    destination = _destination(call)
    del _world(call).destinations[destination["destinationId"]]
    return {}


def _type_from_path(call: Call, index: int) -> str:
    parts = call.path.rstrip("/").split("/")
    return parts[index]


def _check_directive(ntype: str, directive: Any) -> None:
    if not isinstance(directive, dict):
        raise _bad("processingDirective must be an object")
    if "eventFilter" in directive and "filterExpression" in directive:
        raise _bad("eventFilter and filterExpression are mutually exclusive")
    expression = directive.get("filterExpression")
    if expression is not None and (not isinstance(expression, str) or not 1 <= len(expression) <= 256):
        raise _bad("filterExpression must be 1 to 256 characters")
    event_filter = directive.get("eventFilter")
    if event_filter is None:
        return
    if not isinstance(event_filter, dict) or event_filter.get("eventFilterType") not in event_filter_types():
        raise _bad(f"eventFilter.eventFilterType must be one of {', '.join(sorted(event_filter_types()))}")
    if event_filter["eventFilterType"] != ntype:
        raise _bad(f"eventFilterType {event_filter['eventFilterType']} does not match {ntype}")
    changes = event_filter.get("orderChangeTypes") or []
    if not set(changes) <= _enum("OrderChangeTypeEnum"):
        raise _bad(f"orderChangeTypes must be among {', '.join(sorted(_enum('OrderChangeTypeEnum')))}")
    period = (event_filter.get("aggregationSettings") or {}).get("aggregationTimePeriod")
    if period is not None and period not in _enum("AggregationTimePeriod"):
        raise _bad(f"aggregationTimePeriod must be one of {', '.join(sorted(_enum('AggregationTimePeriod')))}")


async def create_subscription(call: Call) -> dict[str, Any]:
    """POST /notifications/v1/subscriptions/{notificationType}."""
    check_scope(call)
    ntype, body = _type_from_path(call, -1), _body(call)
    destination_id, version = body.get("destinationId"), body.get("payloadVersion")
    if not isinstance(destination_id, str) or not isinstance(version, str) or not version:
        raise _bad("destinationId and payloadVersion are required")
    world = _world(call)
    if destination_id not in world.destinations:
        raise ApiReject(404, "NotFound", NOT_FOUND, f"no destination {destination_id}")
    if "processingDirective" in body:
        _check_directive(ntype, body["processingDirective"])
    key = (call.grant.caller if call.grant is not None else "anonymous", ntype, version)
    if key in world.subscriptions:
        raise ApiReject(409, "Conflict", CONFLICT, f"a {ntype} subscription of payload version "
                                                   f"{version} already exists")
    subscription = {"subscriptionId": str(uuid.uuid4()), "payloadVersion": version,
                    "destinationId": destination_id}
    if body.get("processingDirective"):
        subscription["processingDirective"] = body["processingDirective"]
    world.subscriptions[key] = subscription
    return {"payload": subscription}


def _caller(call: Call) -> str:
    return call.grant.caller if call.grant is not None else "anonymous"


async def get_subscription(call: Call) -> dict[str, Any]:
    """GET /notifications/v1/subscriptions/{notificationType}[?payloadVersion=]."""
    check_scope(call)
    ntype, version = _type_from_path(call, -1), call.query.get("payloadVersion")
    found = [(k[2], s) for k, s in _world(call).subscriptions.items()
             if k[0] == _caller(call) and k[1] == ntype and version in (None, k[2])]
    if not found:
        raise ApiReject(404, "NotFound", NOT_FOUND, f"no {ntype} subscription")
    return {"payload": max(found)[1]}  # the latest payload version


async def get_subscriptions(call: Call) -> dict[str, Any]:
    """GET /notifications/v1/subscriptions?notificationTypes=TYPE."""
    check_scope(call)
    types = [t for t in call.query.get("notificationTypes", "").split(",") if t]
    if len(types) != 1:  # the model: minItems 1, maxItems 1
        raise _bad("notificationTypes takes exactly one notification type")
    version = call.query.get("payloadVersion")
    found = [s for k, s in _world(call).subscriptions.items()
             if k[0] == _caller(call) and k[1] == types[0] and version in (None, k[2])]
    return {"payload": {"subscriptions": found}}


def _by_id(call: Call) -> tuple[tuple[str, str, str], dict[str, Any]]:
    ntype, sub_id = _type_from_path(call, -2), _type_from_path(call, -1)
    for key, sub in _world(call).subscriptions.items():
        if key[1] == ntype and sub["subscriptionId"] == sub_id:
            return key, sub
    raise ApiReject(404, "NotFound", NOT_FOUND, f"no {ntype} subscription {sub_id}")


async def get_subscription_by_id(call: Call) -> dict[str, Any]:
    """GET /notifications/v1/subscriptions/{notificationType}/{subscriptionId} (grantless)."""
    check_scope(call)
    return {"payload": _by_id(call)[1]}


async def delete_subscription_by_id(call: Call) -> dict[str, Any]:
    """DELETE /notifications/v1/subscriptions/{notificationType}/{subscriptionId} (grantless)."""
    check_scope(call)
    key, _ = _by_id(call)
    del _world(call).subscriptions[key]
    return {}


def operations() -> dict[str, tuple[str, str, Any]]:
    """The Notifications API operations, from the catalog's methods and paths."""
    handlers = {
        "createDestination": create_destination, "getDestinations": get_destinations,
        "getDestination": get_destination, "deleteDestination": delete_destination,
        "createSubscription": create_subscription, "getSubscription": get_subscription,
        "getSubscriptions": get_subscriptions, "getSubscriptionById": get_subscription_by_id,
        "deleteSubscriptionById": delete_subscription_by_id,
    }
    catalog = load_catalog()
    out = {}
    for op_id, handler in handlers.items():
        op = catalog.operation(API, op_id)
        out[f"{API}.{op_id}"] = (op.method.upper(), op.path, handler)
    return out


def usage_plans() -> dict[str, tuple[float, int]]:
    """The catalog's rate and burst (the models' Usage Plans) of these operations and of
    ordersV0.getOrder, which `fetch: true` consumers call."""
    catalog = load_catalog()
    ops = [catalog.operation(API, name.split(".", 1)[1]) for name in operations()]
    ops.append(catalog.operation("ordersV0", "getOrder"))
    return {op.name: (op.rate, op.burst) for op in ops if op.rate is not None and op.burst is not None}
