"""GPU telemetry for Prometheus: NVML's readings of every GPU the process can see, collected at
each scrape (nvidia-ml-py), on the registry the daemon hands in.

``headwater_gpu_available`` is 1 when NVML answers, 0 without a driver or library — never a crash:
a CPU-only machine exports that one series. A reading a GPU does not support
(``NVMLError_NotSupported``, e.g. power on some boards) is left out for that GPU; any other error
of one reading is logged once and left out too, the others still exported.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pynvml
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["GPU_METRICS", "GpuCollector", "register_gpu"]

GPU_METRICS = (
    "headwater_gpu_available",
    "headwater_gpu_utilization_ratio",
    "headwater_gpu_memory_used_bytes",
    "headwater_gpu_memory_total_bytes",
    "headwater_gpu_temperature_celsius",
    "headwater_gpu_power_watts",
)

log = logging.getLogger("headwater")


class GpuCollector(Collector):
    """Reads NVML at each scrape. ``nvml``: the module to read (nvidia-ml-py's ``pynvml``)."""

    def __init__(self, nvml: ModuleType | Any = pynvml) -> None:
        self._nvml = nvml
        self._lock = threading.Lock()
        self._ready: bool | None = None  # None: not tried yet
        self._warned: set[str] = set()

    def _init(self) -> bool:
        if self._ready is None:
            try:
                self._nvml.nvmlInit()
                self._ready = True
            except self._nvml.NVMLError as exc:
                log.info("no GPU telemetry: NVML is not available (%s)", exc)
                self._ready = False
        return self._ready

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            yield from self._collect()

    def _collect(self) -> Iterator[GaugeMetricFamily]:
        available = GaugeMetricFamily("headwater_gpu_available", "1 when NVML answers (a driver and a GPU), else 0")
        gpu_labels = ["gpu"]
        util = GaugeMetricFamily("headwater_gpu_utilization_ratio", "share of time the GPU was busy (0-1)",
                                 labels=gpu_labels)  # fmt: skip
        used = GaugeMetricFamily("headwater_gpu_memory_used_bytes", "GPU memory in use", labels=gpu_labels)
        total = GaugeMetricFamily("headwater_gpu_memory_total_bytes", "GPU memory in all", labels=gpu_labels)
        temp = GaugeMetricFamily("headwater_gpu_temperature_celsius", "GPU die temperature", labels=gpu_labels)
        power = GaugeMetricFamily("headwater_gpu_power_watts", "GPU power draw", labels=gpu_labels)
        count = self._count() if self._init() else None
        available.add_metric([], 1.0 if count is not None else 0.0)
        yield available
        if not count:
            return
        nvml = self._nvml
        for index in range(count):
            gpu = [str(index)]
            handle = self._read("handle", nvml.nvmlDeviceGetHandleByIndex, index)
            if handle is None:
                continue
            rates = self._read("utilization", nvml.nvmlDeviceGetUtilizationRates, handle)
            memory = self._read("memory", nvml.nvmlDeviceGetMemoryInfo, handle)
            celsius = self._read("temperature", nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
            milliwatts = self._read("power", nvml.nvmlDeviceGetPowerUsage, handle)
            if rates is not None:
                util.add_metric(gpu, float(rates.gpu) / 100.0)
            if memory is not None:
                used.add_metric(gpu, float(memory.used))
                total.add_metric(gpu, float(memory.total))
            if celsius is not None:
                temp.add_metric(gpu, float(celsius))
            if milliwatts is not None:
                power.add_metric(gpu, float(milliwatts) / 1000.0)  # NVML gives milliwatts
        yield from (util, used, total, temp, power)

    def _count(self) -> int | None:
        count = self._read("count", self._nvml.nvmlDeviceGetCount)
        return None if count is None else int(count)

    def _read(self, what: str, read: Callable[..., Any], *args: Any) -> Any:
        nvml = self._nvml
        try:
            return read(*args)
        except nvml.NVMLError_NotSupported:
            return None
        except nvml.NVMLError as exc:
            if what not in self._warned:
                self._warned.add(what)
                log.warning("GPU telemetry: cannot read %s: %s", what, exc)
            return None


def register_gpu(registry: CollectorRegistry, nvml: ModuleType | Any = pynvml) -> GpuCollector:
    """Export GPU telemetry on ``registry``; return the collector."""
    collector = GpuCollector(nvml)
    registry.register(collector)
    return collector
