"""Peak memory: resident memory added by loading the model and running inference."""

from __future__ import annotations

import gc
import threading
from dataclasses import dataclass
from typing import ClassVar

from objectives._base import Direction, EvalData, Measurement, OnnxModel, RuntimeSettings
from objectives._session import batch_of, input_name, open_session

_MB = 1_000_000
_INFERENCE_RUNS = 3


def _status_kb(field_name: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS, where Linux allows it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    hwm, rss = _status_kb("VmHWM"), _status_kb("VmRSS")
    return hwm is not None and rss is not None and hwm - rss < 1024


class _RssSampler(threading.Thread):
    """Polls RSS every millisecond: the fallback where VmHWM cannot be reset."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        import psutil

        self._process = psutil.Process()
        self._stop_event = threading.Event()
        self.peak = self._process.memory_info().rss

    def run(self) -> None:
        while not self._stop_event.wait(0.001):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return int(max(self.peak, self._process.memory_info().rss))


@dataclass(frozen=True)
class PeakMemory:
    """Peak resident memory of loading the model and running it, over the process baseline.

    The baseline is the resident memory after ONNX Runtime is imported and the data is
    loaded; the peak is Linux's high-water mark (``VmHWM``) after that mark is reset to the
    baseline, or an RSS poll every millisecond where it cannot be reset. Meaningful only as the
    first thing a fresh process does (allocators reuse freed memory), which is why the
    objective is isolated. Values in MB (10^6 bytes); the model's file size rides along.
    """

    #: Measured before anything else in the isolated process.
    first_in_process: ClassVar[bool] = True

    name: str = "peak_memory_mb"
    direction: Direction = "minimize"
    unit: str = "MB"
    isolated: bool = True

    @property
    def metrics(self) -> tuple[str, ...]:
        """``peak_memory_mb`` and ``model_size_kb``."""
        return (self.name, "model_size_kb")

    def measure(self, model: OnnxModel, data: EvalData, settings: RuntimeSettings) -> Measurement:
        """Load the model and run ``settings.batch_size`` rows a few times; report the peak."""
        # ONNX Runtime's import is part of the baseline, not of the model: imported here,
        # before the baseline is read, it would otherwise add ~20 MB to every model.
        import onnxruntime  # noqa: F401
        import psutil

        batch = batch_of(data.features, settings.batch_size)
        gc.collect()
        reset = _reset_peak()
        baseline = psutil.Process().memory_info().rss
        sampler = _RssSampler()
        sampler.start()
        session = open_session(model.content, settings)
        feed = {input_name(session): batch}
        for _ in range(_INFERENCE_RUNS):
            session.run(None, feed)
        polled = sampler.stop()
        hwm_kb = _status_kb("VmHWM") if reset else None
        peak = max(polled, hwm_kb * 1024) if hwm_kb is not None else polled
        del session
        values = {self.name: max(peak - baseline, 0) / _MB, "model_size_kb": model.size_kb}
        details = {
            "baseline_mb": baseline / _MB,
            "method": "VmHWM after clear_refs" if hwm_kb is not None else "RSS poll at 1 ms",
            "settings": settings.as_dict(),
        }
        return Measurement(self.name, values, details)
