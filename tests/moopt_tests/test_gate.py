"""`moopt gate`: verdicts, exit codes and reports, on real ONNX models."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from moopt.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory, small_model, large_model, holdout) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("gate")
    small, large = d / "small.onnx", d / "large.onnx"
    small.write_bytes(small_model.model.content)
    large.write_bytes(large_model.model.content)
    np.savez(d / "holdout.npz", X=holdout.features, y=holdout.labels)
    (d / "corrupt.onnx").write_bytes(b"\x08\x07not really onnx")
    header = ",".join(f"f{i}" for i in range(holdout.features.shape[1])) + ",label"
    rows = [
        ",".join(f"{v:g}" for v in x) + f",{y}"
        for x, y in zip(holdout.features, holdout.labels, strict=True)
    ]
    (d / "holdout.csv").write_text("\n".join([header, *rows]) + "\n")
    manifest = d / "selected.json"  # as `moopt export` writes it, for the small model
    manifest.write_text(
        json.dumps(
            {
                "sha256": hashlib.sha256(small.read_bytes()).hexdigest(),
                "budgets": {"max_latency_ms": 5.0, "min_accuracy": 0.9},
                "objectives": [{"name": "accuracy"}, {"name": "latency_p95_ms"}],
                "data": {
                    "source": "digits",
                    "target": None,
                    "test_size": 0.25,
                    "split_seed": 0,
                    "stratify": True,
                },
                "runtime": {"batch_size": 1, "intra_op_threads": 1, "graph_optimization": "all"},
            }
        )
    )
    return {
        "dir": d,
        "small": small,
        "large": large,
        "npz": d / "holdout.npz",
        "csv": d / "holdout.csv",
        "corrupt": d / "corrupt.onnx",
        "manifest": manifest,
    }


def gate(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(["gate", *args], out=out, err=io.StringIO()), out.getvalue()


def test_a_model_well_inside_its_budgets_passes(files) -> None:
    code, text = gate(
        str(files["small"]),
        "--data",
        str(files["npz"]),
        "--max-latency-ms",
        "5",
        "--min-accuracy",
        "0.9",
        "--max-memory-mb",
        "200",
    )
    assert code == 0, text
    assert text.count("PASS") == 4  # three checks and the gate
    assert "Gate PASS" in text


def test_a_model_clearly_over_its_latency_budget_fails(files) -> None:
    code, text = gate(str(files["large"]), "--data", "digits", "--max-latency-ms", "0.001")
    assert code == 1 and "FAIL" in text and "Gate FAIL" in text


def test_a_slower_model_is_caught_against_its_baseline(files) -> None:
    code, text = gate(
        str(files["large"]),
        "--data",
        str(files["npz"]),
        "--baseline",
        str(files["small"]),
        "--max-latency-regression",
        "10%",
    )
    assert code == 1
    assert "/ baseline <= 1.1" in text and "timed interleaved" in text
    code, _ = gate(
        str(files["small"]), "--data", str(files["npz"]), "--baseline", str(files["large"])
    )
    assert code == 0  # the small model is no regression against the forest


def test_accuracy_floor_and_memory_budget_each_fail(files) -> None:
    code, text = gate(
        str(files["small"]),
        "--data",
        str(files["csv"]),
        "--target",
        "label",
        "--min-accuracy",
        "0.999",
    )
    assert code == 1 and "accuracy >= 0.999" in text
    code, text = gate(str(files["large"]), "--data", str(files["npz"]), "--max-memory-mb", "1")
    assert code == 1 and "peak_memory_mb <= 1 MB" in text


def test_reports_json_and_junit(files) -> None:
    junit, report = files["dir"] / "gate.xml", files["dir"] / "gate.json"
    code, _ = gate(
        str(files["large"]),
        "--data",
        str(files["npz"]),
        "--max-latency-ms",
        "0.001",
        "--min-accuracy",
        "0.5",
        "--junit",
        str(junit),
        "--json",
        str(report),
    )
    assert code == 1
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.find("failure") is not None for c in cases] == [True, False]
    assert cases[0].find("failure").get("type") == "fail"
    doc = json.loads(report.read_text())
    assert doc["verdict"] == "fail" and [c["verdict"] for c in doc["checks"]] == ["fail", "pass"]


def test_manifest_supplies_budgets_and_refuses_another_model(files) -> None:
    code, text = gate(str(files["small"]), "--manifest", str(files["manifest"]))
    assert code == 0 and "latency_p95_ms <= 5 ms" in text and "accuracy >= 0.9" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{corrupt}", "--data", "{npz}", "--max-latency-ms", "1"], "is not a valid ONNX model"),
        (["{dir}/missing.onnx", "--data", "{npz}", "--max-latency-ms", "1"], "does not exist"),
        (["{small}", "--data", "{dir}/missing.npz", "--max-latency-ms", "1"], "does not exist"),
        (
            ["{small}", "--data", "iris", "--max-latency-ms", "1"],
            "The data has 4 feature columns but the model expects 64",
        ),
        (["{large}", "--manifest", "{manifest}"], "not the model that was selected"),
        (["{small}", "--data", "{npz}"], "Nothing to check"),
        (
            ["{small}", "--data", "{npz}", "--max-latency-regression", "lots"],
            "expected a share like 10% or 0.1",
        ),
        (["{small}", "--data", "{npz}", "--speed"], "unrecognized arguments: --speed"),
    ],
)
def test_bad_input_exits_2_with_one_line(files, args, message) -> None:
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "moopt", "gate", *argv], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr
