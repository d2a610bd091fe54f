"""Latency statistics: percentiles, distribution-free intervals and adaptive sampling.

Everything here is pure: time comes from an injected clock, so the rules can be tested with a
fake one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: Fewest samples for a percentile claim at 99% confidence (MLPerf LoadGen's single-stream
#: early-stopping minimums); a percentile between two rows takes the stricter one.
MIN_SAMPLES: dict[float, int] = {50.0: 20, 90.0: 64, 95.0: 130, 99.0: 662}

_Z = {0.90: 1.6448536269514722, 0.95: 1.959963984540054, 0.99: 2.5758293035489004}


def min_samples(percentile: float) -> int:
    """Fewest samples needed before ``percentile`` may be reported.

    Raises:
        ValueError: The percentile is outside (0, 99].
    """
    if not 0.0 < percentile <= 99.0:
        raise ValueError(f"percentile must be in (0, 99], got {percentile}.")
    return next(n for p, n in sorted(MIN_SAMPLES.items()) if p >= percentile)


@dataclass(frozen=True)
class Interval:
    """A percentile estimate with its confidence interval, in the samples' unit."""

    estimate: float
    low: float
    high: float
    confidence: float

    @property
    def relative_half_width(self) -> float:
        """Half the interval's width over the estimate (inf when the estimate is 0)."""
        if self.estimate <= 0:
            return math.inf
        return (self.high - self.low) / 2.0 / self.estimate


def percentile_interval(
    samples: Sequence[float] | np.ndarray, percentile: float, confidence: float = 0.95
) -> Interval:
    """Estimate a percentile and a distribution-free confidence interval for it.

    The interval is bounded by order statistics whose ranks come from the normal approximation
    of the binomial count of samples below the true percentile; it assumes nothing about the
    shape of the latency distribution.

    Args:
        samples: Observations (any order).
        percentile: In (0, 100).
        confidence: One of 0.90, 0.95, 0.99.

    Raises:
        ValueError: No samples, or an unsupported confidence level.
    """
    if confidence not in _Z:
        raise ValueError(f"confidence must be one of {sorted(_Z)}, got {confidence}.")
    data = np.sort(np.asarray(samples, dtype=float))
    n = len(data)
    if n == 0:
        raise ValueError("Expected at least one sample, got none.")
    q = percentile / 100.0
    spread = _Z[confidence] * math.sqrt(n * q * (1.0 - q))
    low_rank = max(math.floor(n * q - spread), 1)
    high_rank = min(math.ceil(n * q + spread) + 1, n)
    return Interval(
        estimate=float(np.percentile(data, percentile)),
        low=float(data[low_rank - 1]),
        high=float(data[high_rank - 1]),
        confidence=confidence,
    )


@dataclass(frozen=True)
class SamplingRule:
    """When adaptive sampling may stop.

    Sampling stops at the first check where at least ``min_time_s`` has passed, the sample
    count reaches what ``percentile`` needs, and the interval's relative half-width is at most
    ``rel_tol``; or, failing that, once ``max_time_s`` has passed and the count suffices; or at
    ``hard_cap_s`` whatever the count (the result is then marked under-sampled).
    """

    percentile: float = 95.0
    rel_tol: float = 0.03
    min_time_s: float = 0.05
    max_time_s: float = 1.0
    hard_cap_s: float = 10.0
    warmup_runs: int = 10
    block: int = 32


@dataclass(frozen=True)
class SamplingResult:
    """Latency samples in milliseconds and why sampling stopped."""

    samples_ms: tuple[float, ...]
    stop_reason: str
    elapsed_s: float


def sample_latency(
    run_once: Callable[[], object], clock: Callable[[], int], rule: SamplingRule
) -> SamplingResult:
    """Warm up, then time ``run_once`` until ``rule`` says the percentile is known well enough.

    Args:
        run_once: One inference call.
        clock: Monotonic nanoseconds (``time.perf_counter_ns`` in real use).
        rule: Stopping rule.

    Returns:
        Every timed sample (warm-up excluded) and the stop reason: ``converged``,
        ``time_cap`` or ``hard_cap``.
    """
    needed = min_samples(rule.percentile)
    for _ in range(rule.warmup_runs):
        run_once()
    samples: list[float] = []
    start = clock()
    while True:
        for _ in range(rule.block):
            t0 = clock()
            run_once()
            samples.append((clock() - t0) / 1e6)
        elapsed = (clock() - start) / 1e9
        enough = len(samples) >= needed
        if enough and elapsed >= rule.min_time_s:
            interval = percentile_interval(samples, rule.percentile)
            if interval.relative_half_width <= rule.rel_tol:
                return SamplingResult(tuple(samples), "converged", elapsed)
            if elapsed >= rule.max_time_s:
                return SamplingResult(tuple(samples), "time_cap", elapsed)
        if elapsed >= rule.hard_cap_s:
            return SamplingResult(tuple(samples), "hard_cap", elapsed)
