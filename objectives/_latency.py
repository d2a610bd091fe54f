"""Latency: how long one inference call takes at the configured batch size."""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources

from objectives._base import Direction, EvalData, Measurement, OnnxModel, RuntimeSettings
from objectives._calibration import record_reference, reference_floor
from objectives._host import host_record
from objectives._session import batch_of, input_name, open_session
from objectives._stats import (
    SamplingResult,
    SamplingRule,
    decide_percentile,
    min_samples,
    percentile_interval,
    pooled,
    sample_interleaved,
)

#: Percentiles reported with every latency measurement.
REPORTED_PERCENTILES = (50.0, 90.0, 95.0, 99.0)


#: The reference model, shipped with the package: building it needs ``onnx``, whose import
#: alone (0.7 s) would double the cost of a measurement.
REFERENCE_FILE = "reference.onnx"


def build_reference_model() -> bytes:
    """Build the reference model (two 64x64 MatMuls); ``reference.onnx`` holds its bytes."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32) / 8
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w"], ["y"]),
        ],
        "moopt-reference",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="moopt"
    )
    model.ir_version = 9
    return bytes(model.SerializeToString())


@functools.cache
def reference_model() -> bytes:
    """A fixed small ONNX model: the yardstick of the machine's speed."""
    return (resources.files("objectives") / REFERENCE_FILE).read_bytes()


def _reference_run() -> Callable[[], object]:
    import numpy as np

    session = open_session(reference_model(), RuntimeSettings())
    feed = {"x": np.ones((1, 64), dtype=np.float32)}
    return functools.partial(session.run, None, feed)


#: First-use calibration: how long the reference runs, and the windows judged.
CALIBRATION_S = 0.4
CALIBRATION_WINDOW_S = 0.002


def calibrate_reference(
    run: Callable[[], object], clock: Callable[[], int] = time.perf_counter_ns
) -> float:
    """The best median of short windows of reference calls over ``CALIBRATION_S``, in ms.

    On a host kind with no history, a session slowed from start to end would otherwise take
    its own slow speed for the machine's best. The reference runs without pause (an idle CPU
    wakes slowly) and the fastest 2 ms window counts: the slow stretches seen here come and go
    within a fraction of a second.
    """
    for _ in range(10):
        run()  # warm-up
    best = math.inf
    start = clock()
    for _ in range(1000):  # bounded, whatever the clock does
        times: list[float] = []
        window = clock()
        while len(times) < 5 or (
            clock() - window < CALIBRATION_WINDOW_S * 1e9 and len(times) < 2000
        ):
            t0 = clock()
            run()
            times.append((clock() - t0) / 1e6)
        best = min(best, statistics.median(times))
        if clock() - start >= CALIBRATION_S * 1e9:
            break
    return best


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
        reference: Time a fixed reference model before every block and keep the blocks
            timed while the machine ran at its best (see :func:`objectives.sample_interleaved`);
            a session with too few such blocks is flagged ``contended`` and measured again by
            :func:`objectives.measure`.
        sessions: The model is opened this many times in turn, one after the other, and the
            sampling time is shared between them. Where ONNX Runtime places a model's memory
            moves a memory-bound model's speed: the same 500-tree forest ran at p50 0.0422 to
            0.0462 ms in six sessions, each steady within itself. Pooling several sessions
            reports the model, not one placement. A slow model gets as many sessions as
            each can still gather three times the percentile's sample count within its share
            of ``rule.max_time_s`` (a 2 ms model: one); the count is in the details.
        clock: Monotonic nanoseconds; injectable for tests.
    """

    percentile: float = 95.0
    rule: SamplingRule = field(default_factory=SamplingRule)
    reference: bool = True
    sessions: int = 3
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
        return self.measure_many([model], data, settings)[0]

    def measure_many(
        self,
        models: Sequence[OnnxModel],
        data: EvalData,
        settings: RuntimeSettings | Sequence[RuntimeSettings],
    ) -> list[Measurement]:
        """Time several models interleaved in one session, so that they compare fairly.

        ``settings`` is one for all models or one per model (same batch size).
        """
        per_model = (
            [settings] * len(models) if isinstance(settings, RuntimeSettings) else list(settings)
        )
        batch = batch_of(data.features, per_model[0].batch_size)

        def open_runs() -> list[Callable[[], object]]:
            runs: list[Callable[[], object]] = []
            for model, model_settings in zip(models, per_model, strict=True):
                session = open_session(model.content, model_settings)
                feed = {input_name(session): batch}
                runs.append(functools.partial(session.run, None, feed))
            return runs

        runs = open_runs()
        k = self._rounds(max(self._call_ms(run) for run in runs))
        rule = replace(
            self.rule,
            percentile=self.percentile,
            min_time_s=self.rule.min_time_s / k,
            max_time_s=self.rule.max_time_s / k,
            hard_cap_s=self.rule.hard_cap_s / k,
        )
        reference, floor, kind = None, None, None
        if self.reference:
            kind = host_record().kind
            floor = reference_floor(kind)
            reference = _reference_run()
            if floor is None:
                floor = calibrate_reference(reference, self.clock)
                record_reference(kind, floor)
        parts: list[list[SamplingResult]] = [[] for _ in models]
        for i in range(k):
            # A fresh session of every model per round, the last one closed first: each
            # round samples another placement of the models in memory.
            if i:
                runs = open_runs()
            results = sample_interleaved(runs, self.clock, rule, reference, floor)
            del runs
            for got, result in zip(parts, results, strict=True):
                got.append(result)
            if floor is not None and results[0].reference_min_ms is not None:
                floor = min(floor, results[0].reference_min_ms)
        needed = min_samples(self.percentile)
        merged = [pooled(p, needed) for p in parts]
        if kind is not None and merged[0].reference_min_ms is not None:
            record_reference(kind, merged[0].reference_min_ms)
        return [self._measurement(r, s, k) for r, s in zip(merged, per_model, strict=True)]

    def _call_ms(self, run: Callable[[], object]) -> float:
        """Median of a few calls, in ms (the first, cold one left out)."""
        times = []
        for _ in range(6):
            t0 = self.clock()
            run()
            times.append((self.clock() - t0) / 1e6)
        return statistics.median(times[1:])

    def _rounds(self, call_ms: float) -> int:
        """How many sessions fit: each must reach the percentile's sample count with room for
        the blocks the quiet checks leave out (three times the count) within its share of
        ``rule.max_time_s``."""
        per_round_s = 3 * min_samples(self.percentile) * call_ms / 1e3
        return max(1, min(self.sessions, int(self.rule.max_time_s / max(per_round_s, 1e-9))))

    def _measurement(
        self, result: SamplingResult, settings: RuntimeSettings, sessions: int = 1
    ) -> Measurement:
        slowdown = None
        if result.reference_ms is not None and result.reference_best_ms:
            slowdown = round(result.reference_ms / result.reference_best_ms, 3)
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
            "sessions": sessions,
            "stop_reason": result.stop_reason,
            "estimator": result.estimator,
            "quiet_share": round(result.quiet_share, 3),
            "kept_share": round(result.kept_share, 3),
            "reference_ms": result.reference_ms,
            "reference_best_ms": result.reference_best_ms,
            "slowdown": slowdown,
            "contended": result.estimator == "normalized",
            "elapsed_s": round(result.elapsed_s, 4),
            "intervals": intervals,
            "settings": settings.as_dict(),
        }
        return Measurement(self.name, values, details)


@dataclass(frozen=True)
class LatencyBudget:
    """Whether a latency percentile is within a budget: the release gate's latency check.

    Measured like :class:`Latency` (isolated), but sampling stops as soon as the confidence
    interval of the percentile is clearly on one side of the budget (see
    :func:`objectives.decide_percentile`).
    """

    budget_ms: float
    percentile: float = 95.0
    max_time_s: float = 5.0
    confidence: float = 0.95
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
        """The judged percentile."""
        return (self.name,)

    def measure(self, model: OnnxModel, data: EvalData, settings: RuntimeSettings) -> Measurement:
        """Time the model until the verdict is clear or the time cap is reached."""
        session = open_session(model.content, settings)
        feed = {input_name(session): batch_of(data.features, settings.batch_size)}
        decision = decide_percentile(
            functools.partial(session.run, None, feed),
            self.clock,
            self.budget_ms,
            self.percentile,
            confidence=self.confidence,
            max_time_s=self.max_time_s,
        )
        iv = decision.interval
        details = {
            "verdict": decision.verdict,
            "low": iv.low,
            "high": iv.high,
            "confidence": iv.confidence,
            "samples": decision.samples,
            "elapsed_s": round(decision.elapsed_s, 3),
            "budget_ms": self.budget_ms,
            "settings": settings.as_dict(),
        }
        return Measurement(self.name, {self.name: iv.estimate}, details)
