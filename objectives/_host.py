"""Where a measurement was taken: recorded with every measurement."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from typing import Any

#: A 1-minute load average per logical core above this marks the host as overloaded.
OVERLOAD_PER_CORE = 1.0


@dataclass(frozen=True)
class HostRecord:
    """The machine and software a measurement ran on, and how busy the machine was."""

    cpu: str
    logical_cores: int
    physical_cores: int
    onnxruntime: str
    python: str
    load_average: tuple[float, float, float]
    own_workers: int = 0

    @property
    def overloaded(self) -> bool:
        """Whether the 1-minute load exceeded :data:`OVERLOAD_PER_CORE` per logical core.

        The other local workers of the same run (``own_workers``) are allowed for: they are
        kept off the measuring CPUs while a measurement runs, so their load does not count.
        """
        return self.load_average[0] > OVERLOAD_PER_CORE * self.logical_cores + self.own_workers

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, with ``overloaded`` spelled out."""
        record = asdict(self)
        record["load_average"] = list(self.load_average)
        record["overloaded"] = self.overloaded
        return record

    @property
    def kind(self) -> str:
        """What makes latencies comparable: CPU model, core count and runtime version."""
        return f"{self.cpu} / {self.logical_cores} cores / onnxruntime {self.onnxruntime}"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def host_record(own_workers: int = 0) -> HostRecord:
    """Read the host record of this machine now.

    Args:
        own_workers: Other local workers of this run, moved off the measuring CPUs meanwhile.
    """
    import onnxruntime
    import psutil

    logical = os.cpu_count() or 1
    return HostRecord(
        cpu=_cpu_model(),
        logical_cores=logical,
        physical_cores=psutil.cpu_count(logical=False) or logical,
        onnxruntime=onnxruntime.__version__,
        python=platform.python_version(),
        load_average=tuple(round(x, 2) for x in os.getloadavg()),  # type: ignore[arg-type]
        own_workers=own_workers,
    )
