"""Every metric of the model service, declared in one place (``polyllm_model_*``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30)
TOKENS_PER_S_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 500)


class ModelMetrics:
    """The model service's metrics, on a registry of their own (one per app, no globals)."""

    def __init__(self, model: str, backend: str) -> None:
        self.registry = CollectorRegistry()
        self.model = model
        r = self.registry
        self.requests = Counter(
            "polyllm_model_requests",
            "Requests by outcome (ok, cancelled, rejected, invalid, error).",
            ["model", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "polyllm_model_gen_latency_seconds",
            "Admission to last token.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "polyllm_model_ttft_seconds",
            "Admission to first token.",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tokens_per_s = Histogram(
            "polyllm_model_tokens_per_second",
            "Decode rate per request.",
            ["model"],
            buckets=TOKENS_PER_S_BUCKETS,
            registry=r,
        )
        self.tokens_generated = Counter(
            "polyllm_model_tokens_generated", "Completion tokens.", ["model"], registry=r
        )
        self.prompt_tokens = Counter(
            "polyllm_model_prompt_tokens", "Prompt tokens processed.", ["model"], registry=r
        )
        self.queue_depth = Gauge(
            "polyllm_model_queue_depth",
            "Requests admitted and not finished (running + waiting).",
            ["model"],
            registry=r,
        )
        self.info = Gauge(
            "polyllm_model_info", "Served model (value 1).", ["model", "backend"], registry=r
        )
        self.info.labels(model, backend).set(1)
        for status in ("ok", "cancelled", "rejected", "invalid", "error"):
            self.requests.labels(model, status)
        self.queue_depth.labels(model).set(0)

    def observe_request(self, status: str) -> None:
        """Count one request by outcome."""
        self.requests.labels(self.model, status).inc()
