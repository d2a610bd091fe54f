"""`moopt replay`: searches on a table of measured configurations, in seconds."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from moopt import ConfigError, DataError
from moopt._replay import load_table, parse_objectives, replay
from moopt.cli import main
from moopt.search import SAMPLERS, Choice, FloatRange, IntRange, Strategy

TABLE = Path(__file__).parents[2] / "benchmarks" / "digits-220.csv"
OBJECTIVES = "accuracy:max,latency_ms:min,size_kb:min"


@pytest.fixture(scope="module")
def table():
    return load_table(TABLE, parse_objectives(OBJECTIVES))


def test_space_comes_from_the_table(table) -> None:
    assert set(table.space) == {"logreg", "rf", "et", "gb", "mlp", "svc", "knn"}
    rf = table.space["rf"].params
    assert set(rf) == {"n_estimators", "max_depth", "max_features"}  # empty cells: not rf's
    assert rf["n_estimators"] == IntRange(5, 200, log=True)
    assert rf["max_features"] == Choice(("log2", "sqrt"))
    assert table.space["gb"].params["learning_rate"] == FloatRange(0.05, 0.5, log=False)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_same_seed_same_output_and_the_budget_counts_distinct_rows(table, sampler) -> None:
    first = replay(table, 30, seed=3, strategy=Strategy(sampler))
    again = replay(table, 30, seed=3, strategy=Strategy(sampler))
    assert first == again
    rows = [r.row for r in first]
    assert len(rows) == 30 == len(set(rows))
    for record in first:  # values are the table's
        assert record.values["accuracy"] == float(table.rows[record.row]["accuracy"])
    other = replay(table, 30, seed=4, strategy=Strategy(sampler))
    assert [r.row for r in other] != rows


def test_replay_stops_when_the_table_is_exhausted(table) -> None:
    records = replay(table, 10_000, seed=0, strategy=Strategy("grid"))
    assert sorted(r.row for r in records) == list(range(len(table.rows)))


def test_missing_combinations_are_rejected_at_no_cost(tmp_path: Path) -> None:
    # Not a full grid: (rf, 10, sqrt) and (rf, 20, log2) are missing.
    path = tmp_path / "t.csv"
    path.write_text("family,n,mf,acc,lat\nrf,10,log2,0.8,1\nrf,20,sqrt,0.9,2\nlr,,,0.7,0.5\n")
    t = load_table(path, parse_objectives("acc:max,lat:min"))
    records = replay(t, 3, seed=0, strategy=Strategy("random"))
    assert sorted(r.row for r in records) == [0, 1, 2]  # every row found despite rejections


@pytest.mark.parametrize(
    ("family", "rate", "first"),
    [
        ("gb", "learning_rate", "0.5"),  # moopt's gb: its anchor, the largest rate
        ("boost", "learning_rate", "0.5"),  # a name every moopt family anchors alike
        ("boost", "shrinkage", "0.05"),  # unknown names: the low corner
    ],
)
def test_first_trial_starts_at_moopts_anchor_where_it_knows_the_names(
    tmp_path: Path, family: str, rate: str, first: str
) -> None:
    lines = [f"family,{rate},n_estimators,acc,lat"]
    for lr in ("0.05", "0.2", "0.5"):
        for n in (10, 40, 160):
            lines.append(f"{family},{lr},{n},{0.5 + float(lr) * n / 1000},{n}")
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    t = load_table(path, parse_objectives("acc:max,lat:min"))
    (record,) = replay(t, 1, seed=0)
    assert t.rows[record.row][rate] == first
    assert t.rows[record.row]["n_estimators"] == "10"  # a size stays at its cheap end


def test_cli_replay_writes_one_line_per_distinct_row(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    stdout = io.StringIO()
    code = main(
        [
            "replay",
            "--table",
            str(TABLE),
            "--objectives",
            OBJECTIVES,
            "--budget",
            "12",
            "--seed",
            "1",
            "--out",
            str(out),
        ],
        out=stdout,
        err=io.StringIO(),
    )
    assert code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 12 and len({x["row"] for x in lines}) == 12
    assert set(lines[0]) == {"row", "values"}
    assert set(lines[0]["values"]) == {"accuracy", "latency_ms", "size_kb"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--objectives", "accuracy:up,latency_ms:min"], "must be written name:max or name:min"),
        (["--objectives", "accuracy:max,speed:min"], "The objective 'speed' is not a column"),
        (["--objectives", "accuracy:max"], "needs at least two objectives"),
        (["--table", "missing.csv"], "Cannot read the replay table"),
        (["--budget", "0"], r"budget must be an int in the range \[1, inf\)"),
        (["--sampler", "cmaes"], "invalid choice: 'cmaes'"),
    ],
)
def test_cli_replay_bad_input(tmp_path: Path, args, message) -> None:
    base = {
        "--table": str(TABLE),
        "--objectives": OBJECTIVES,
        "--budget": "5",
        "--out": str(tmp_path / "r.jsonl"),
    }
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = [x for kv in base.items() for x in kv]
    proc = subprocess.run(
        [sys.executable, "-m", "moopt", "replay", *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert re.search(message, proc.stderr), proc.stderr
    assert not (tmp_path / "r.jsonl").exists()


def test_table_errors(tmp_path: Path) -> None:
    bad = tmp_path / "b.csv"
    bad.write_text("family,n,acc,lat\nrf,10,0.8,1\nrf,,0.9,2\n")
    with pytest.raises(DataError, match="filled in on some rows of family 'rf'"):
        load_table(bad, parse_objectives("acc:max,lat:min"))
    bad.write_text("model,n,acc,lat\nrf,10,0.8,1\n")
    with pytest.raises(DataError, match="needs a 'family' column"):
        load_table(bad, parse_objectives("acc:max,lat:min"))
    bad.write_text("family,n,acc,lat\nrf,10,high,1\n")
    with pytest.raises(DataError, match="Objective 'acc' must be a number on every row"):
        load_table(bad, parse_objectives("acc:max,lat:min"))
    with pytest.raises(ConfigError, match="names an objective twice"):
        parse_objectives("acc:max,acc:min")


@pytest.mark.parametrize("sampler", ["nsga2", "tpe"])
def test_same_seed_same_output_in_separate_processes(tmp_path: Path, sampler: str) -> None:
    """Each process hashes strings differently: no proposal may depend on that order."""
    import os

    outputs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"{sampler}-{hash_seed}.jsonl"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "moopt",
                "replay",
                "--table",
                str(TABLE.parent / "breast_cancer-213.csv"),
                "--objectives",
                OBJECTIVES,
                "--budget",
                "40",
                "--seed",
                "3",
                "--sampler",
                sampler,
                "--out",
                str(out),
            ],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            check=True,
            capture_output=True,
            timeout=120,
        )
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1]
    assert len(outputs[0].splitlines()) == 40
