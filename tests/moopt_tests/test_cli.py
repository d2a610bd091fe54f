"""The command line end to end, on tiny budgets, with real training, ONNX Runtime and storage."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import optuna
import pytest
from sklearn.model_selection import train_test_split

from moopt import load_dataset, pareto_mask
from moopt.cli import main

FAMILIES = "logreg,knn,rf"


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("run") / "out"
    code, stdout, stderr = run_cli(
        "run",
        "--dataset",
        "iris",
        "--families",
        FAMILIES,
        "--trials",
        "8",
        "--seed",
        "1",
        "--out",
        str(out),
    )
    assert code == 0, stderr
    return out, stdout


def test_front_json_follows_the_contract(iris_run) -> None:
    out, _ = iris_run
    doc = json.loads((out / "front.json").read_text())
    assert {"study", "objectives", "data", "budgets", "host", "front"} <= set(doc)
    assert [o["name"] for o in doc["objectives"]] == [
        "accuracy",
        "latency_p95_ms",
        "peak_memory_mb",
    ]
    assert [o["direction"] for o in doc["objectives"]] == ["maximize", "minimize", "minimize"]
    assert all(set(o) == {"name", "direction", "unit"} for o in doc["objectives"])
    assert {"source", "target", "test_size", "split_seed", "stratify"} <= set(doc["data"])
    assert {"cpu", "cores", "onnxruntime", "python"} <= set(doc["host"])
    assert doc["front"], "a run without budgets has a non-empty front"
    for member in doc["front"]:
        assert {"trial", "family", "params", "metrics", "model"} <= set(member)
        assert {
            "accuracy",
            "latency_p50_ms",
            "latency_p95_ms",
            "latency_p99_ms",
            "peak_memory_mb",
            "model_size_kb",
        } <= set(member["metrics"])
        assert member["model"] == f"models/trial-{member['trial']}.onnx"
        assert member["family"] in FAMILIES.split(",")
    assert sorted(p.name for p in (out / "models").iterdir()) == sorted(
        f"trial-{m['trial']}.onnx" for m in doc["front"]
    )


def test_front_members_are_feasible_and_non_dominated(iris_run) -> None:
    """Recompute the front from the study, with the re-verified numbers front.json records."""
    out, _ = iris_run
    doc = json.loads((out / "front.json").read_text())
    remeasured = {int(k): v for k, v in doc["reverification"]["remeasured"].items()}
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out / "study.journal"))
    )
    study = optuna.load_study(study_name=doc["study"], storage=storage)
    complete = [
        t
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE and "cached_from" not in t.user_attrs
    ]
    names = [o["name"] for o in doc["objectives"]]

    def metrics(t):
        return {**t.user_attrs["metrics"], **remeasured.get(t.number, {}).get("metrics", {})}

    def feasible(t):
        constraints = {**t.constraints, **remeasured.get(t.number, {}).get("constraints", {})}
        return all(c <= 0 for c in constraints.values())

    candidates = [t for t in complete if feasible(t)]
    values = np.array([[metrics(t)[n] for n in names] for t in candidates])
    mask = pareto_mask(values, ["maximize", "minimize", "minimize"])
    assert {m["trial"] for m in doc["front"]} == {
        t.number for t, keep in zip(candidates, mask, strict=True) if keep
    }
    for member in doc["front"]:
        assert member["reverified"] is True
        assert member["metrics"] == metrics(study.trials[member["trial"]])
    for t in complete:  # every trial carries every constraint key
        assert "parity" in t.constraints


def test_exported_models_reproduce_the_reported_accuracy(iris_run) -> None:
    out, _ = iris_run
    doc = json.loads((out / "front.json").read_text())
    d = doc["data"]
    data = load_dataset(d["source"], d["target"])
    _, xte, _, yte = train_test_split(
        data.features,
        data.labels,
        test_size=d["test_size"],
        random_state=d["split_seed"],
        stratify=data.labels if d["stratify"] else None,
    )
    for member in doc["front"]:
        path = out / member["model"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == member["sha256"]
        session = ort.InferenceSession(str(path))
        labels = session.run(None, {session.get_inputs()[0].name: xte})[0]
        assert float(np.mean(labels == yte)) == member["metrics"]["accuracy"]


def test_summary_and_report(iris_run) -> None:
    out, stdout = iris_run
    assert "Pareto front of study 'moopt'" in stdout
    assert "8 distinct evaluations, 0 failed" in stdout
    html = (out / "report.html").read_text()
    assert "plotly" in html and html.count('class="plot"') == 6  # 3 pairs, 3-D, HV, parallel
    # Works offline: plotly.js is inline, and nothing is loaded from elsewhere. (The bundle
    # holds map-tile URLs as strings; they are used only by map traces, which moopt never draws.)
    assert len(html) > 1_000_000
    assert not re.search(r"<script[^>]*\bsrc=", html)
    assert not re.search(r"<link[^>]*\bhref=", html)
    rows = (out / "front.csv").read_text().splitlines()
    assert rows[0].startswith("trial,family,accuracy")
    assert len(rows) == 1 + len(json.loads((out / "front.json").read_text())["front"])


def test_running_again_resumes_and_adds_trials(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ("run", "--dataset", "iris", "--families", "logreg,rf", "--out", str(out))
    assert run_cli(*args, "--trials", "3")[0] == 0
    code, stdout, _ = run_cli(*args, "--trials", "2")
    assert code == 0
    assert "2 distinct evaluations" in stdout
    doc = json.loads((out / "front.json").read_text())
    finished = doc["trials"]["complete"] + doc["trials"].get("fail", 0)
    assert finished >= 5  # 3 + 2 distinct evaluations (cache hits come on top)
    # Resuming with other settings is refused and leaves the output folder as it was.
    before = (out / "front.json").read_bytes()
    code, _, err = run_cli(*args, "--trials", "1", "--batch-size", "8")
    assert code == 2
    assert "was run with batch_size=1, but this run has batch_size=8" in err
    assert (out / "front.json").read_bytes() == before


def test_a_failing_candidate_is_recorded_and_the_study_goes_on(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    csv = tmp_path / "tiny.csv"
    rows = ["f1,f2,f3,label"] + [
        f"{a:.3f},{b:.3f},{c:.3f},{'ab'[int(a > 0.5)]}" for a, b, c in rng.random((40, 3))
    ]
    csv.write_text("\n".join(rows) + "\n")
    config = tmp_path / "moopt.toml"
    # More neighbours than training rows: k-NN fits, but cannot predict.
    config.write_text("[space.knn]\nn_neighbors = [35, 40]\n")
    out = tmp_path / "out"
    code, stdout, _ = run_cli(
        "run",
        "--config",
        str(config),
        "--dataset",
        str(csv),
        "--target",
        "label",
        "--families",
        "knn,logreg",
        "--trials",
        "8",
        "--out",
        str(out),
    )
    assert code == 0
    assert "failed trial" in stdout
    doc = json.loads((out / "front.json").read_text())
    assert doc["trials"]["fail"] >= 1 and doc["trials"]["complete"] >= 1
    assert {m["family"] for m in doc["front"]} == {"logreg"}
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out / "study.journal"))
    )
    failed = [
        t
        for t in optuna.load_study(study_name="moopt", storage=storage).trials
        if t.state == optuna.trial.TrialState.FAIL
    ]
    assert all(t.user_attrs["family"] == "knn" and t.user_attrs["error"] for t in failed)


def test_budgets_filter_the_front(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, _, _ = run_cli(
        "run",
        "--dataset",
        "iris",
        "--families",
        FAMILIES,
        "--trials",
        "8",
        "--min-accuracy",
        "0.95",
        "--max-memory-mb",
        "1000",
        "--out",
        str(out),
    )
    assert code == 0
    doc = json.loads((out / "front.json").read_text())
    assert doc["budgets"] == {"max_memory_mb": 1000.0, "min_accuracy": 0.95}
    assert all(m["metrics"]["accuracy"] >= 0.95 for m in doc["front"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "mnist"], "Unknown dataset 'mnist'"),
        (["--dataset", "{csv}", "--target", "nope"], "target column 'nope' is not in"),
        (["--dataset", "{text_csv}", "--target", "y"], "Column 'b' of .* must be numeric"),
        (["--families", "rf,xgboost"], "Unknown model family 'xgboost'"),
        (["--config", "{reversed_range}"], r"space\.rf\.n_estimators has low > high"),
        (["--config", "{bad_toml}"], "is not valid TOML"),
        (["--config", "{missing}"], "does not exist"),
        (["--trials", "0"], "The 'trials' setting must be an int in the range"),
        (["--trials", "many"], "argument --trials: invalid int value"),
        (["--storage", "redis://localhost"], "Unknown storage 'redis://localhost'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path: Path, args, message) -> None:
    files = {
        "csv": ("d.csv", "a,b,y\n1,2,0\n3,4,1\n"),
        "text_csv": ("t.csv", "a,b,y\n1,x,0\n3,4,1\n"),
        "reversed_range": ("r.toml", "families = ['rf']\n[space.rf]\nn_estimators = [50, 5]\n"),
        "bad_toml": ("b.toml", "trials = = 1\n"),
        "missing": ("never-written.toml", None),
    }
    paths = {}
    for key, (name, content) in files.items():
        paths[key] = str(tmp_path / name)
        if content is not None:
            (tmp_path / name).write_text(content)
    out = tmp_path / "out"
    argv = [a.format(**paths) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "moopt", "run", *argv, "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("moopt: error: ")
    assert re.search(message, lines[0]), lines[0]
    assert not out.exists()


@pytest.mark.slow
def test_console_script_and_ctrl_c(tmp_path: Path) -> None:
    """Ctrl-C stops the run cleanly: exit 130, and the output folder holds what finished."""
    out = tmp_path / "out"
    exe = Path(sys.executable).with_name("moopt")
    proc = subprocess.Popen(
        [
            str(exe),
            "run",
            "--dataset",
            "iris",
            "--families",
            "logreg,rf",
            "--trials",
            "200",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    progress_lines = 0
    while progress_lines < 3:  # one progress line per finished trial when not on a terminal
        line = proc.stderr.readline()
        assert line, "moopt ended before three trials finished"
        progress_lines += line.startswith("[")
    os.kill(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    doc = json.loads((out / "front.json").read_text())
    assert doc["run"]["interrupted"] is True
    assert doc["front"] and doc["trials"]["complete"] >= 3
    assert "Pareto front" in stdout
