from __future__ import annotations

import numpy as np
import optuna

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
