"""Build a fully measured table of configurations for `moopt replay` (issue 4's benchmark).

Every configuration of a per-family grid is trained on the digits data, converted to ONNX and
measured with moopt's own code (accuracy from the ONNX outputs; latency p50/p95 at batch 1,
one thread; peak memory; model size). One row per configuration; a hyperparameter cell is
empty for families that do not use it. Run: .venv/bin/python scripts/build_search_table.py OUT.csv
"""

from __future__ import annotations

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
#: Objective columns (any other column is a hyperparameter to `moopt replay`).
OBJECTIVES = ["accuracy", "latency_ms", "size_kb"]


def main(out: str) -> int:
    data = split(load_dataset("digits"), 0.25, 0, True)
    holdout = EvalData(data.test_features, data.test_labels)
    params_cols = sorted({p for grid in GRIDS.values() for p in grid})
    rows = []
    start = time.perf_counter()
    for family, grid in GRIDS.items():
        for combo in itertools.product(*grid.values()):
            params = dict(zip(grid, combo, strict=True))
            candidate = Candidate(family, {**FIXED[family], **params})
            est = fit(candidate, FAMILIES, data.train_features, data.train_labels, 0)
            model = convert(est, data.train_features)
            values = measure(
                [Accuracy(), Latency(), PeakMemory()], model, holdout, RuntimeSettings()
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
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["family", *params_cols, *OBJECTIVES])
        writer.writeheader()
        writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
