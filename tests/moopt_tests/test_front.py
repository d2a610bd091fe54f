from __future__ import annotations

import numpy as np
import optuna
import pytest

from moopt import ObjectiveInfo, front_trials, pareto_mask
from moopt._front import trial_status


def test_pareto_mask_on_a_hand_built_front() -> None:
    # accuracy (max), latency (min)
    points = np.array(
        [[0.90, 1.0], [0.95, 2.0], [0.85, 0.5], [0.90, 1.5], [0.80, 3.0], [0.95, 2.0]]
    )
    mask = pareto_mask(points, ["maximize", "minimize"])
    assert mask.tolist() == [True, True, True, False, False, True]


def _trial(study, number_values, constraints):
    trial = study.ask()
    acc, lat = number_values
    trial.set_user_attr("metrics", {"accuracy": acc, "latency_p95_ms": lat})
    trial.set_user_attr("family", "rf")
    trial.set_user_attr("params", {})
    for k, v in constraints.items():
        trial.set_constraint(k, v)
    study.tell(trial, [acc, lat])


def test_front_keeps_only_feasible_non_dominated_trials() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    objectives = [
        ObjectiveInfo("accuracy", "maximize", ""),
        ObjectiveInfo("latency_p95_ms", "minimize", "ms"),
    ]
    _trial(study, (0.99, 0.1), {"min_accuracy": -0.1, "parity": 0.5})  # best, but unfaithful
    _trial(study, (0.90, 1.0), {"min_accuracy": -0.1, "parity": -0.01})
    _trial(study, (0.95, 2.0), {"min_accuracy": -0.1, "parity": -0.01})
    _trial(study, (0.85, 3.0), {"min_accuracy": -0.1, "parity": -0.01})  # dominated
    failed = study.ask()
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    front = front_trials(study.trials, objectives)
    assert [t.number for t in front] == [1, 2]
    # Optuna agrees on what is feasible and Pareto-optimal.
    assert {t.number for t in study.best_trials} == {1, 2}
    assert trial_status(study.trials, objectives) == {
        0: "infeasible",
        1: "front",
        2: "front",
        3: "dominated",
    }


def test_hypervolume_of_hand_built_fronts() -> None:
    from moopt._front import hypervolume

    # 2-D: two boxes of 2x1 and 1x2 overlapping in 1x1 -> 3.
    assert hypervolume(np.array([[1.0, 2.0], [2.0, 1.0]]), [3.0, 3.0]) == 3.0
    # A dominated point and one outside the reference change nothing.
    assert (
        hypervolume(np.array([[1.0, 2.0], [2.0, 1.0], [2.5, 2.5], [4.0, 0.0]]), [3.0, 3.0]) == 3.0
    )
    # 3-D: a unit cube's corner at the origin, reference (1, 1, 1) -> 1; two points -> union.
    assert hypervolume(np.array([[0.0, 0.0, 0.0]]), [1, 1, 1]) == 1.0
    two = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.0]])
    assert hypervolume(two, [1, 1, 1]) == pytest.approx(0.25 + 0.5 - 0.125)
    rng = np.random.default_rng(0)
    pts = rng.random((60, 3))
    # Monte-Carlo check of the 3-D slicing on random points.
    samples = rng.random((200_000, 3))
    dominated = (samples[:, None, :] >= pts[None, :, :]).all(axis=2).any(axis=1)
    assert hypervolume(pts, [1, 1, 1]) == pytest.approx(dominated.mean(), abs=0.005)
