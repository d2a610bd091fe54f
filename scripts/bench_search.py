"""Benchmark of search strategies by replay; run through scripts/bench_search.

Replays each strategy against fully measured tables (every benchmarks/*.csv by default: digits
at batch 1, breast_cancer at batch 1 on another grid, digits at batch 32 on that grid, wine at
batch 1 on the first grid) at 10% and 20% of the table for several seeds. Each run is scored
by the hypervolume of the rows it evaluated divided by the hypervolume of the table's true
front (objectives normalized to [0, 1] over the table, minimized ones on a log scale,
reference point at the true front's nadir plus 10% of its range), and by the share of the true
front it recovered.

Where a table's families and hyperparameters have moopt's names (``gb``, ``learning_rate``),
moopt's first trials start at its anchors (a boosting's largest learning rate for its fewest
stages), as ``moopt run`` does; the row "moopt default, names unknown" replays the same
tables with the anchors removed, as for a table whose names moopt does not know.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna

from moopt._front import hypervolume, pareto_mask
from moopt._replay import ReplayTable, load_table, parse_objectives, replay
from moopt.search import Strategy

OBJECTIVES = "accuracy:max,latency_ms:min,size_kb:min"


def normalized(table: ReplayTable) -> np.ndarray:
    raw = np.array([table.values(i) for i in range(len(table.rows))], dtype=float)
    out = np.empty_like(raw)
    for j, o in enumerate(table.objectives):
        col = raw[:, j]
        if o.direction == "minimize" and (col > 0).all():
            col = np.log(col)
        lo, hi = col.min(), col.max()
        scaled = (col - lo) / (hi - lo) if hi > lo else np.zeros_like(col)
        out[:, j] = 1 - scaled if o.direction == "maximize" else scaled
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--table", action="append", help="a replay table (repeatable; default: benchmarks/*.csv)"
    )
    parser.add_argument("--objectives", default=OBJECTIVES)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--only", help="comma-separated strategy names to run")
    args = parser.parse_args()
    tables = args.table or sorted(str(p) for p in Path("benchmarks").glob("*.csv"))
    verdicts = [bench_table(path, args) for path in tables]
    print("\n| table | target | measured | verdict |\n|---|---|---|---|")
    for path, rows_ in zip(tables, verdicts, strict=True):
        for line in rows_:
            print(f"| {Path(path).name} {line}")
    return 0


def bench_table(path: str, args: argparse.Namespace) -> list[str]:
    """Print one table's results; return its target rows."""
    table = load_table(path, parse_objectives(args.objectives))
    points = normalized(table)
    front = np.flatnonzero(pareto_mask(points, ["minimize"] * points.shape[1]))
    nadir, ideal = points[front].max(axis=0), points[front].min(axis=0)
    reference = nadir + 0.1 * (nadir - ideal)
    true_hv = hypervolume(points[front], reference)

    table_unknown = dataclasses.replace(
        table,
        space={name: dataclasses.replace(f, anchor={}) for name, f in table.space.items()},
    )
    strategies: dict[str, Callable[[int, int], list[int]]] = {
        "grid (shuffled)": lambda b, s: rows(table, b, s, Strategy("grid")),
        "random": lambda b, s: rows(table, b, s, sampler=optuna.samplers.RandomSampler(seed=s)),
        "NSGAIISampler()": lambda b, s: rows(
            table, b, s, sampler=optuna.samplers.NSGAIISampler(seed=s)
        ),
        "Optuna default (TPE)": lambda b, s: rows(
            table, b, s, sampler=optuna.samplers.TPESampler(seed=s)
        ),
        "moopt tpe": lambda b, s: rows(table, b, s, Strategy("tpe")),
        "moopt nsga3": lambda b, s: rows(table, b, s, Strategy("nsga3")),
        "moopt default (nsga2)": lambda b, s: rows(table, b, s, Strategy("nsga2")),
        # The same, on a table whose family and hyperparameter names moopt does not know: its
        # first trials then start at the low corners, without moopt's anchors.
        "moopt default, names unknown": lambda b, s: rows(table_unknown, b, s, Strategy("nsga2")),
    }
    if args.only:
        wanted = {w.strip() for w in args.only.split(",")}
        strategies = {k: v for k, v in strategies.items() if k in wanted}
    n = len(table.rows)
    print(
        f"\nTable {path}: {n} configurations, {len(table.space)} families, objectives "
        f"{args.objectives}; true front {len(front)} rows. {args.seeds} seeds.\n"
    )
    print(
        "| strategy | budget | HV ratio median | HV ratio min | front recovered median | "
        "seconds / run |"
    )
    print("|---|---|---|---|---|---|")
    results: dict[tuple[str, float], list[float]] = {}
    for fraction in (0.1, 0.2):
        budget = round(fraction * n)
        for name, run in strategies.items():
            ratios, shares, seconds = [], [], []
            for seed in range(args.seeds):
                t0 = time.perf_counter()
                got = run(budget, seed)
                seconds.append(time.perf_counter() - t0)
                assert len(set(got)) == len(got) <= budget
                ratios.append(hypervolume(points[got], reference) / true_hv)
                shares.append(len(set(got) & set(front)) / len(front))
            results[(name, fraction)] = ratios
            print(
                f"| {name} | {budget} ({fraction:.0%}) | {statistics.median(ratios):.3f} | "
                f"{min(ratios):.3f} | {statistics.median(shares):.0%} | "
                f"{statistics.median(seconds):.2f} |",
                flush=True,
            )
    default = "moopt default (nsga2)"
    baselines = [k for (k, _) in results if not k.startswith("moopt")]
    verdicts: list[str] = []
    if baselines and all((default, f) in results for f in (0.1, 0.2)):
        for fraction, target in ((0.2, 0.95), (0.1, 0.88)):
            med = statistics.median(results[(default, fraction)])
            best_other = max(
                statistics.median(v)
                for (k, f), v in results.items()
                if f == fraction and k != default and not k.startswith("moopt")
            )
            verdicts.append(
                f"| moopt default at {fraction:.0%}: median HV ratio >= {target} | {med:.3f} | "
                f"{'met' if med >= target else 'MISSED'} |"
            )
            verdicts.append(
                f"| moopt default at {fraction:.0%}: above every baseline ({best_other:.3f}) | "
                f"{med:.3f} | {'met' if med > best_other else 'MISSED'} |"
            )
    return verdicts


def rows(
    table: ReplayTable,
    budget: int,
    seed: int,
    strategy: Strategy | None = None,
    sampler: optuna.samplers.BaseSampler | None = None,
) -> list[int]:
    return [r.row for r in replay(table, budget, seed, strategy, sampler)]


if __name__ == "__main__":
    sys.exit(main())
