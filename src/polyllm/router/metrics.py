"""Every metric of the router, declared in one place (``polyllm_router_*``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from polyllm.inference.metrics import LATENCY_BUCKETS, TTFT_BUCKETS


class RouterMetrics:
    """The router's metrics, on a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        ProcessCollector(registry=r)  # process_resident_memory_bytes, CPU seconds, open fds
        self.requests = Counter(
            "polyllm_router_requests", "Requests by outcome.", ["status"], registry=r
        )
        self.model_selected = Counter(
            "polyllm_router_model_selected", "Model that answered.", ["model"], registry=r
        )
        self.cache_hits = Counter("polyllm_router_cache_hits", "Cache hits.", registry=r)
        self.cache_misses = Counter(
            "polyllm_router_cache_misses", "Cacheable requests not in the cache.", registry=r
        )
        self.rate_limited = Counter(
            "polyllm_router_rate_limited", "Requests refused by the rate limiter.", registry=r
        )
        self.latency = Histogram(
            "polyllm_router_request_latency_seconds",
            "Request received → last event sent.",
            ["model", "cache_hit"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "polyllm_router_ttft_seconds",
            "Request received → first token sent.",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.fallbacks = Counter(
            "polyllm_router_fallbacks",
            "A request moved from one model to another.",
            ["from_model", "to_model", "reason"],
            registry=r,
        )
        self.redis_errors = Counter(
            "polyllm_router_redis_errors", "Redis calls that failed.", ["op"], registry=r
        )
        self.backend_up = Gauge(
            "polyllm_router_backend_up",
            "1 when the backend can take requests.",
            ["model"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "polyllm_router_inflight", "Requests being answered by the router.", registry=r
        )
        for status in ("ok", "error", "rate_limited", "invalid", "cancelled", "unavailable"):
            self.requests.labels(status)
        self.cache_hits.inc(0)
        self.cache_misses.inc(0)
