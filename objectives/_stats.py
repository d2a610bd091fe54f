"""Latency statistics: percentiles, distribution-free intervals and adaptive sampling.

Everything here is pure: time comes from an injected clock, so the rules can be tested with a
fake one.
"""

from __future__ import annotations

import math
import statistics
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
    """When adaptive sampling may stop, and how calls are grouped.

    Sampling stops at the first check where at least ``min_time_s`` has passed, the sample
    count reaches what ``percentile`` needs, and the interval's relative half-width is at most
    ``rel_tol``; or, failing that, once ``max_time_s`` has passed and the count suffices; or at
    ``hard_cap_s`` whatever the count (the result is then marked under-sampled).

    Calls are timed in blocks of about ``block_s`` seconds (at most ``max_block`` calls),
    sized from the warm-up calls; the stopping rule is checked after each block. When several
    models are interleaved, each block starts with ``switch_warmup`` untimed calls, because the
    first calls after switching models pay for cold caches that a deployed model does not see.

    With a reference workload, every block is preceded by ``reference_s`` seconds of reference
    calls, whose medians tell how fast the machine ran while the blocks were timed.
    """

    percentile: float = 95.0
    rel_tol: float = 0.03
    min_time_s: float = 0.05
    max_time_s: float = 1.0
    hard_cap_s: float = 10.0
    warmup_runs: int = 10
    block_s: float = 0.01
    max_block: int = 2000
    switch_warmup: int = 3
    reference_s: float = 0.002


@dataclass(frozen=True)
class SamplingResult:
    """Latency samples in milliseconds and why sampling stopped.

    Attributes:
        samples_ms: Every timed sample (warm-up excluded).
        stop_reason: ``converged``, ``time_cap`` or ``hard_cap``.
        elapsed_s: Time spent sampling.
        reference_ms: Median over blocks of the reference workload's per-block median (None
            without a reference): how fast the machine ran meanwhile.
    """

    samples_ms: tuple[float, ...]
    stop_reason: str
    elapsed_s: float
    reference_ms: float | None = None


def _block_size(
    run_once: Callable[[], object], clock: Callable[[], int], runs: int, seconds: float, most: int
) -> int:
    durations = []
    for _ in range(max(runs, 1)):
        t0 = clock()
        run_once()
        durations.append(clock() - t0)
    per_call_s = max(statistics.median(durations), 1) / 1e9
    return max(1, min(most, round(seconds / per_call_s)))


def _timed(run_once: Callable[[], object], clock: Callable[[], int], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = clock()
        run_once()
        out.append((clock() - t0) / 1e6)
    return out


def sample_interleaved(
    runs: Sequence[Callable[[], object]],
    clock: Callable[[], int],
    rule: SamplingRule,
    reference: Callable[[], object] | None = None,
) -> list[SamplingResult]:
    """Time several workloads interleaved (A B C A B C ...) until ``rule`` is met for all.

    Each round times a block of about ``rule.block_s`` seconds of every workload in turn, so
    slow drifts of the machine hit every workload alike: their ratios are fair even when their
    absolute values move. The time limits scale with the number of workloads.

    Args:
        runs: One inference call per workload.
        clock: Monotonic nanoseconds (``time.perf_counter_ns`` in real use).
        rule: Stopping rule, applied to every workload.
        reference: A fixed workload timed before every block, or None.

    Returns:
        One result per workload, in order, with the shared stop reason.
    """
    needed = min_samples(rule.percentile)
    sizes = [_block_size(r, clock, rule.warmup_runs, rule.block_s, rule.max_block) for r in runs]
    ref_size = (
        _block_size(reference, clock, rule.warmup_runs, rule.reference_s, rule.max_block)
        if reference is not None
        else 0
    )
    # Blocks that follow another workload (or the reference) start with untimed calls.
    switch_warmup = rule.switch_warmup if len(runs) > 1 or reference is not None else 0
    samples: list[list[float]] = [[] for _ in runs]
    ref_medians: list[float] = []
    max_time, hard_cap = rule.max_time_s * len(runs), rule.hard_cap_s * len(runs)
    start = clock()

    def done(reason: str, elapsed: float) -> list[SamplingResult]:
        ref = statistics.median(ref_medians) if ref_medians else None
        return [SamplingResult(tuple(s), reason, elapsed, ref) for s in samples]

    while True:
        for run_once, kept, size in zip(runs, samples, sizes, strict=True):
            if reference is not None:
                ref_medians.append(statistics.median(_timed(reference, clock, ref_size)))
            for _ in range(switch_warmup):
                run_once()
            kept.extend(_timed(run_once, clock, size))
        elapsed = (clock() - start) / 1e9
        if min(len(s) for s in samples) >= needed and elapsed >= rule.min_time_s:
            widths = [percentile_interval(s, rule.percentile).relative_half_width for s in samples]
            if max(widths) <= rule.rel_tol:
                return done("converged", elapsed)
            if elapsed >= max_time:
                return done("time_cap", elapsed)
        if elapsed >= hard_cap:
            return done("hard_cap", elapsed)


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
    return sample_interleaved([run_once], clock, rule)[0]
