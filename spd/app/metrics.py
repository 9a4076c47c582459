"""The daemon's optional HTTP endpoint: /metrics (Prometheus), /healthz and /readyz.

Metrics are read at scrape time from what the daemon already keeps (the state store, the
client's token buckets), so no code path carries counters of its own.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Iterator

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from spd.core.errors import SpdError
from spd.state.backend import PollerState

if TYPE_CHECKING:  # the daemon serves this endpoint: it imports this module
    from spd.app.daemon import Daemon

log = structlog.get_logger("spd.app.metrics")


class DaemonCollector:
    """Prometheus collector over a daemon's state store and client, read on each scrape."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.states: dict[str, PollerState | None] = {}  # read by `refresh` just before a scrape

    async def refresh(self) -> None:
        """Reads every running poller's state (the collector itself cannot await)."""
        runtime, store = self.daemon.runtime, self.daemon.store
        states: dict[str, PollerState | None] = {}
        if runtime is not None and store is not None:
            try:  # one query, whatever the number of pollers
                saved = {s.poller: s for s in await store.all()}
            except SpdError:  # a damaged or unreadable state: every poller is failing
                saved = {}
            states = {name: saved.get(name) for name in runtime.pollers}
        self.states = states

    def collect(self) -> Iterator[Metric]:
        yield from self.poller_metrics()
        yield from self.request_metrics()
        yield from self.subscription_metrics()
        yield from self.cluster_metrics()

    def cluster_metrics(self) -> Iterator[Metric]:
        """With state.url: this replica's leases, takeovers and heartbeats."""
        cluster = self.daemon.placement.cluster
        if cluster is None:
            return
        labels = ["replica"]
        held = GaugeMetricFamily("spd_cluster_leases_held", "Account leases this replica holds", labels=labels)
        held.add_metric([cluster.replica], len(cluster.held))
        takeovers = CounterMetricFamily("spd_cluster_takeovers", "Expired leases of other replicas taken over",
                                        labels=labels)
        takeovers.add_metric([cluster.replica], cluster.stats.takeovers)
        failed = CounterMetricFamily("spd_cluster_heartbeats_failed", "Heartbeats that could not reach the database",
                                     labels=labels)
        failed.add_metric([cluster.replica], cluster.stats.failed_heartbeats)
        lag = GaugeMetricFamily("spd_cluster_heartbeat_lag_seconds",
                                "Seconds since the last heartbeat that renewed the leases", labels=labels)
        lag.add_metric([cluster.replica], cluster.heartbeat_lag() or 0.0)
        round_trip = GaugeMetricFamily("spd_cluster_heartbeat_seconds", "How long the last heartbeat took",
                                       labels=labels)
        round_trip.add_metric([cluster.replica], cluster.stats.last_duration)
        yield from (held, takeovers, failed, lag, round_trip)

    def poller_metrics(self) -> Iterator[Metric]:
        runtime = self.daemon.runtime
        labels = ["poller", "object_type"]
        objects = CounterMetricFamily("spd_objects_emitted", "Objects delivered to every emitter", labels=labels)
        pages = CounterMetricFamily("spd_pages_emitted", "Pages delivered to every emitter", labels=labels)
        lag = GaugeMetricFamily("spd_watermark_lag_seconds", "Now minus the poller's watermark", labels=labels)
        failing = GaugeMetricFamily("spd_poller_failing", "1 when the poller's last run failed", labels=labels)
        if runtime is not None:
            now = time.time()
            for name, poller in runtime.pollers.items():
                values = [name, poller.object_type.name]
                state = self.states.get(name)
                failing_now = bool(poller.failure or (state is not None and state.last_error))
                if state is None and not failing_now:
                    continue
                failing.add_metric(values, 1 if failing_now else 0)
                if state is None:
                    continue
                objects.add_metric(values, state.objects_emitted)
                pages.add_metric(values, state.pages_emitted)
                lag.add_metric(values, max(0.0, now - state.watermark.timestamp()))
        yield from (objects, pages, lag, failing)

    def request_metrics(self) -> Iterator[Metric]:
        runtime = self.daemon.runtime
        labels = ["account", "operation"]
        families = {
            "requests": CounterMetricFamily("spd_requests", "SP-API requests sent", labels=labels),
            "throttled": CounterMetricFamily("spd_throttled", "429 QuotaExceeded answers", labels=labels),
            "retries": CounterMetricFamily("spd_retries", "Requests retried", labels=labels),
            "errors": CounterMetricFamily("spd_request_errors", "Failed attempts other than 429", labels=labels),
        }
        rate = GaugeMetricFamily("spd_rate_limit", "Current token bucket rate (requests/s)", labels=labels)
        latency = HistogramMetricFamily("spd_request_duration_seconds",
                                        "SP-API request latency, send to answer read", labels=labels)
        client = runtime.client if runtime is not None else None
        stats = client.bucket_stats() if client is not None else {}
        for account, operations in stats.items():
            for operation, snap in operations.items():
                for key, family in families.items():
                    family.add_metric([account, operation], snap[key])
                rate.add_metric([account, operation], snap["rate"])
                histogram = snap["latency"]
                latency.add_metric([account, operation], histogram.cumulative(), histogram.total)
        yield from families.values()
        yield rate
        yield latency


    def subscription_metrics(self) -> Iterator[Metric]:
        """Per subscription: notifications received, emitted, dead-lettered, refused and left on
        the queue, and the queue lag (age of the oldest message in the last batch)."""
        runtime = self.daemon.runtime
        labels = ["subscription"]
        counters = {
            "received": CounterMetricFamily("spd_notifications_received", "SQS messages received", labels=labels),
            "emitted": CounterMetricFamily("spd_notifications_emitted", "Notifications delivered to every emitter",
                                           labels=labels),
            "dead_lettered": CounterMetricFamily("spd_notifications_dead_lettered",
                                                 "Malformed messages written to the dead-letter file", labels=labels),
            "malformed": CounterMetricFamily("spd_notifications_refused",
                                             "Malformed messages left to the queue's redrive policy", labels=labels),
        }
        lag = GaugeMetricFamily("spd_subscription_queue_lag_seconds",
                                "Age of the oldest message in the last batch received", labels=labels)
        for name, route in (runtime.subscriptions.items() if runtime is not None else ()):
            for key, family in counters.items():
                family.add_metric([name], getattr(route.stats, key))
            lag.add_metric([name], route.stats.queue_lag)
        yield from counters.values()
        yield lag


def build_app(daemon: Daemon, readiness: Callable[[], dict[str, Any]]) -> web.Application:
    """The aiohttp application serving /metrics, /healthz and /readyz (`readiness()` answers
    {"status": "ready"} or "not ready" with a reason: 200 or 503)."""
    registry = CollectorRegistry()
    collector = DaemonCollector(daemon)
    registry.register(collector)
    ProcessCollector(registry=registry)  # process_cpu_seconds_total, resident memory, open fds

    async def metrics(_: web.Request) -> web.Response:
        await collector.refresh()
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        answer = readiness()
        return web.json_response(answer, status=200 if answer["status"] == "ready" else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


class MetricsServer:
    """Serves `build_app` on the configured HOST:PORT; `start()`/`close()`."""

    def __init__(self, listen: str, daemon: Daemon, readiness: Callable[[], dict[str, Any]]) -> None:
        host, _, port = listen.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.app = build_app(daemon, readiness)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        log.info("http_listening", listen=f"{self.host}:{self.port}")

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
