"""Measurements of an ONNX model: accuracy, latency and peak memory.

A library of its own: it never imports ``moopt``, so the search and the release gate measure
with the same code. Every objective follows the :class:`Objective` interface; isolated ones
(latency, memory) are measured in a fresh pinned process by :func:`measure`.

Adding an objective: write a (picklable, if isolated) class with ``name``, ``direction``,
``unit``, ``metrics``, ``isolated`` and ``measure(model, data, settings) -> Measurement``, and
pass an instance wherever objectives are accepted.
"""

from __future__ import annotations

from objectives._accuracy import SCORERS, Accuracy, Parity, check_parity, predict_onnx
from objectives._base import (
    Direction,
    EvalData,
    GraphOptimization,
    Measurement,
    MeasurementError,
    Objective,
    OnnxModel,
    RuntimeSettings,
)
from objectives._host import HostRecord, host_record
from objectives._isolation import (
    Isolation,
    MeasurementReport,
    default_lock_path,
    measure,
    measure_interleaved,
    measurement_lock,
)
from objectives._latency import REPORTED_PERCENTILES, Latency, LatencyBudget
from objectives._memory import PeakMemory
from objectives._session import open_session
from objectives._stats import (
    MIN_SAMPLES,
    Decision,
    Interval,
    SamplingResult,
    SamplingRule,
    decide_percentile,
    min_samples,
    percentile_interval,
    sample_interleaved,
    sample_latency,
    without_disturbed_runs,
)

__all__ = [
    "MIN_SAMPLES",
    "REPORTED_PERCENTILES",
    "SCORERS",
    "Accuracy",
    "Decision",
    "Direction",
    "EvalData",
    "GraphOptimization",
    "HostRecord",
    "Interval",
    "Isolation",
    "Latency",
    "LatencyBudget",
    "Measurement",
    "MeasurementError",
    "MeasurementReport",
    "Objective",
    "OnnxModel",
    "Parity",
    "PeakMemory",
    "RuntimeSettings",
    "SamplingResult",
    "SamplingRule",
    "check_parity",
    "decide_percentile",
    "default_lock_path",
    "host_record",
    "measure",
    "measure_interleaved",
    "measurement_lock",
    "min_samples",
    "open_session",
    "percentile_interval",
    "predict_onnx",
    "sample_interleaved",
    "sample_latency",
    "without_disturbed_runs",
]
