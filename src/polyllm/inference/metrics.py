"""Every metric of the model service, declared in one place (``polyllm_model_*``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from polyllm.inference.gpu import GpuSample

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30)
TOKENS_PER_S_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 500)
BATCH_SIZE_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


class ModelMetrics:
    """The model service's metrics, on a registry of their own (one per app, no globals)."""

    def __init__(
        self, model: str, backend: str, gpus: Callable[[], list[GpuSample]] | None = None
    ) -> None:
        """``gpus`` reads the GPUs the model runs on; given, their gauges are exported."""
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
        self.batch_size = Histogram(
            "polyllm_model_batch_size",
            "Sequences in each llama.cpp decode step (n_parallel > 1 only).",
            ["model"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.active_sequences = Gauge(
            "polyllm_model_active_sequences",
            "Sequences in the running batch, prompt or decoding (n_parallel > 1 only).",
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
        if gpus is not None:
            r.register(GpuCollector(model, gpus))

    def observe_request(self, status: str) -> None:
        """Count one request by outcome."""
        self.requests.labels(self.model, status).inc()


class GpuCollector(Collector):
    """Utilisation and memory of the service's GPUs, read at each scrape.

    A GPU that cannot be read (no nvidia-smi, no driver) or a value it does not report is left
    out: no sample rather than a made-up zero.
    """

    def __init__(self, model: str, read: Callable[[], list[GpuSample]]) -> None:
        self.model = model
        self.read = read

    def describe(self) -> Iterator[Metric]:
        """The families, without reading the GPUs (called when registered)."""
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        """Read the GPUs now; yield only the families that got a sample."""
        utilization, used, total = self._families()
        for gpu in self.read():
            labels = [self.model, gpu.index]
            for family, value in (
                (utilization, gpu.utilization),
                (used, gpu.memory_used_bytes),
                (total, gpu.memory_total_bytes),
            ):
                if value is not None:
                    family.add_metric(labels, value)
        yield from (family for family in (utilization, used, total) if family.samples)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        labels = ["model", "gpu"]
        return (
            GaugeMetricFamily(
                "polyllm_model_gpu_utilization_ratio",
                "Fraction of time a kernel ran on the GPU (nvidia-smi's sample period).",
                labels=labels,
            ),
            GaugeMetricFamily(
                "polyllm_model_gpu_memory_used_bytes", "GPU memory in use.", labels=labels
            ),
            GaugeMetricFamily(
                "polyllm_model_gpu_memory_total_bytes", "GPU memory in all.", labels=labels
            ),
        )
