"""Benchmark of local workers; run through scripts/bench_scale.

Runs the same search (digits, every family, N distinct evaluations, no re-verification) with 1
and with 2 local workers, reports trials per hour, then re-measures the front's models in one
quiet interleaved session and reports the Spearman rank correlation of the latencies the
search recorded against the quiet ones.

By default both runs evaluate the same configurations (``--sampler grid``: the first N of a
shuffled grid), so that the speed-up compares like with like; an adaptive sampler trains
different models in the two runs (one run's MLPs took twice as long as the other's).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import moopt
from moopt.study import make_context
from moopt.study._trial import load_model
from objectives import EvalData, Latency, measure_interleaved


def spearman(a: list[float], b: list[float]) -> float:
    if len(a) < 3:
        return float("nan")
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--sampler", default="grid", help="moopt's --sampler (default grid)")
    args = parser.parse_args()
    rows = []
    for workers in (1, 2):
        out = Path(tempfile.mkdtemp(prefix=f"moopt-scale-{workers}-")) / "out"
        start = time.perf_counter()
        result = moopt.optimize(
            dataset="digits",
            trials=args.trials,
            seed=0,
            reverify=False,
            out=str(out),
            workers=workers,
            sampler=args.sampler,
        )
        elapsed = time.perf_counter() - start
        summary = result.summary
        assert summary is not None
        per_hour = summary.evaluated / elapsed * 3600
        ctx = make_context(result.config)
        front = list(result.front)
        models = [load_model(t, ctx) for t in front]
        settings = [ctx.settings_for(t.user_attrs.get("knobs", {})) for t in front]
        quiet, _ = measure_interleaved(
            Latency(), models, EvalData(ctx.split.test_features), settings
        )
        rho = {
            k: spearman([t.user_attrs["metrics"][k] for t in front], [q.values[k] for q in quiet])
            for k in ("latency_p50_ms", "latency_p95_ms")
        }
        rows.append((workers, summary.evaluated, elapsed, per_hour, len(front), rho))
    base = rows[0][3]
    print(
        f"## Local workers ({args.trials} distinct evaluations each, digits, every family, "
        f"sampler {args.sampler})\n"
    )
    print(
        "| workers | evaluations | wall s | trials / hour | speed-up | front size | "
        "Spearman p50 vs quiet | Spearman p95 vs quiet |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for workers, n, elapsed, per_hour, size, rho in rows:
        print(
            f"| {workers} | {n} | {elapsed:.0f} | {per_hour:.0f} | {per_hour / base:.2f}x | "
            f"{size} | {rho['latency_p50_ms']:.3f} | {rho['latency_p95_ms']:.3f} |"
        )
    speedup = rows[1][3] / base
    worst = min(r[5]["latency_p50_ms"] for r in rows)
    print("\n| target | measured | verdict |\n|---|---|---|")
    print(
        f"| 2 workers >= 1.6x the trials per hour of 1 | {speedup:.2f}x | "
        f"{'met' if speedup >= 1.6 else 'MISSED'} |"
    )
    print(
        f"| latency rank correlation >= 0.9 (p50, worst of the two runs) | {worst:.3f} | "
        f"{'met' if worst >= 0.9 else 'MISSED'} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
