"""What `GET /metrics` shows, in Prometheus's text format (`prometheus_client`), on a registry of the
server's own (two servers in one process, as in tests, do not mix their counts)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


class Metrics:
    """Requests by status, their latency, the queue's depth and the batch in flight, audio seconds generated,
    batch sizes, early answers and cancelled batches."""

    def __init__(self, queue_depth: Callable[[], float], in_flight: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "higgs_tune_requests",
            "Requests answered, by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "higgs_tune_request_seconds",
            "Time from request to its last byte, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "higgs_tune_audio_seconds", "Seconds of audio generated.", registry=self.registry
        )
        self.early_answers = Counter(
            "higgs_tune_early_answers",
            "Requests answered when their clip ended, before the rest of their batch.",
            registry=self.registry,
        )
        self.cancelled_batches = Counter(
            "higgs_tune_cancelled_batches",
            "Batches stopped because every request in them was cancelled (client gone, or timed out).",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "higgs_tune_batch_size",
            "Requests per generated batch.",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        depth = Gauge("higgs_tune_queue_depth", "Requests waiting for a batch.", registry=self.registry)
        depth.set_function(queue_depth)
        running = Gauge(
            "higgs_tune_in_flight", "Requests in the batch being generated.", registry=self.registry
        )
        running.set_function(in_flight)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """ASGI middleware: each HTTP request's status and its time to the last byte (a stream's included)."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.monotonic(), {"code": 500}
        route = scope["path"] if scope["path"] in ROUTES else "other"

        async def watched(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.metrics.latency.labels(route).observe(time.monotonic() - start)

        try:
            await self.app(scope, receive, watched)
        finally:
            self.metrics.requests.labels(route, str(status["code"])).inc()


# The routes counted by name; any other path is counted as "other" (a scanner's paths stay one series).
ROUTES = ("/", "/health", "/metrics", "/v1/audio/speech", "/v1/audio/voices")
