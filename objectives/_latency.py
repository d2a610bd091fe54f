"""Latency: how long one inference call takes at the configured batch size."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from objectives._base import Direction, EvalData, Measurement, OnnxModel, RuntimeSettings
from objectives._session import batch_of, input_name, open_session
from objectives._stats import SamplingRule, percentile_interval, sample_latency

#: Percentiles reported with every latency measurement.
REPORTED_PERCENTILES = (50.0, 90.0, 95.0, 99.0)


def _key(percentile: float) -> str:
    return f"latency_p{percentile:g}_ms"


@dataclass(frozen=True)
class Latency:
    """Wall time of one ``session.run`` call on a batch of hold-out rows, in milliseconds.

    After warm-up the call is timed with ``perf_counter_ns`` until the confidence interval of
    the optimized percentile is tight enough (see :class:`objectives.SamplingRule`). The
    reported percentiles are p50, p90, p95 and p99, each with a 95% distribution-free interval.

    Attributes:
        percentile: The percentile the search optimizes (its metric is ``latency_p<P>_ms``).
        rule: When sampling stops.
        clock: Monotonic nanoseconds; injectable for tests.
    """

    percentile: float = 95.0
    rule: SamplingRule = field(default_factory=SamplingRule)
    clock: Callable[[], int] = field(default=time.perf_counter_ns, repr=False, compare=False)
    direction: Direction = "minimize"
    unit: str = "ms"
    isolated: bool = True

    @property
    def name(self) -> str:
        """``latency_p<percentile>_ms``."""
        return _key(self.percentile)

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every reported percentile's key."""
        keys = [_key(p) for p in REPORTED_PERCENTILES]
        return tuple(keys if self.name in keys else [*keys, self.name])

    def measure(self, model: OnnxModel, data: EvalData, settings: RuntimeSettings) -> Measurement:
        """Open a session with ``settings`` and time calls on ``settings.batch_size`` rows."""
        session = open_session(model.content, settings)
        feed = {input_name(session): batch_of(data.features, settings.batch_size)}
        rule = SamplingRule(
            percentile=self.percentile,
            rel_tol=self.rule.rel_tol,
            min_time_s=self.rule.min_time_s,
            max_time_s=self.rule.max_time_s,
            hard_cap_s=self.rule.hard_cap_s,
            warmup_runs=self.rule.warmup_runs,
            block=self.rule.block,
        )
        result = sample_latency(lambda: session.run(None, feed), self.clock, rule)
        values: dict[str, float] = {}
        intervals: dict[str, dict[str, float]] = {}
        for p in sorted({*REPORTED_PERCENTILES, self.percentile}):
            interval = percentile_interval(result.samples_ms, p)
            values[_key(p)] = interval.estimate
            intervals[_key(p)] = {
                "low": interval.low,
                "high": interval.high,
                "confidence": interval.confidence,
            }
        details = {
            "samples": len(result.samples_ms),
            "stop_reason": result.stop_reason,
            "elapsed_s": round(result.elapsed_s, 4),
            "intervals": intervals,
            "settings": settings.as_dict(),
        }
        return Measurement(self.name, values, details)
