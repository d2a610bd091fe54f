"""The Pareto front: feasible trials that no other feasible trial dominates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[Direction]) -> bool:
    """Whether point ``a`` is at least as good as ``b`` everywhere and better somewhere."""
    signs = [-1.0 if d == "maximize" else 1.0 for d in directions]
    pa = [x * s for x, s in zip(a, signs, strict=True)]
    pb = [x * s for x, s in zip(b, signs, strict=True)]
    return all(x <= y for x, y in zip(pa, pb, strict=True)) and pa != pb


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


@dataclass(frozen=True)
class Remeasured:
    """A trial's numbers measured again after the search; they replace the stored ones.

    Attributes:
        metrics: Metric values that replace the trial's (e.g. every latency percentile).
        constraints: Constraint values recomputed from the new metrics.
        details: How they were measured (sample count, intervals, stop reason).
    """

    metrics: Mapping[str, float]
    constraints: Mapping[str, float]
    details: Mapping[str, Any] = field(default_factory=dict)


Overrides = Mapping[int, Remeasured]


def metrics_of(
    trial: optuna.trial.FrozenTrial, overrides: Overrides | None = None
) -> dict[str, float]:
    """The trial's metrics, with re-measured values where there are any."""
    metrics = dict(trial.user_attrs["metrics"])
    if overrides and trial.number in overrides:
        metrics.update(overrides[trial.number].metrics)
    return metrics


def constraints_of(
    trial: optuna.trial.FrozenTrial, overrides: Overrides | None = None
) -> dict[str, float]:
    """The trial's constraint values, with re-measured ones where there are any."""
    constraints = dict(trial.constraints)
    if overrides and trial.number in overrides:
        constraints.update(overrides[trial.number].constraints)
    return constraints


def is_feasible(trial: optuna.trial.FrozenTrial, overrides: Overrides | None = None) -> bool:
    """Completed, and every constraint value <= 0."""
    if trial.state != optuna.trial.TrialState.COMPLETE:
        return False
    return all(c <= 0 for c in constraints_of(trial, overrides).values())


def _evaluated(trials: Sequence[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """Completed, fully measured trials: not served from the cache, not rejected early."""
    return [
        t
        for t in trials
        if t.state == optuna.trial.TrialState.COMPLETE
        and "cached_from" not in t.user_attrs
        and "early_rejected" not in t.user_attrs
    ]


def front_trials(
    trials: Sequence[optuna.trial.FrozenTrial],
    objectives: Sequence[ObjectiveInfo],
    overrides: Overrides | None = None,
) -> list[optuna.trial.FrozenTrial]:
    """The feasible, non-dominated evaluated trials, in trial order."""
    feasible = [t for t in _evaluated(trials) if is_feasible(t, overrides)]
    if not feasible:
        return []
    values = np.array([[metrics_of(t, overrides)[o.name] for o in objectives] for t in feasible])
    mask = pareto_mask(values, [o.direction for o in objectives])
    return [t for t, keep in zip(feasible, mask, strict=True) if keep]


def trial_status(
    trials: Sequence[optuna.trial.FrozenTrial],
    objectives: Sequence[ObjectiveInfo],
    overrides: Overrides | None = None,
) -> dict[int, str]:
    """``front``, ``dominated`` or ``infeasible`` for every evaluated trial, by number."""
    front = {t.number for t in front_trials(trials, objectives, overrides)}
    status: dict[int, str] = {}
    for t in _evaluated(trials):
        if t.number in front:
            status[t.number] = "front"
        else:
            status[t.number] = "dominated" if is_feasible(t, overrides) else "infeasible"
    return status


def member_record(
    trial: optuna.trial.FrozenTrial, overrides: Overrides | None = None
) -> dict[str, Any]:
    """A front member as ``front.json`` lists it (re-verified numbers where there are any)."""
    attrs = trial.user_attrs
    remeasured = overrides.get(trial.number) if overrides else None
    return {
        "trial": trial.number,
        "family": attrs["family"],
        "params": attrs["params"],
        "metrics": metrics_of(trial, overrides),
        "model": f"models/trial-{trial.number}.onnx",
        "sha256": attrs["model_sha256"],
        "runtime": attrs["runtime"],
        "latency": dict(remeasured.details) if remeasured else attrs["latency"],
        "reverified": remeasured is not None,
        "search_metrics": attrs["metrics"],
        "parity": attrs["parity"],
        "host": attrs["host"],
    }


def hypervolume(points: np.ndarray, reference: Sequence[float]) -> float:
    """Volume dominated by ``points`` and bounded by ``reference`` (every column minimized).

    Exact, by slicing along the last objective (fine for the few hundred points of a front).
    Points not strictly better than the reference in every objective add nothing.
    """
    ref = np.asarray(reference, dtype=float)
    pts = np.asarray(points, dtype=float).reshape(-1, len(ref))
    pts = pts[(pts < ref).all(axis=1)]
    if len(pts) == 0:
        return 0.0
    return _slice_volume(pts, ref)


def _slice_volume(pts: np.ndarray, ref: np.ndarray) -> float:
    if len(ref) == 1:
        return float(ref[0] - pts[:, 0].min())
    if len(ref) == 2:
        volume, best_y = 0.0, ref[1]
        for x, y in sorted(map(tuple, pts)):
            if y < best_y:
                volume += (ref[0] - x) * (best_y - y)
                best_y = y
        return volume
    order = np.argsort(pts[:, -1])
    pts = pts[order]
    volume = 0.0
    for i in range(len(pts)):
        top = pts[i + 1, -1] if i + 1 < len(pts) else ref[-1]
        depth = top - pts[i, -1]
        if depth > 0:
            volume += depth * _slice_volume(pts[: i + 1, :-1], ref[:-1])
    return float(volume)
