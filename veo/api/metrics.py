"""``/metrics`` in Prometheus' text format.

Two sources: the cluster's state, read from the client at scrape time (containers by status and
health, restarts per service, pending instances, node capacity and allocation), and what this
server saw (events by kind and placements from the event hub, API latency per route).
Each app has its own registry, so several apps in one process (tests) do not collide.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.types import ASGIApp, Receive, Scope, Send

from veo.core.models import EventKind, Health, InstanceStatus
from veo.core.summary import status_counts

log = logging.getLogger("veo.api.metrics")
disable_created_metrics()  # the *_created series only double what a scraper sees anyway


class ClusterCollector:
    """Reads the cluster when Prometheus scrapes (never between scrapes)."""

    def __init__(self, resolve: Callable[[], Any]):
        self.resolve = resolve

    def describe(self):
        return []  # dynamic: do not call the cluster at registration

    def collect(self):
        up = GaugeMetricFamily("veo_scheduler_up", "1 when the Scheduler answered this scrape")
        try:
            client = self.resolve()
            instances, nodes = client.containers(), client.nodes()
        except Exception as e:
            log.warning("metrics: the cluster did not answer: %s", e)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _instance_metrics(instances)
        yield from _node_metrics(nodes)
        yield from _loop_metrics(client)


def _loop_metrics(client: Any) -> list:
    """The control loop's step durations (``Cluster.loop_stats``): how long the Scheduler's own
    work per step takes, over its last 1000 steps."""
    try:
        stats = client.loop_stats()
    except Exception as e:  # a Scheduler without loop_stats: the other families still show
        log.warning("metrics: no control-loop figures: %s", e)
        return []
    step = GaugeMetricFamily("veo_control_loop_step_seconds", "Control-loop step duration over "
                             "the last steps (quantile 0.5, 0.95, and max)", labels=["quantile"])
    for label, field in (("0.5", "p50"), ("0.95", "p95"), ("max", "max")):
        step.add_metric([label], stats[field])
    steps = CounterMetricFamily("veo_control_loop_steps", "Control-loop steps since the "
                                "Scheduler started")
    steps.add_metric([], stats.get("total", stats["count"]))
    return [step, steps]


def _instance_metrics(instances: list) -> list:
    by_status = GaugeMetricFamily("veo_containers", "Instances by status", labels=["status"])
    counts = status_counts(instances)
    for status, count in counts.items():
        by_status.add_metric([status.value], count)
    by_health = GaugeMetricFamily("veo_containers_health", "Instances by health", labels=["health"])
    for health in Health:
        by_health.add_metric([health.value], sum(1 for i in instances if i.health is health))
    restarts = CounterMetricFamily("veo_container_restarts", "Restarts per service (since it was "
                                   "added)", labels=["service"])
    per_service: dict[str, int] = {}
    for i in instances:
        per_service[i.service] = per_service.get(i.service, 0) + i.restarts
    for service, count in sorted(per_service.items()):
        restarts.add_metric([service], count)
    pending = GaugeMetricFamily("veo_pending_instances", "Instances waiting for a node")
    pending.add_metric([], counts[InstanceStatus.pending])
    return [by_status, by_health, restarts, pending]


def _node_metrics(nodes: list) -> list:
    alive = GaugeMetricFamily("veo_node_up", "1 when the node is live", labels=["node"])
    cordoned = GaugeMetricFamily("veo_node_cordoned", "1 when the node is cordoned",
                                 labels=["node"])
    out = [alive, cordoned]
    for n in nodes:
        alive.add_metric([n.name], 1 if n.alive else 0)
        cordoned.add_metric([n.name], 1 if n.cordoned else 0)
    for res, unit in (("cpus", ""), ("memory", "_bytes"), ("disk", "_bytes")):
        for which in ("total", "allocated"):
            fam = GaugeMetricFamily(f"veo_node_{res}_{which}{unit}", f"{res} {which} per node",
                                    labels=["node"])
            for n in nodes:
                fam.add_metric([n.name], getattr(n, f"{res}_{which}"))
            out.append(fam)
    return out


class Metrics:
    def __init__(self, resolve: Callable[[], Any]):
        self.registry = CollectorRegistry()
        self.events = Counter("veo_events", "Events seen by this server, by kind", ["kind"],
                              registry=self.registry)
        for kind in EventKind:
            self.events.labels(kind.value)  # every kind shows, at 0 until it happens
        self.placements = Counter("veo_placements", "Instances placed on a node (seen by this "
                                  "server)", registry=self.registry)
        self.latency = Histogram("veo_api_request_duration_seconds", "REST API latency",
                                 ["method", "route", "status"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.registry.register(ClusterCollector(resolve))

    def watch_listing(self, listing) -> None:
        """Count how ``/api/containers`` answers were served (veo.api.listing)."""
        self.registry.register(_ListingCollector(listing))

    def on_event(self, ev) -> None:
        self.events.labels(ev.kind.value).inc()
        if ev.kind is EventKind.placed:
            self.placements.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ListingCollector:
    def __init__(self, listing):
        self.listing = listing

    def describe(self):
        return []

    def collect(self):
        served = CounterMetricFamily("veo_api_container_lists", "GET /api/containers answers, "
                                     "by where they came from (a kept copy, or the Scheduler)",
                                     labels=["source"])
        served.add_metric(["copy"], self.listing.hits)
        served.add_metric(["scheduler"], self.listing.misses)
        calls = CounterMetricFamily("veo_api_container_list_calls", "Calls to the Scheduler for "
                                    "/api/containers (requests arriving meanwhile share one)")
        calls.add_metric([], self.listing.fetches)
        yield served
        yield calls


class LatencyMiddleware:
    """Times every HTTP request up to its response's start, labelled by route template (so
    /api/services/{name} is one series, not one per name)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def timed_send(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                self.metrics.latency.labels(scope["method"], route, str(status["code"])).observe(
                    time.perf_counter() - start)
            await send(message)

        await self.app(scope, receive, timed_send)
