"""One contract every objective module meets, run over each of them."""

from __future__ import annotations

import math
import pickle

import pytest

import objectives
from objectives import Accuracy, Latency, Objective, PeakMemory, RuntimeSettings

BUILTINS = [Accuracy(), Latency(), PeakMemory()]


@pytest.mark.parametrize("objective", BUILTINS, ids=lambda o: o.name)
class TestObjectiveContract:
    def test_declares_itself(self, objective: Objective) -> None:
        assert isinstance(objective, Objective)
        assert objective.direction in ("maximize", "minimize")
        assert objective.name in objective.metrics
        assert isinstance(objective.unit, str)

    def test_measures_every_declared_metric(self, objective, small_model, holdout) -> None:
        measurement = objective.measure(small_model.model, holdout, RuntimeSettings())
        assert measurement.objective == objective.name
        assert set(measurement.values) == set(objective.metrics)
        assert all(math.isfinite(v) and v >= 0 for v in measurement.values.values())

    def test_isolated_objectives_survive_pickling(self, objective: Objective) -> None:
        if objective.isolated:
            clone = pickle.loads(pickle.dumps(objective))
            assert clone.name == objective.name

    def test_through_the_isolated_runner(self, objective, small_model, holdout) -> None:
        report = objectives.measure([objective], small_model.model, holdout, RuntimeSettings())
        assert set(report.measurements) == {objective.name}
        assert set(report.values()) == set(objective.metrics)


def test_all_is_sorted_and_complete() -> None:
    # The order itself (constants, classes, functions) is enforced by ruff's RUF022.
    public = {n for n in dir(objectives) if not n.startswith("_")}
    assert len(objectives.__all__) == len(set(objectives.__all__))
    assert set(objectives.__all__) == public - {"annotations"}


def test_objectives_never_imports_moopt() -> None:
    import subprocess
    import sys

    code = "import sys, objectives; sys.exit('moopt' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
