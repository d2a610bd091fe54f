"""Latency statistics: percentiles, distribution-free intervals and adaptive sampling.

Everything here is pure: time comes from an injected clock, so the rules can be tested with a
fake one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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
    calls; a block is *quiet* when the reference ran within ``quiet_tol`` of its best, and the
    quiet estimate needs at least ``min_quiet_blocks`` such blocks (one lucky reference check
    in a slowed session must not stand for the whole). The reference lives in the core's
    caches, so it misses a neighbour that competes for the shared cache and memory; a
    quiet block is therefore also checked against the model's own speed: every call runs the
    same input, so a block of at least ``min_block_calls`` calls whose median is more than
    ``own_tol`` over the session's fast blocks (the 10th percentile of the block medians) was
    slowed by the machine, and is left out like a block the reference saw slowed. Blocks hold
    at least ``min_block_calls`` calls. Within the blocks used, runs of two or more
    consecutive calls slower than the median by more than ``run_tol`` are left out (see
    :func:`without_disturbed_runs`).
    """

    percentile: float = 95.0
    rel_tol: float = 0.03
    min_time_s: float = 0.05
    max_time_s: float = 1.5
    hard_cap_s: float = 10.0
    warmup_runs: int = 10
    block_s: float = 0.01
    max_block: int = 2000
    switch_warmup: int = 3
    reference_s: float = 0.002
    quiet_tol: float = 0.10
    run_tol: float = 0.20
    min_quiet_blocks: int = 4
    own_tol: float = 0.05
    min_block_calls: int = 5


@dataclass(frozen=True)
class SamplingResult:
    """Latency samples in milliseconds, how they were chosen, and why sampling stopped.

    Attributes:
        samples_ms: The samples the percentiles come from (see ``estimator``).
        stop_reason: ``converged``, ``time_cap`` or ``hard_cap``.
        elapsed_s: Time spent sampling.
        estimator: ``all`` (no reference: every sample), ``quiet`` (only blocks timed while
            the reference ran within ``quiet_tol`` of the machine's best) or ``normalized``
            (too few quiet blocks: every block scaled by best / its reference time).
        quiet_share: Share of blocks that were quiet.
        reference_ms: Median of the reference's per-block medians (None without a reference).
        reference_best_ms: The best the reference ran, here or (``reference_floor_ms``) before.
        reference_min_ms: The best the reference ran in this session (what a history of the
            machine's speed should record).
        kept_share: Share of the chosen blocks' calls kept after blocks slower than the
            workload's own speed and disturbed runs were left out.
    """

    samples_ms: tuple[float, ...]
    stop_reason: str
    elapsed_s: float
    estimator: str = "all"
    quiet_share: float = 1.0
    reference_ms: float | None = None
    reference_best_ms: float | None = None
    reference_min_ms: float | None = None
    kept_share: float = 1.0


def pooled(parts: Sequence[SamplingResult], needed: int) -> SamplingResult:
    """One workload's results from several sampling sessions, pooled into one.

    The samples are joined; the estimator is ``normalized`` if any part was (the machine was
    too busy for a quiet estimate), ``quiet`` if every part was; the stop reason is
    ``converged`` only if every part converged, else ``time_cap`` when the pool holds the
    ``needed`` samples and ``hard_cap`` when it does not.

    Raises:
        ValueError: No parts.
    """
    if not parts:
        raise ValueError("Expected at least one sampling result to pool, got none.")
    samples = tuple(x for part in parts for x in part.samples_ms)
    estimators = {part.estimator for part in parts}
    estimator = next(e for e in ("normalized", "all", "quiet") if e in estimators)
    if all(part.stop_reason == "converged" for part in parts):
        reason = "converged"
    else:
        reason = "time_cap" if len(samples) >= needed else "hard_cap"
    refs = [part.reference_ms for part in parts if part.reference_ms is not None]
    bests = [part.reference_best_ms for part in parts if part.reference_best_ms is not None]
    mins = [part.reference_min_ms for part in parts if part.reference_min_ms is not None]
    offered = sum(len(part.samples_ms) / part.kept_share for part in parts if part.kept_share)
    return SamplingResult(
        samples,
        reason,
        sum(part.elapsed_s for part in parts),
        estimator,
        statistics.mean(part.quiet_share for part in parts),
        statistics.median(refs) if refs else None,
        min(bests) if bests else None,
        min(mins) if mins else None,
        len(samples) / offered if offered else 1.0,
    )


def without_disturbed_runs(
    blocks: Sequence[Sequence[float]], median: float, tol: float
) -> tuple[list[float], int]:
    """Leave out the calls of every run of two or more consecutive calls slower than
    ``median * (1 + tol)``.

    On a shared machine a neighbour on the core slows stretches of calls, from tens of
    microseconds to seconds; the same input runs every call, so a run of slow calls is the
    machine, not the model. A single slow call (an interrupt, a cache miss) stays, as it would
    in deployment.

    Args:
        blocks: Consecutive calls, block by block (runs do not cross blocks).
        median: The median call time (the threshold's base).
        tol: How much slower than the median a call must be to count as slow.

    Returns:
        The calls kept, and how many were left out.
    """
    threshold = median * (1.0 + tol)
    kept: list[float] = []
    dropped = 0
    for block in blocks:
        i, n = 0, len(block)
        while i < n:
            if block[i] <= threshold:
                kept.append(block[i])
                i += 1
                continue
            j = i
            while j < n and block[j] > threshold:
                j += 1
            if j - i >= 2:
                dropped += j - i
            else:
                kept.extend(block[i:j])
            i = j
    return kept, dropped


#: The block-median percentile that stands for a workload's own fast speed in a session.
OWN_SPEED_PERCENTILE = 10.0


def at_own_speed(blocks: Sequence[Sequence[float]], tol: float, min_calls: int) -> list[bool]:
    """Which blocks ran at the workload's own fast speed.

    A block of at least ``min_calls`` calls is slow when its median is more than ``tol`` over
    the :data:`OWN_SPEED_PERCENTILE` th percentile of those blocks' medians; a shorter block
    is never judged (its median says too little).
    """
    medians = [statistics.median(b) if len(b) >= min_calls else None for b in blocks]
    judged = [m for m in medians if m is not None]
    if not judged:
        return [True] * len(blocks)
    limit = float(np.percentile(judged, OWN_SPEED_PERCENTILE)) * (1.0 + tol)
    return [m is None or m <= limit for m in medians]


@dataclass
class _Blocks:
    """One workload's timed blocks, each with the reference median timed just before it."""

    samples: list[list[float]] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)
    run_tol: float = 0.2
    own_tol: float | None = None
    min_block_calls: int = 5

    def every(self) -> list[float]:
        return [x for block in self.samples for x in block]

    def _undisturbed(self, blocks: list[list[float]]) -> list[float]:
        pool = [x for block in blocks for x in block]
        if not pool:
            return pool
        return without_disturbed_runs(blocks, statistics.median(pool), self.run_tol)[0]

    def _reference_quiet(self, best: float, tol: float) -> list[list[float]]:
        """The blocks timed while the reference ran within ``tol`` of ``best``."""
        return [
            block
            for block, ref in zip(self.samples, self.reference, strict=True)
            if ref <= best * (1.0 + tol)
        ]

    def _quiet_blocks(self, best: float, tol: float) -> list[list[float]]:
        """The reference-quiet blocks timed while the workload also ran at its own fast
        speed (see :func:`at_own_speed`)."""
        quiet = self._reference_quiet(best, tol)
        if self.own_tol is None:
            return quiet
        own = at_own_speed(quiet, self.own_tol, self.min_block_calls)
        return [block for block, ok in zip(quiet, own, strict=True) if ok]

    def quiet(self, best: float, tol: float) -> list[float]:
        return self._undisturbed(self._quiet_blocks(best, tol))

    def normalized(self, best: float) -> list[float]:
        return self._undisturbed(
            [
                [x * best / ref for x in block]
                for block, ref in zip(self.samples, self.reference, strict=True)
            ]
        )

    def quiet_blocks(self, best: float, tol: float) -> int:
        return len(self._quiet_blocks(best, tol))

    def quiet_calls(self, best: float, tol: float) -> int:
        """Calls in the blocks the reference found quiet, before slow blocks and disturbed
        runs are left out."""
        return sum(len(block) for block in self._reference_quiet(best, tol))


def _block_size(
    run_once: Callable[[], object],
    clock: Callable[[], int],
    runs: int,
    seconds: float,
    most: int,
    least: int = 1,
) -> int:
    durations = []
    for _ in range(max(runs, 1)):
        t0 = clock()
        run_once()
        durations.append(clock() - t0)
    per_call_s = max(statistics.median(durations), 1) / 1e9
    return max(least, 1, min(most, round(seconds / per_call_s)))


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
    reference_floor_ms: float | None = None,
) -> list[SamplingResult]:
    """Time several workloads interleaved (A B C A B C ...) until ``rule`` is met for all.

    Each round times a block of about ``rule.block_s`` seconds of every workload in turn, so
    slow drifts of the machine hit every workload alike: their ratios are fair even when their
    absolute values move. The time limits scale with the number of workloads.

    With a ``reference`` workload, each block is preceded by ``rule.reference_s`` seconds of
    reference calls. Shared machines run slower for stretches of a second or more when a
    neighbour competes for the core; blocks timed while the reference ran within
    ``rule.quiet_tol`` of its best, and the workload within ``rule.own_tol`` of its own fast
    speed, are *quiet*, and the percentiles come from quiet blocks. If
    too few blocks were quiet by the time cap, every block is scaled by how much slower the
    reference ran around it (estimator ``normalized``).

    Args:
        runs: One inference call per workload.
        clock: Monotonic nanoseconds (``time.perf_counter_ns`` in real use).
        rule: Stopping rule, applied to every workload.
        reference: A fixed workload timed before every block, or None.
        reference_floor_ms: The best this machine ran the reference before (so that a session
            slowed from start to end is recognised), or None.

    Returns:
        One result per workload, in order, with the shared stop reason.
    """
    needed = min_samples(rule.percentile)
    least = rule.min_block_calls if reference is not None else 1
    sizes = [
        _block_size(r, clock, rule.warmup_runs, rule.block_s, rule.max_block, least) for r in runs
    ]
    ref_size = (
        _block_size(reference, clock, rule.warmup_runs, rule.reference_s, rule.max_block)
        if reference is not None
        else 0
    )
    # Blocks that follow another workload (or the reference) start with untimed calls.
    switch_warmup = rule.switch_warmup if len(runs) > 1 or reference is not None else 0
    blocks = [
        _Blocks(
            run_tol=rule.run_tol,
            own_tol=rule.own_tol if reference is not None else None,
            min_block_calls=rule.min_block_calls,
        )
        for _ in runs
    ]
    max_time, hard_cap = rule.max_time_s * len(runs), rule.hard_cap_s * len(runs)
    start = clock()

    def best() -> float | None:
        refs = [r for b in blocks for r in b.reference]
        if not refs:
            return None
        return min(refs + ([reference_floor_ms] if reference_floor_ms else []))

    def chosen(b: _Blocks, quiet_enough: bool) -> tuple[list[float], str]:
        top = best()
        if top is None:
            return b.every(), "all"
        if quiet_enough:
            return b.quiet(top, rule.quiet_tol), "quiet"
        return b.normalized(top), "normalized"

    def done(reason: str, elapsed: float, quiet_enough: bool) -> list[SamplingResult]:
        top = best()
        own = min((r for b in blocks for r in b.reference), default=None)
        results = []
        for b in blocks:
            samples, estimator = chosen(b, quiet_enough)
            quiet = [r <= top * (1 + rule.quiet_tol) for r in b.reference] if top else [True]
            offered = (
                b.quiet_calls(top, rule.quiet_tol)
                if estimator == "quiet" and top is not None
                else len(b.every())
            )
            results.append(
                SamplingResult(
                    tuple(samples),
                    reason,
                    elapsed,
                    estimator,
                    sum(quiet) / len(quiet),
                    statistics.median(b.reference) if b.reference else None,
                    top,
                    own,
                    len(samples) / offered if offered else 1.0,
                )
            )
        return results

    while True:
        for run_once, kept, size in zip(runs, blocks, sizes, strict=True):
            if reference is not None:
                kept.reference.append(statistics.median(_timed(reference, clock, ref_size)))
            for _ in range(switch_warmup):
                run_once()
            kept.samples.append(_timed(run_once, clock, size))
        elapsed = (clock() - start) / 1e9
        top = best()
        if top is None:
            pools = [b.every() for b in blocks]
        else:
            pools = [b.quiet(top, rule.quiet_tol) for b in blocks]
        quiet_enough = min(len(p) for p in pools) >= needed and (
            top is None
            or min(b.quiet_blocks(top, rule.quiet_tol) for b in blocks) >= rule.min_quiet_blocks
        )
        if quiet_enough and elapsed >= rule.min_time_s:
            widths = [percentile_interval(p, rule.percentile).relative_half_width for p in pools]
            if max(widths) <= rule.rel_tol:
                return done("converged", elapsed, True)
            if elapsed >= max_time:
                return done("time_cap", elapsed, True)
        enough = min(len(b.every()) for b in blocks) >= needed
        if elapsed >= hard_cap or (elapsed >= max_time and enough):
            return done("hard_cap" if elapsed >= hard_cap else "time_cap", elapsed, quiet_enough)


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


@dataclass(frozen=True)
class Decision:
    """A percentile judged against a budget.

    Attributes:
        verdict: ``pass`` (the interval's upper bound is within the budget), ``fail`` (its
            lower bound is above it) or ``inconclusive`` (the budget lies inside the interval
            when the time cap was reached).
        interval: The percentile's estimate and confidence interval, in ms.
        samples: Samples taken.
        elapsed_s: Time spent sampling.
    """

    verdict: str
    interval: Interval
    samples: int
    elapsed_s: float


def decide_percentile(
    run_once: Callable[[], object],
    clock: Callable[[], int],
    budget_ms: float,
    percentile: float = 95.0,
    *,
    confidence: float = 0.95,
    max_time_s: float = 5.0,
    warmup_runs: int = 10,
    block_s: float = 0.01,
) -> Decision:
    """Sample until the percentile is clearly within or clearly over ``budget_ms``.

    After warm-up and once there are enough samples for the percentile, every block ends with
    a check: pass when the upper bound of the ``confidence`` interval is within the budget,
    fail when the lower bound is above it. A percentile too close to the budget to tell
    within ``max_time_s`` is ``inconclusive``, rather than a verdict that flips between runs.
    """
    needed = min_samples(percentile)
    size = _block_size(run_once, clock, warmup_runs, block_s, 2000)
    samples: list[float] = []
    start = clock()
    while True:
        samples.extend(_timed(run_once, clock, size))
        elapsed = (clock() - start) / 1e9
        if len(samples) < needed:
            if elapsed >= max_time_s * 4:  # a model too slow to ever reach the count
                interval = percentile_interval(samples, percentile, confidence)
                return Decision("inconclusive", interval, len(samples), elapsed)
            continue
        interval = percentile_interval(samples, percentile, confidence)
        if interval.high <= budget_ms:
            return Decision("pass", interval, len(samples), elapsed)
        if interval.low > budget_ms:
            return Decision("fail", interval, len(samples), elapsed)
        if elapsed >= max_time_s:
            return Decision("inconclusive", interval, len(samples), elapsed)
