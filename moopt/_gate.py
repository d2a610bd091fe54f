"""The release gate: does this ONNX model meet its latency, memory and accuracy budgets?

It measures with the same ``objectives`` code as the search. Latency is judged statistically
(pass when the confidence interval's upper bound is within the budget, fail when its lower
bound is over it, inconclusive in between once the time cap is reached); a baseline model is
timed interleaved with the candidate and a regression judged on the ratio. The gate loads only
ONNX models and numeric data (CSV, or ``.npz`` without pickle): it never unpickles anything
and never runs code from the model or the data.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np

from moopt._data import BUNDLED, load_dataset, split
from moopt._errors import DataError
from objectives import (
    Accuracy,
    EvalData,
    GraphOptimization,
    Isolation,
    Latency,
    LatencyBudget,
    MeasurementError,
    OnnxModel,
    PeakMemory,
    RuntimeSettings,
    measure,
    measure_interleaved,
    open_session,
)


@dataclass(frozen=True)
class GateSpec:
    """What to check and against which budgets (None: that check is not made).

    Attributes:
        model: The candidate ONNX model.
        data: A bundled dataset name, a CSV file or an ``.npz`` of arrays.
        target: The label column of a CSV (needed for accuracy checks).
        max_latency_ms: Budget on the latency ``percentile``.
        percentile: The judged latency percentile.
        max_memory_mb: Peak memory budget.
        min_accuracy: Accuracy floor.
        baseline: The model in production, to compare against.
        max_latency_regression: Largest allowed slowdown against the baseline (0.1: 10%).
        max_accuracy_drop: Largest allowed accuracy drop against the baseline.
        batch_size: Rows per inference.
        threads: ONNX Runtime intra-op threads.
        graph_optimization: ONNX Runtime graph optimization level.
        max_time_s: Time cap of the latency sampling before a check is inconclusive.
        expected_sha256: The model must have this hash (from a manifest).
        split: How a bundled dataset is split (``test_size``, ``split_seed``, ``stratify``).
    """

    model: Path
    data: str
    target: str | None = None
    max_latency_ms: float | None = None
    percentile: float = 95.0
    max_memory_mb: float | None = None
    min_accuracy: float | None = None
    baseline: Path | None = None
    max_latency_regression: float | None = None
    max_accuracy_drop: float | None = None
    batch_size: int = 1
    threads: int = 1
    graph_optimization: GraphOptimization = "all"
    max_time_s: float = 5.0
    expected_sha256: str | None = None
    split: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    """One check of the gate.

    Attributes:
        name: e.g. ``latency_p95_ms <= 0.5``.
        measured: The measured value.
        bound: The conservative end of its interval (what the verdict compares).
        budget: The budget.
        margin: How far inside the budget (positive) or over it (negative) the bound is.
        verdict: ``pass``, ``fail`` or ``inconclusive``.
        detail: How it was measured (samples, interval, ratio).
    """

    name: str
    measured: float
    bound: float
    budget: float
    margin: float
    verdict: str
    detail: str


@dataclass(frozen=True)
class GateReport:
    """Every check and what the gate measured them on."""

    model: str
    sha256: str
    checks: tuple[Check, ...]
    settings: dict[str, Any]
    host: dict[str, Any]

    @property
    def verdict(self) -> str:
        """``fail`` if any check failed, else ``inconclusive`` if any was, else ``pass``."""
        verdicts = {c.verdict for c in self.checks}
        if "fail" in verdicts:
            return "fail"
        return "inconclusive" if "inconclusive" in verdicts else "pass"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return {
            "model": self.model,
            "sha256": self.sha256,
            "verdict": self.verdict,
            "checks": [asdict(c) for c in self.checks],
            "settings": self.settings,
            "host": self.host,
        }


def _read_model(path: Path, what: str) -> OnnxModel:
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"The {what} '{path}' does not exist. Check the path.") from None
    except OSError as exc:
        raise DataError(f"Cannot read the {what} '{path}': {exc}.") from exc
    model = OnnxModel(content)
    try:
        open_session(content, RuntimeSettings())
    except MeasurementError as exc:
        first = str(exc).splitlines()[0][:160]
        raise DataError(
            f"The {what} '{path}' is not a valid ONNX model ({first}). Pass the "
            ".onnx file written by `moopt export`."
        ) from exc
    return model


def _input_width(model: OnnxModel) -> int | None:
    shape = open_session(model.content, RuntimeSettings()).get_inputs()[0].shape
    last = shape[-1] if shape else None
    return last if isinstance(last, int) else None


def _load_npz(path: Path) -> EvalData:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            names = set(arrays.files)
            xkey = next((k for k in ("X", "features", "x") if k in names), None)
            ykey = next((k for k in ("y", "labels", "target") if k in names), None)
            if xkey is None:
                raise DataError(
                    f"'{path}' holds arrays {sorted(names)}; expected the features "
                    "under 'X' (and the labels under 'y')."
                )
            features = np.asarray(arrays[xkey])
            labels = np.asarray(arrays[ykey]) if ykey else None
    except (OSError, ValueError) as exc:
        raise DataError(
            f"Cannot read '{path}' as numeric arrays: {exc}. The gate loads .npz "
            "files without pickle."
        ) from exc
    if features.ndim != 2 or not np.issubdtype(features.dtype, np.number):
        raise DataError(
            f"The features in '{path}' must be a 2-D numeric array; got shape "
            f"{features.shape} of {features.dtype}."
        )
    return EvalData(features.astype(np.float32), labels)


def _load_csv_features(path: Path) -> EvalData:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except OSError as exc:
        raise DataError(f"Cannot read the CSV file '{path}': {exc}.") from exc
    try:
        features = np.array([[float(c) for c in row] for row in rows[1:]], dtype=np.float32)
    except ValueError:
        raise DataError(
            f"Every column of '{path}' must be numeric to use it as features; "
            "pass --target COLUMN to name its label column."
        ) from None
    return EvalData(features)


def load_eval_data(source: str, target: str | None, split_record: dict[str, Any]) -> EvalData:
    """The rows the gate measures on.

    A bundled name is split as `moopt run` splits it (the manifest's split, else the
    defaults) and its hold-out used; a CSV or ``.npz`` is used whole.

    Raises:
        DataError: Unknown source, unreadable or non-numeric data.
    """
    path = Path(source)
    if source in BUNDLED:
        record = {"test_size": 0.25, "split_seed": 0, "stratify": True, **split_record}
        s = split(
            load_dataset(source), record["test_size"], record["split_seed"], record["stratify"]
        )
        return EvalData(s.test_features, s.test_labels)
    if path.suffix.lower() == ".npz":
        if not path.is_file():
            raise DataError(f"The data file '{source}' does not exist. Check the path.")
        return _load_npz(path)
    if path.suffix.lower() == ".csv":
        if not path.is_file():
            raise DataError(f"The data file '{source}' does not exist. Check the path.")
        if target is None:
            return _load_csv_features(path)
        data = load_dataset(source, target)
        return EvalData(data.features, data.labels)
    raise DataError(
        f"Unknown data source '{source}'. Expected one of {', '.join(BUNDLED)}, "
        "a .csv file or an .npz file."
    )


def _check(
    name: str,
    measured: float,
    bound: float,
    budget: float,
    margin: float,
    verdict: str,
    detail: str,
) -> Check:
    return Check(
        name, float(measured), float(bound), float(budget), float(margin), verdict, detail
    )


def run_gate(spec: GateSpec, isolation: Isolation | None = None) -> GateReport:
    """Measure the model and judge every requested check.

    Raises:
        DataError: Missing or corrupt model or data, a hash that differs from the manifest,
            data whose width does not fit the model, accuracy asked for without labels.
    """
    model = _read_model(spec.model, "model")
    sha = model.sha256
    if spec.expected_sha256 is not None and sha != spec.expected_sha256:
        raise DataError(
            f"The model '{spec.model}' has sha256 {sha[:16]}…, but the manifest "
            f"expects {spec.expected_sha256[:16]}…: this is not the model that was "
            "selected. Gate the exported file or export again."
        )
    baseline = _read_model(spec.baseline, "baseline model") if spec.baseline else None
    data = load_eval_data(spec.data, spec.target, spec.split)
    width = _input_width(model)
    if width is not None and data.features.shape[1] != width:
        raise DataError(
            f"The data has {data.features.shape[1]} feature columns but the model "
            f"expects {width}. Pass the data the model was trained on (a CSV needs "
            "--target for its label column)."
        )
    wants_accuracy = spec.min_accuracy is not None or (
        spec.max_accuracy_drop is not None and baseline is not None
    )
    if wants_accuracy and data.labels is None:
        raise DataError(
            "The accuracy checks need labels: pass --target COLUMN for a CSV, or "
            "an .npz with a 'y' array."
        )
    settings = RuntimeSettings(
        batch_size=spec.batch_size,
        intra_op_threads=spec.threads,
        graph_optimization=spec.graph_optimization,
    )
    isolation = isolation or Isolation()
    checks: list[Check] = []
    isolated: list[Any] = []
    if spec.max_latency_ms is not None:
        isolated.append(
            LatencyBudget(spec.max_latency_ms, spec.percentile, max_time_s=spec.max_time_s)
        )
    if spec.max_memory_mb is not None:
        isolated.append(PeakMemory())
    report = measure(isolated, model, data, settings, isolation) if isolated else None
    host = report.host.as_dict() if report else {}
    if spec.max_latency_ms is not None and report is not None:
        m = report.measurements[isolated[0].name]
        d = m.details
        bound = d["high"] if d["verdict"] != "fail" else d["low"]
        checks.append(
            _check(
                f"{m.objective} <= {spec.max_latency_ms:g} ms",
                m.values[m.objective],
                bound,
                spec.max_latency_ms,
                spec.max_latency_ms - bound,
                d["verdict"],
                f"{d['samples']} samples, {d['confidence']:.0%} interval "
                f"[{d['low']:.4g}, {d['high']:.4g}] ms",
            )
        )
    if spec.max_memory_mb is not None and report is not None:
        mb = report.values()["peak_memory_mb"]
        checks.append(
            _check(
                f"peak_memory_mb <= {spec.max_memory_mb:g} MB",
                mb,
                mb,
                spec.max_memory_mb,
                spec.max_memory_mb - mb,
                "pass" if mb <= spec.max_memory_mb else "fail",
                "peak resident memory over the process baseline",
            )
        )
    accuracy = None
    if wants_accuracy:
        accuracy = Accuracy().measure(model, data, settings).values["accuracy"]
    if spec.min_accuracy is not None and accuracy is not None:
        checks.append(
            _check(
                f"accuracy >= {spec.min_accuracy:g}",
                accuracy,
                accuracy,
                spec.min_accuracy,
                accuracy - spec.min_accuracy,
                "pass" if accuracy >= spec.min_accuracy else "fail",
                f"on {len(data.features)} rows, from the ONNX outputs",
            )
        )
    if baseline is not None:
        checks += _baseline_checks(spec, model, baseline, data, settings, isolation, accuracy)
        if not host:
            from objectives import host_record

            host = host_record().as_dict()
    if not checks:
        raise DataError(
            "Nothing to check: give at least one budget (--max-latency-ms, "
            "--max-memory-mb, --min-accuracy) or a --baseline; a manifest supplies only the "
            "budgets the model was selected under, if any."
        )
    return GateReport(str(spec.model), sha, tuple(checks), settings.as_dict(), host)


def _baseline_checks(
    spec: GateSpec,
    model: OnnxModel,
    baseline: OnnxModel,
    data: EvalData,
    settings: RuntimeSettings,
    isolation: Isolation,
    accuracy: float | None,
) -> list[Check]:
    checks = []
    if spec.max_latency_regression is not None:
        latency = Latency(percentile=spec.percentile)
        (cand, base), _ = measure_interleaved(
            latency, [model, baseline], data, settings, isolation
        )
        key = latency.name
        ci, bi = cand.details["intervals"][key], base.details["intervals"][key]
        ratio = cand.values[key] / base.values[key]
        low, high = ci["low"] / bi["high"], ci["high"] / bi["low"]
        limit = 1 + spec.max_latency_regression
        verdict = "pass" if high <= limit else "fail" if low > limit else "inconclusive"
        bound = low if verdict == "fail" else high
        checks.append(
            _check(
                f"{key} / baseline <= {limit:g}",
                ratio,
                bound,
                limit,
                limit - bound,
                verdict,
                f"timed interleaved with the baseline: {cand.values[key]:.4g} ms against "
                f"{base.values[key]:.4g} ms; ratio interval [{low:.3g}, {high:.3g}]",
            )
        )
    if spec.max_accuracy_drop is not None and accuracy is not None:
        base_acc = Accuracy().measure(baseline, data, settings).values["accuracy"]
        drop = base_acc - accuracy
        checks.append(
            _check(
                f"accuracy drop <= {spec.max_accuracy_drop:g}",
                drop,
                drop,
                spec.max_accuracy_drop,
                spec.max_accuracy_drop - drop,
                "pass" if drop <= spec.max_accuracy_drop else "fail",
                f"{accuracy:.4g} against the baseline's {base_acc:.4g}",
            )
        )
    return checks


def read_manifest(path: Path) -> dict[str, Any]:
    """Read selected.json (from `moopt export`).

    Raises:
        DataError: Missing, unreadable, or without a sha256.
    """
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(
            f"The manifest '{path}' does not exist. Pass the selected.json written "
            "by `moopt export`."
        ) from None
    except (OSError, ValueError) as exc:
        raise DataError(f"Cannot read the manifest '{path}': {exc}.") from exc
    if not isinstance(manifest, dict) or "sha256" not in manifest:
        raise DataError(
            f"'{path}' is not a moopt manifest: it has no sha256. Pass the "
            "selected.json written by `moopt export`."
        )
    return manifest


def table(report: GateReport) -> str:
    """The readable table of checks."""
    rows = [("check", "measured", "bound", "budget", "margin", "verdict")]
    for c in report.checks:
        rows.append(
            (
                c.name,
                f"{c.measured:.4g}",
                f"{c.bound:.4g}",
                f"{c.budget:.4g}",
                f"{c.margin:+.4g}",
                c.verdict.upper(),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    lines += [f"  {c.name}: {c.detail}" for c in report.checks]
    lines.append(
        f"Gate {report.verdict.upper()} for {report.model} (sha256 {report.sha256[:16]}…)."
    )
    return "\n".join(lines)


def junit_xml(report: GateReport) -> str:
    """JUnit XML: one test case per check (fail and inconclusive as failures)."""
    failures = sum(c.verdict != "pass" for c in report.checks)
    suite = ElementTree.Element(
        "testsuite",
        name="moopt gate",
        tests=str(len(report.checks)),
        failures=str(failures),
        errors="0",
        skipped="0",
    )
    for c in report.checks:
        case = ElementTree.SubElement(suite, "testcase", classname="moopt.gate", name=c.name)
        if c.verdict != "pass":
            failure = ElementTree.SubElement(
                case,
                "failure",
                type=c.verdict,
                message=f"{c.verdict}: measured {c.measured:.4g}, "
                f"bound {c.bound:.4g}, budget {c.budget:.4g}",
            )
            failure.text = c.detail
        out = ElementTree.SubElement(case, "system-out")
        out.text = c.detail
    suites = ElementTree.Element("testsuites")
    suites.append(suite)
    return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def parse_fraction(text: str) -> float:
    """``"10%"`` or ``"0.1"`` as 0.1.

    Raises:
        ValueError: Not a non-negative number or percentage.
    """
    value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(text)
    return value
