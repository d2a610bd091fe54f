"""The Pareto front: feasible trials that no other feasible trial dominates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna

from objectives import Direction


@dataclass(frozen=True)
class ObjectiveInfo:
    """An optimized metric as the study records it."""

    name: str
    direction: Direction
    unit: str

    def as_dict(self) -> dict[str, str]:
        """``{"name", "direction", "unit"}``."""
        return {"name": self.name, "direction": self.direction, "unit": self.unit}


def pareto_mask(values: np.ndarray, directions: Sequence[Direction]) -> np.ndarray:
    """Which rows of ``values`` no other row dominates.

    Args:
        values: One row per point, one column per objective.
        directions: ``maximize`` or ``minimize`` per column.

    Returns:
        A boolean mask; rows with identical values are all kept.
    """
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    v = np.asarray(values, dtype=float) * signs  # every column minimized
    no_worse = (v[:, None, :] <= v[None, :, :]).all(axis=2)  # [i, j]: i no worse than j
    better = (v[:, None, :] < v[None, :, :]).any(axis=2)
    dominated = (no_worse & better).any(axis=0)
    return np.asarray(~dominated, dtype=bool)


def is_feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """Completed, and every constraint value <= 0."""
    if trial.state != optuna.trial.TrialState.COMPLETE:
        return False
    return all(c <= 0 for c in trial.constraints.values())


def _evaluated(trials: Sequence[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """Completed trials that were evaluated, not served from the cache."""
    return [
        t
        for t in trials
        if t.state == optuna.trial.TrialState.COMPLETE and "cached_from" not in t.user_attrs
    ]


def front_trials(
    trials: Sequence[optuna.trial.FrozenTrial], objectives: Sequence[ObjectiveInfo]
) -> list[optuna.trial.FrozenTrial]:
    """The feasible, non-dominated evaluated trials, in trial order."""
    feasible = [t for t in _evaluated(trials) if is_feasible(t)]
    if not feasible:
        return []
    values = np.array([[t.user_attrs["metrics"][o.name] for o in objectives] for t in feasible])
    mask = pareto_mask(values, [o.direction for o in objectives])
    return [t for t, keep in zip(feasible, mask, strict=True) if keep]


def trial_status(
    trials: Sequence[optuna.trial.FrozenTrial], objectives: Sequence[ObjectiveInfo]
) -> dict[int, str]:
    """``front``, ``dominated`` or ``infeasible`` for every evaluated trial, by number."""
    front = {t.number for t in front_trials(trials, objectives)}
    status: dict[int, str] = {}
    for t in _evaluated(trials):
        if t.number in front:
            status[t.number] = "front"
        else:
            status[t.number] = "dominated" if is_feasible(t) else "infeasible"
    return status


def member_record(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """A front member as ``front.json`` lists it."""
    attrs = trial.user_attrs
    return {
        "trial": trial.number,
        "family": attrs["family"],
        "params": attrs["params"],
        "metrics": attrs["metrics"],
        "model": f"models/trial-{trial.number}.onnx",
        "sha256": attrs["model_sha256"],
        "runtime": attrs["runtime"],
        "latency": attrs["latency"],
        "parity": attrs["parity"],
        "host": attrs["host"],
    }
