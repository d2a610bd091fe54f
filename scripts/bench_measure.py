"""Benchmark of moopt's measurements; run through scripts/bench_measure.

Trains models of clearly different speeds on the digits data, converts them to ONNX and:
- measures each in 5 separate sessions (sessions interleaved across models, so a slow spell
  of the machine does not fall on one model only): coefficient of variation of p50 and p95;
- ranks the models by p50 in two sessions: Spearman correlation;
- compares peak memory with an independent measurement: /usr/bin/time -v of a tiny script
  that loads and runs the model, minus the same script without the model;
- times one complete measurement (latency + peak memory) of a sub-millisecond model;
- measures p50 with and without a CPU-burning process beside it, isolation on and off.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from skl2onnx import to_onnx
from sklearn.datasets import load_digits
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from objectives import (
    EvalData,
    Isolation,
    Latency,
    OnnxModel,
    PeakMemory,
    RuntimeSettings,
    measure,
)

MODELS = {
    "logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)),
    "rf-10x6": lambda: RandomForestClassifier(10, max_depth=6, random_state=0),
    "mlp-64": lambda: make_pipeline(
        StandardScaler(), MLPClassifier((64,), max_iter=300, random_state=0)
    ),
    "gb-100": lambda: GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0),
    "mlp-256x2": lambda: make_pipeline(
        StandardScaler(), MLPClassifier((256, 256), max_iter=200, random_state=0)
    ),
    "rf-300": lambda: RandomForestClassifier(300, random_state=0),
    "et-500": lambda: ExtraTreesClassifier(500, random_state=0),
    "svc": lambda: make_pipeline(StandardScaler(), SVC(C=10, random_state=0)),
    "knn-5": lambda: make_pipeline(StandardScaler(), KNeighborsClassifier(5)),
    "knn-30-dist": lambda: make_pipeline(
        StandardScaler(), KNeighborsClassifier(30, weights="distance")
    ),
}

MEMORY_SCRIPT = """
import sys, numpy as np, onnxruntime as ort
x = np.load(sys.argv[1])
if sys.argv[2] != "-":
    o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
    s = ort.InferenceSession(sys.argv[2], o, providers=["CPUExecutionProvider"])
    for _ in range(3):
        s.run(None, {s.get_inputs()[0].name: x})
"""


def build_models() -> tuple[dict[str, OnnxModel], EvalData]:
    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(
        x.astype(np.float32), y, test_size=0.25, random_state=0, stratify=y
    )
    models = {}
    for name, make in MODELS.items():
        est = make().fit(xtr, ytr)
        final = est.steps[-1][1] if hasattr(est, "steps") else est
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onx = to_onnx(est, xtr[:1], options={id(final): {"zipmap": False}})
        models[name] = OnnxModel(onx.SerializeToString())
    return models, EvalData(xte, yte)


def cv(values: list[float]) -> float:
    return statistics.pstdev(values) / statistics.mean(values)


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def time_v_max_rss_mb(args: list[str]) -> float:
    proc = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-c", MEMORY_SCRIPT, *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return kb * 1024 / 1e6


def independent_memory(model: OnnxModel, batch: np.ndarray, reps: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        mpath, xpath = Path(tmp) / "m.onnx", Path(tmp) / "x.npy"
        mpath.write_bytes(model.content)
        np.save(xpath, batch)
        loaded = statistics.median(
            time_v_max_rss_mb([str(xpath), str(mpath)]) for _ in range(reps)
        )
        base = statistics.median(time_v_max_rss_mb([str(xpath), "-"]) for _ in range(reps))
    return loaded - base


def burner() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--json", help="also write the raw results to this file")
    args = parser.parse_args()
    os.environ.setdefault("MOOPT_CACHE_DIR", tempfile.mkdtemp(prefix="moopt-bench-cache-"))

    models, data = build_models()
    settings = RuntimeSettings()
    objectives = [Latency(), PeakMemory()]
    p50: dict[str, list[float]] = {n: [] for n in models}
    p95: dict[str, list[float]] = {n: [] for n in models}
    mem: dict[str, list[float]] = {n: [] for n in models}
    walls: dict[str, list[float]] = {n: [] for n in models}
    flags: dict[str, list[float]] = {n: [] for n in models}
    widths: dict[str, list[float]] = {n: [] for n in models}
    for _ in range(args.sessions):
        for name, model in models.items():
            t0 = time.perf_counter()
            report = measure(objectives, model, data, settings)
            walls[name].append(time.perf_counter() - t0)
            values = report.values()
            p50[name].append(values["latency_p50_ms"])
            p95[name].append(values["latency_p95_ms"])
            mem[name].append(values["peak_memory_mb"])
            flags[name].append(report.repeats)
            interval = report.measurements["latency_p95_ms"].details["intervals"]["latency_p95_ms"]
            widths[name].append(
                (interval["high"] - interval["low"]) / 2 / values["latency_p95_ms"]
            )

    print(f"## Repeatability ({args.sessions} sessions per model, batch 1, 1 thread)\n")
    print(
        "| model | p50 ms (median) | CV p50 | p95 ms (median) | CV p95 | p95 interval (median) | "
        "re-measured | peak MB (ours) | peak MB (/usr/bin/time -v) | diff MB | wall s (median) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    results = {}
    batch = data.features[:1]
    mem_ok = []
    for name in models:
        independent = independent_memory(models[name], batch, reps=3)
        ours = statistics.median(mem[name])
        diff = ours - independent
        mem_ok.append(abs(diff) <= max(5.0, 0.10 * independent))
        results[name] = {
            "p50": p50[name],
            "p95": p95[name],
            "memory": mem[name],
            "independent_memory": independent,
            "wall": walls[name],
            "repeats": flags[name],
            "p95_interval_half_width": widths[name],
        }
        print(
            f"| {name} | {statistics.median(p50[name]):.4f} | {cv(p50[name]):.1%} | "
            f"{statistics.median(p95[name]):.4f} | {cv(p95[name]):.1%} | "
            f"±{statistics.median(widths[name]):.1%} | "
            f"{sum(1 for f in flags[name] if f)}/{args.sessions} | {ours:.1f} | "
            f"{independent:.1f} | {diff:+.1f} | {statistics.median(walls[name]):.2f} |"
        )

    names = list(models)
    rho = spearman([p50[n][0] for n in names], [p50[n][1] for n in names])
    sub_ms = [n for n in names if statistics.median(p50[n]) < 1.0]
    overhead = statistics.median(w for n in sub_ms for w in walls[n])
    cv50 = max(cv(p50[n]) for n in names)
    cv95 = max(cv(p95[n]) for n in names)

    print("\n## Interference (p50 ms, median of 5 measurements; svc model)\n")
    print("| isolation | quiet | beside a CPU burner | ratio |")
    print("|---|---|---|---|")
    interference = {}
    for label, isolation in (
        ("on (fresh pinned process, lock)", Isolation()),
        ("off (in this process)", Isolation(enabled=False, lock_path=None, retries=0)),
    ):
        row = []
        for burn in (False, True):
            proc = burner() if burn else None
            try:
                time.sleep(0.2)
                vals = [
                    measure([Latency()], models["svc"], data, settings, isolation).values()[
                        "latency_p50_ms"
                    ]
                    for _ in range(5)
                ]
            finally:
                if proc:
                    proc.kill()
                    proc.wait()
            row.append(statistics.median(vals))
        interference[label] = row
        print(f"| {label} | {row[0]:.4f} | {row[1]:.4f} | {row[1] / row[0]:.2f} |")

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print("\n## Targets\n")
    print("| target | measured | verdict |")
    print("|---|---|---|")
    print(f"| CV of p50 <= 3% (worst model) | {cv50:.1%} | {verdict(cv50 <= 0.03)} |")
    print(f"| CV of p95 <= 5% (worst model) | {cv95:.1%} | {verdict(cv95 <= 0.05)} |")
    print(f"| Spearman of p50, session 1 vs 2 >= 0.95 | {rho:.3f} | {verdict(rho >= 0.95)} |")
    print(
        f"| peak memory within 10% or 5 MB of /usr/bin/time -v | {sum(mem_ok)}/{len(mem_ok)} "
        f"models | {verdict(all(mem_ok))} |"
    )
    print(
        f"| median wall of one measurement of a sub-ms model <= 1.5 s | {overhead:.2f} s | "
        f"{verdict(overhead <= 1.5)} |"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"models": results, "spearman": rho, "interference": interference}, indent=1
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
