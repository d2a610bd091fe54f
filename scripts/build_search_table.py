"""Build a fully measured table of configurations for `moopt replay` (issue 4's benchmark).

Every configuration of a per-family grid is trained on the digits data, converted to ONNX and
measured with moopt's own code (accuracy from the ONNX outputs; latency p50/p95 at batch 1,
one thread; peak memory; model size). One row per configuration; a hyperparameter cell is
empty for families that do not use it.

Run: .venv/bin/python scripts/build_search_table.py OUT.csv [--dataset NAME] [--batch N]
[--grid default|alt]. The ``alt`` grid (other values, 264 rows) and other datasets and batch
sizes give tables that the default strategy was not tuned on.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
import time

from moopt import load_dataset, split
from moopt.search import FAMILIES, Candidate, convert, fit
from objectives import Accuracy, EvalData, Latency, PeakMemory, RuntimeSettings, measure

TREES = {
    "n_estimators": [5, 10, 20, 50, 100, 200],
    "max_depth": [2, 4, 8, 16, 32],
    "max_features": ["sqrt", "log2"],
}
GRIDS: dict[str, dict[str, list[object]]] = {
    "logreg": {"C": [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0]},
    "rf": TREES,
    "et": TREES,
    "gb": {
        "n_estimators": [10, 20, 50, 100],
        "max_depth": [1, 2, 3],
        "learning_rate": [0.05, 0.2, 0.5],
    },
    "mlp": {"hidden_units": [8, 16, 32, 64, 128, 256], "layers": [1, 2], "alpha": [1e-5, 1e-3]},
    "svc": {"C": [0.1, 1.0, 10.0, 100.0], "gamma": [0.001, 0.003, 0.01, 0.03]},
    "knn": {"n_neighbors": [1, 3, 5, 10, 20, 30], "weights": ["uniform", "distance"]},
}
FIXED: dict[str, dict[str, object]] = {
    "logreg": {"max_iter": 1000},
    "rf": {"min_samples_leaf": 1},
    "et": {"min_samples_leaf": 1},
    "gb": {"subsample": 1.0},
    "mlp": {"learning_rate_init": 0.001},
    "svc": {},
    "knn": {},
}
ALT_TREES = {
    "n_estimators": [3, 8, 25, 60, 150, 300],
    "max_depth": [3, 6, 12, 24],
    "min_samples_leaf": [1, 4, 16],
}
ALT_GRIDS: dict[str, dict[str, list[object]]] = {
    "logreg": {"C": [0.0005, 0.002, 0.008, 0.03, 0.1, 0.5, 2.0, 8.0, 30.0, 100.0]},
    "rf": ALT_TREES,
    "et": {**ALT_TREES, "n_estimators": [3, 8, 25, 60, 150]},
    "gb": {
        "n_estimators": [5, 15, 40, 80, 160],
        "max_depth": [1, 3],
        "learning_rate": [0.03, 0.1, 0.3],
    },
    "mlp": {"hidden_units": [4, 12, 48, 160], "layers": [1, 2, 3], "alpha": [1e-4]},
    "svc": {"C": [0.3, 3.0, 30.0], "gamma": [0.0003, 0.001, 0.005, 0.02, 0.1]},
    "knn": {"n_neighbors": [1, 2, 4, 8, 16, 32, 64], "weights": ["uniform", "distance"]},
}
ALT_FIXED: dict[str, dict[str, object]] = {
    "logreg": {"max_iter": 1000},
    "rf": {"max_features": "sqrt"},
    "et": {"max_features": "sqrt"},
    "gb": {"subsample": 0.8},
    "mlp": {"learning_rate_init": 0.003},
    "svc": {},
    "knn": {},
}
#: Objective columns (any other column is a hyperparameter to `moopt replay`).
OBJECTIVES = ["accuracy", "latency_ms", "size_kb"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--grid", choices=("default", "alt"), default="default")
    args = parser.parse_args()
    grids, fixed = (GRIDS, FIXED) if args.grid == "default" else (ALT_GRIDS, ALT_FIXED)
    data = split(load_dataset(args.dataset), 0.25, 0, True)
    holdout = EvalData(data.test_features, data.test_labels)
    params_cols = sorted({p for grid in grids.values() for p in grid})
    rows = []
    start = time.perf_counter()
    for family, grid in grids.items():
        for combo in itertools.product(*grid.values()):
            params = dict(zip(grid, combo, strict=True))
            candidate = Candidate(family, {**fixed[family], **params})
            est = fit(candidate, FAMILIES, data.train_features, data.train_labels, 0)
            model = convert(est, data.train_features)
            values = measure(
                [Accuracy(), Latency(), PeakMemory()],
                model,
                holdout,
                RuntimeSettings(batch_size=args.batch),
            ).values()
            row = {"family": family, **{c: params.get(c, "") for c in params_cols}}
            row.update(
                {
                    "accuracy": round(values["accuracy"], 6),
                    "latency_ms": round(values["latency_p50_ms"], 6),
                    "size_kb": round(values["model_size_kb"], 3),
                }
            )
            rows.append(row)
            print(
                f"{len(rows):4d} {time.perf_counter() - start:7.1f}s {family} {params}",
                file=sys.stderr,
            )
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["family", *params_cols, *OBJECTIVES])
        writer.writeheader()
        writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
