"""GPU telemetry (`daemon.gpu`): without a driver one series says so; with NVML every reading is
exported in base units, and a reading a GPU does not support is left out, never a crash."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from daemon.gpu import GPU_METRICS, register_gpu


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_without_a_driver_the_gpu_is_unavailable_and_nothing_breaks() -> None:
    registry = CollectorRegistry()
    register_gpu(registry)  # the real nvidia-ml-py: this machine has no NVML library
    assert _samples(registry) == {("headwater_gpu_available", ()): 0.0}


class FakeNvml:
    """NVML as nvidia-ml-py exposes it, for two GPUs; the second cannot report its power."""

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):
        pass

    NVML_TEMPERATURE_GPU = 0

    def __init__(self) -> None:
        self.inits = 0

    def nvmlInit(self) -> None:
        self.inits += 1

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        return SimpleNamespace(gpu=[37, 0][h], memory=10)

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        return SimpleNamespace(used=[2**30, 0][h], total=80 * 2**30, free=0)

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        return [61, 40][h]

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        if h == 1:
            raise self.NVMLError_NotSupported("not supported")
        return 312_500  # milliwatts


def test_readings_are_exported_per_gpu_in_base_units() -> None:
    registry, nvml = CollectorRegistry(), FakeNvml()
    register_gpu(registry, nvml)
    got = _samples(registry)
    assert got[("headwater_gpu_available", ())] == 1.0
    assert got[("headwater_gpu_utilization_ratio", (("gpu", "0"),))] == 0.37
    assert got[("headwater_gpu_memory_used_bytes", (("gpu", "0"),))] == 2**30
    assert got[("headwater_gpu_memory_total_bytes", (("gpu", "1"),))] == 80 * 2**30
    assert got[("headwater_gpu_temperature_celsius", (("gpu", "0"),))] == 61
    assert got[("headwater_gpu_power_watts", (("gpu", "0"),))] == 312.5
    assert ("headwater_gpu_power_watts", (("gpu", "1"),)) not in got  # not supported: left out
    assert {name for name, _ in got} == set(GPU_METRICS)
    _samples(registry)
    assert nvml.inits == 1  # initialised once, read at every scrape


def test_the_daemons_registry_exports_gpu_and_process_series() -> None:
    from daemon.runner import daemon_collector

    names = {name for name, _ in _samples(daemon_collector())}
    assert {"headwater_gpu_available", "process_resident_memory_bytes", "process_cpu_seconds_total"} <= names
