"""What the exporter reads of the GPUs of its own host through NVML (`nvidia-ml-py`): each GPU's
utilisation and memory. Where NVML is not there (no driver, no GPU, the module missing) it says so, with the
reason, and exports nothing else: that is a host without GPUs, not a source that failed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from types import ModuleType

from prometheus_client.metrics_core import Metric as Family

from trading_assets.ops.metrics import Metric

AVAILABLE = Metric(
    "trading_gpu_nvml_available",
    "gauge",
    "1 when NVML answers on this host; 0 with the reason (no module, no library, no driver)",
    ("reason",),
)
UTILISATION = Metric(
    "trading_gpu_utilization_ratio",
    "gauge",
    "The share of the last sample period in which a kernel ran on the GPU (0 to 1)",
    ("gpu", "name", "uuid"),
)
MEMORY_USED = Metric("trading_gpu_memory_used_bytes", "gauge", "GPU memory in use", ("gpu", "name", "uuid"))
MEMORY_TOTAL = Metric("trading_gpu_memory_total_bytes", "gauge", "GPU memory in all", ("gpu", "name", "uuid"))


def _nvml() -> tuple[ModuleType | None, str]:
    """NVML initialised, or None and why not."""
    try:
        import pynvml
    except ImportError:
        return None, "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        return None, str(err)
    return pynvml, ""


class GpuSource:
    """This host's GPUs. NVML is initialised at the first scrape and kept; a host where it failed is asked
    again at each scrape (a driver installed later is seen without a restart). The exporter's scrapes take
    turns, so this needs no lock of its own."""

    name = "gpu"
    metrics = (AVAILABLE, UTILISATION, MEMORY_USED, MEMORY_TOTAL)

    def __init__(self) -> None:
        self._nvml: ModuleType | None = None

    def collect(self, now: datetime) -> Iterable[Family]:
        reason = ""
        if self._nvml is None:
            self._nvml, reason = _nvml()
        available = AVAILABLE.family()
        available.add_metric([reason], 0.0 if self._nvml is None else 1.0)
        yield available
        if self._nvml is not None:
            yield from self._devices(self._nvml)

    @staticmethod
    def _devices(nvml: ModuleType) -> Iterable[Family]:
        utilisation, used, total = (m.family() for m in (UTILISATION, MEMORY_USED, MEMORY_TOTAL))
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            labels = [str(index), nvml.nvmlDeviceGetName(handle), nvml.nvmlDeviceGetUUID(handle)]
            rates = nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            utilisation.add_metric(labels, rates.gpu / 100.0)
            used.add_metric(labels, float(memory.used))
            total.add_metric(labels, float(memory.total))
        return utilisation, used, total
