"""Objectives defined outside the package, to show that user objectives run isolated too.

The isolated probe process imports this module by name, so tests put this folder on the
child's PYTHONPATH.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from objectives import EvalData, Measurement, OnnxModel, RuntimeSettings, open_session
from objectives._session import batch_of, input_name


@dataclass(frozen=True)
class Throughput:
    """Rows per second at the configured batch size: a user's own objective."""

    name: str = "throughput_rows_s"
    direction: str = "maximize"
    unit: str = "rows/s"
    isolated: bool = True

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.name,)

    def measure(self, model: OnnxModel, data: EvalData, settings: RuntimeSettings) -> Measurement:
        session = open_session(model.content, settings)
        feed = {input_name(session): batch_of(data.features, settings.batch_size)}
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < 0.05:
            session.run(None, feed)
            runs += 1
        rate = runs * settings.batch_size / (time.perf_counter() - start)
        return Measurement(self.name, {self.name: rate}, {"pid": os.getpid()})
