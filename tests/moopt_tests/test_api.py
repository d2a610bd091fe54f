"""The Python API: the same search as the CLI, for notebooks and scripts."""

from __future__ import annotations

from pathlib import Path

import pytest

import moopt
from objectives import Accuracy, Latency, PeakMemory, SamplingRule

HELPERS = Path(__file__).parents[1] / "objectives_tests"


def test_all_is_complete() -> None:
    public = {n for n in dir(moopt) if not n.startswith("_")} | {"__version__"}
    modules = {"search", "study", "plots", "cli"}
    assert len(moopt.__all__) == len(set(moopt.__all__))
    assert set(moopt.__all__) == public - modules - {"annotations"}


def test_optimize_returns_the_front_and_the_study(tmp_path: Path) -> None:
    events: list[moopt.ProgressEvent] = []
    result = moopt.optimize(
        dataset="wine",
        families="logreg,rf",
        trials=4,
        out=str(tmp_path / "out"),
        progress=events.append,
    )
    assert isinstance(result, moopt.Result)
    assert result.summary.evaluated == 4 and [e.done for e in events][-1] == 4
    assert result.front and all(
        t.number in {x.number for x in result.study.trials} for t in result.front
    )
    assert [o.name for o in result.objectives] == ["accuracy", "latency_p95_ms", "peak_memory_mb"]
    assert (tmp_path / "out" / "front.json").exists()


def test_a_users_own_objective_is_searched_like_the_built_ins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(HELPERS))
    monkeypatch.syspath_prepend(str(HELPERS))
    from probe_helpers import Throughput

    objectives = [
        Accuracy(),
        Latency(rule=SamplingRule(max_time_s=0.2)),
        PeakMemory(),
        Throughput(),
    ]
    result = moopt.optimize(
        dataset="iris",
        families="logreg,knn",
        trials=4,
        out=str(tmp_path / "out"),
        objectives=objectives,
    )
    assert [o.name for o in result.objectives][-1] == "throughput_rows_s"
    for trial in result.study.trials:
        if trial.values is not None:
            assert len(trial.values) == 4
            assert trial.user_attrs["metrics"]["throughput_rows_s"] > 0


def test_keyword_settings_are_validated_like_the_config_file(tmp_path: Path) -> None:
    with pytest.raises(moopt.ConfigError, match="Unknown setting 'trails'"):
        moopt.optimize(trails=3, out=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
