"""`moopt front | select | export | plot` on a finished study, without retraining."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

import moopt
from moopt.cli import main


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("commands") / "out"
    moopt.optimize(
        dataset="wine", families="logreg,rf,knn", trials=8, seed=3, min_accuracy=0.5, out=str(out)
    )
    return out


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(args), out=out, err=io.StringIO())
    return code, out.getvalue()


def test_front_in_every_format(run_folder: Path) -> None:
    code, table = cli("front", "--out", str(run_folder))
    assert code == 0 and "Pareto front of study 'moopt'" in table
    code, text = cli("front", "--out", str(run_folder), "--format", "json")
    doc = json.loads(text)
    assert doc["front"] == json.loads((run_folder / "front.json").read_text())["front"]
    code, text = cli("front", "--out", str(run_folder), "--format", "csv")
    assert len(list(csv.DictReader(io.StringIO(text)))) == len(doc["front"])


def test_export_writes_a_model_that_matches_selected_json(run_folder: Path) -> None:
    code, text = cli("export", "--out", str(run_folder), "--policy", "fastest")
    assert code == 0 and text.startswith("Selected trial ")
    doc = json.loads((run_folder / "selected.json").read_text())
    model = run_folder / doc["model"]
    assert doc["model"] == "selected.onnx"
    assert hashlib.sha256(model.read_bytes()).hexdigest() == doc["sha256"]
    assert {
        "trial",
        "family",
        "params",
        "metrics",
        "model",
        "sha256",
        "runtime",
        "budgets",
        "slack",
        "host",
        "versions",
        "data",
    } <= set(doc)
    front = json.loads((run_folder / "front.json").read_text())["front"]
    member = next(m for m in front if m["trial"] == doc["trial"])
    assert doc["metrics"] == member["metrics"]
    assert doc["budgets"] == {"min_accuracy": 0.5}  # the run's budget applies by default
    fastest = min(front, key=lambda m: (m["metrics"]["latency_p95_ms"], m["trial"]))
    assert doc["trial"] == fastest["trial"]
    assert set(doc["selection"]["others"]) == {str(m["trial"]) for m in front} - {
        str(doc["trial"])
    }


def test_select_points_at_the_front_model_and_explains(run_folder: Path) -> None:
    code, text = cli("select", "--out", str(run_folder), "--policy", "knee", "--json")
    assert code == 0
    choice = json.loads(text)
    doc = json.loads((run_folder / "selected.json").read_text())
    assert choice["selected"] == doc["trial"] and doc["model"].startswith("models/trial-")
    assert hashlib.sha256((run_folder / doc["model"]).read_bytes()).hexdigest() == doc["sha256"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["select", "--out", "{missing}"], "No moopt study in"),
        (["select", "--out", "{run}", "--study", "other"], "No study named 'other'"),
        (["select", "--out", "{run}", "--max-latency-ms", "1e-9"], "No front member meets"),
        (["select", "--out", "{run}", "--policy", "weighted"], "needs --weights"),
        (
            ["select", "--out", "{run}", "--policy", "weighted", "--weights", "speed=1"],
            "Unknown objective 'speed'",
        ),
    ],
)
def test_bad_input(run_folder: Path, tmp_path: Path, args, message) -> None:
    argv = [a.format(run=run_folder, missing=tmp_path / "none") for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "moopt", *argv], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr


def test_plot_html_files(run_folder: Path) -> None:
    code, _ = cli("plot", "--out", str(run_folder), "--format", "html")
    assert code == 0
    pages = sorted(p.name for p in (run_folder / "plots").glob("*.html"))
    assert "hypervolume.html" in pages and "pareto-3d.html" in pages
