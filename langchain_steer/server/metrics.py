"""Prometheus metrics of one server: requests, tokens, latency, queue depth and batch size.

Each app gets its own registry (``prometheus-client``), so two apps in one process (tests, say) never
share or clash on counters. ``GET /metrics`` exposes it in Prometheus' text format.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80)


class Metrics:
    """The server's counters, histograms and gauges, on a registry of their own."""

    def __init__(self, llm: Any) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "langchain_steer_requests", "HTTP requests by route and status.", ["route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "langchain_steer_request_seconds", "Request latency by route (streams: until the last byte).",
            ["route"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.tokens = Counter(
            "langchain_steer_tokens", "Tokens by kind: prompt or completion.", ["kind"],
            registry=self.registry,
        )  # fmt: skip
        batcher = llm.batcher()
        queue = Gauge(
            "langchain_steer_queue_depth", "Requests waiting for a place in the batch.",
            registry=self.registry,
        )  # fmt: skip
        queue.set_function(lambda: batcher.pending)
        batch = Gauge(
            "langchain_steer_batch_size_mean", "Mean rows per decoding step so far.",
            registry=self.registry,
        )  # fmt: skip
        stats = batcher.stats
        batch.set_function(lambda: stats.row_steps / stats.steps if stats.steps else 0.0)
        largest = Gauge(
            "langchain_steer_batch_size_max", "The largest batch decoded so far.", registry=self.registry
        )
        largest.set_function(lambda: stats.largest_batch)
        cancelled = Gauge(
            "langchain_steer_cancelled_rows",
            "Requests whose caller went away (or hit a stop string); their rows left the batch.",
            registry=self.registry,
        )
        cancelled.set_function(lambda: stats.cancelled)

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def count_tokens(self, usage: dict[str, int]) -> None:
        """Add one reply's token usage (OpenAI's ``usage`` object)."""
        self.tokens.labels("prompt").inc(usage.get("prompt_tokens", 0))
        self.tokens.labels("completion").inc(usage.get("completion_tokens", 0))

    def text(self) -> bytes:
        """Everything, in Prometheus' text exposition format."""
        return generate_latest(self.registry)
