"""From the front to one model: selection policies that explain their choice.

Policies work on plain values (:class:`Member`), so they can be checked on hand-built fronts:

- ``best-accuracy``: the most accurate member within the latency and memory budgets;
- ``fastest`` / ``smallest``: the lowest latency / peak memory at or above the accuracy floor
  (and within the other budgets);
- ``knee``: the member with the largest trade-off, on objectives normalized over the
  members: the one farthest from the hyperplane through the best point of each objective
  (nearest to the ideal point when that plane is degenerate);
- ``weighted``: the lowest weighted sum of objectives normalized over the members.

Ties break deterministically: by accuracy, then latency, then memory, then trial number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moopt._errors import ConfigError, MooptError
from moopt._front import ObjectiveInfo

POLICIES = ("best-accuracy", "fastest", "smallest", "knee", "weighted")


class NoFeasibleMember(MooptError):
    """No front member meets the budgets of the selection."""


@dataclass(frozen=True)
class Member:
    """A front member as selection sees it: its number, family and metrics."""

    trial: int
    family: str
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class Policy:
    """How to choose, and the budgets the choice must meet (None: no such budget).

    Attributes:
        kind: One of :data:`POLICIES`.
        max_latency_ms: Latency budget, on the study's latency objective.
        max_memory_mb: Peak memory budget.
        min_accuracy: Accuracy floor.
        weights: For ``weighted``: weight per objective name (missing ones weigh 0).
    """

    kind: str = "best-accuracy"
    max_latency_ms: float | None = None
    max_memory_mb: float | None = None
    min_accuracy: float | None = None
    weights: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Selection:
    """The chosen member and why.

    Attributes:
        winner: The chosen member.
        policy: The policy applied.
        slack: The winner's margin against each budget (positive: inside it).
        reasons: Why every other member was not chosen, by trial.
        scores: The policy's score per member (what it compared), by trial.
    """

    winner: Member
    policy: Policy
    slack: Mapping[str, float]
    reasons: Mapping[int, str]
    scores: Mapping[int, float]


def parse_weights(text: str, objectives: Sequence[ObjectiveInfo]) -> dict[str, float]:
    """Parse ``"accuracy=2,latency_p95_ms=1"``.

    Raises:
        ConfigError: An entry that is not ``name=number``, an unknown objective, a negative
            weight, or all weights zero.
    """
    names = [o.name for o in objectives]
    weights: dict[str, float] = {}
    for item in (s.strip() for s in text.split(",") if s.strip()):
        name, _, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            raise ConfigError(
                f"Each weight must be written objective=number, got '{item}'. "
                'Example: --weights "accuracy=2,latency_p95_ms=1".'
            ) from None
        if name not in names:
            raise ConfigError(
                f"Unknown objective '{name}' in --weights. Expected one of: {', '.join(names)}."
            )
        if weight < 0:
            raise ConfigError(f"Weights must be >= 0, got {name}={weight}.")
        weights[name] = weight
    if not any(weights.values()):
        raise ConfigError("--weights needs at least one positive weight.")
    return weights


def _latency_name(objectives: Sequence[ObjectiveInfo]) -> str:
    return next(o.name for o in objectives if o.name.startswith("latency_p"))


def _broken(member: Member, policy: Policy, latency: str) -> list[str]:
    m = member.metrics
    out = []
    if policy.max_latency_ms is not None and m[latency] > policy.max_latency_ms:
        out.append(f"breaks max_latency_ms: {m[latency]:.4g} ms > {policy.max_latency_ms:g} ms")
    if policy.max_memory_mb is not None and m["peak_memory_mb"] > policy.max_memory_mb:
        out.append(
            f"breaks max_memory_mb: {m['peak_memory_mb']:.4g} MB > {policy.max_memory_mb:g} MB"
        )
    if policy.min_accuracy is not None and m["accuracy"] < policy.min_accuracy:
        out.append(f"breaks min_accuracy: {m['accuracy']:.4g} < {policy.min_accuracy:g}")
    return out


def _violation(member: Member, policy: Policy, latency: str) -> float:
    """Total relative amount by which a member breaks the budgets (0: none broken)."""
    m = member.metrics
    total = 0.0
    if policy.max_latency_ms is not None:
        total += max(0.0, m[latency] / policy.max_latency_ms - 1)
    if policy.max_memory_mb is not None:
        total += max(0.0, m["peak_memory_mb"] / policy.max_memory_mb - 1)
    if policy.min_accuracy is not None and policy.min_accuracy > 0:
        total += max(0.0, 1 - m["accuracy"] / policy.min_accuracy)
    return total


def _slack(member: Member, policy: Policy, latency: str) -> dict[str, float]:
    m = member.metrics
    slack = {}
    if policy.max_latency_ms is not None:
        slack["max_latency_ms"] = policy.max_latency_ms - m[latency]
    if policy.max_memory_mb is not None:
        slack["max_memory_mb"] = policy.max_memory_mb - m["peak_memory_mb"]
    if policy.min_accuracy is not None:
        slack["min_accuracy"] = m["accuracy"] - policy.min_accuracy
    return slack


def normalized(members: Sequence[Member], objectives: Sequence[ObjectiveInfo]) -> np.ndarray:
    """Objectives as columns in [0, 1], 0 best, scaled over ``members``."""
    raw = np.array([[m.metrics[o.name] for o in objectives] for m in members], dtype=float)
    out = np.zeros_like(raw)
    for j, o in enumerate(objectives):
        col = raw[:, j] if o.direction == "minimize" else -raw[:, j]
        lo, hi = col.min(), col.max()
        out[:, j] = (col - lo) / (hi - lo) if hi > lo else 0.0
    return out


def knee_scores(points: np.ndarray) -> np.ndarray:
    """Trade-off of each normalized point: distance below the hyperplane through the extremes.

    Larger is a better knee. When the extreme points do not span a hyperplane (fewer distinct
    extremes than objectives), the score is minus the distance to the ideal point (origin).
    """
    n, k = points.shape
    extremes = np.unique(points[np.argmin(points, axis=0)], axis=0)
    if n >= k and len(extremes) == k:
        # Plane through the k extremes: normal . x = c. Solve normal from (e_i - e_0).
        diffs = extremes[1:] - extremes[0]
        _, _, vt = np.linalg.svd(diffs)
        normal = vt[-1]
        if normal.sum() < 0:
            normal = -normal  # point away from the ideal corner
        norm = np.linalg.norm(normal)
        if norm > 0 and np.all(normal >= -1e-12):
            c = normal @ extremes[0]
            return np.asarray((c - points @ normal) / norm)
    return np.asarray(-np.linalg.norm(points, axis=1))


def _tie_key(m: Member, latency: str) -> tuple[float, float, float, int]:
    return (-m.metrics["accuracy"], m.metrics[latency], m.metrics["peak_memory_mb"], m.trial)


def select(
    members: Sequence[Member], objectives: Sequence[ObjectiveInfo], policy: Policy
) -> Selection:
    """Choose one member under ``policy`` and explain the choice.

    Raises:
        ConfigError: Unknown policy, or ``weighted`` without weights.
        NoFeasibleMember: No member meets the budgets (the message names the closest one).
    """
    if policy.kind not in POLICIES:
        raise ConfigError(
            f"Unknown policy '{policy.kind}'. Expected one of {', '.join(POLICIES)}."
        )
    if policy.kind == "weighted" and not policy.weights:
        raise ConfigError(
            'The weighted policy needs --weights, e.g. "accuracy=2,latency_p95_ms=1".'
        )
    if not members:
        raise NoFeasibleMember(
            "The front is empty: there is nothing to select. Run more "
            "trials or loosen the run's budgets."
        )
    latency = _latency_name(objectives)
    reasons: dict[int, str] = {}
    feasible = []
    for m in members:
        broken = _broken(m, policy, latency)
        if broken:
            reasons[m.trial] = "; ".join(broken)
        else:
            feasible.append(m)
    if not feasible:
        closest = min(members, key=lambda m: (_violation(m, policy, latency), m.trial))
        raise NoFeasibleMember(
            f"No front member meets the budgets; the closest, trial {closest.trial}, "
            f"{_broken(closest, policy, latency)[0]}. Loosen a budget or search more."
        )
    scores = _scores(feasible, objectives, policy, latency)
    winner = min(feasible, key=lambda m: (scores[m.trial], _tie_key(m, latency)))
    for m in feasible:
        if m.trial != winner.trial:
            reasons[m.trial] = _why_not(m, winner, policy, latency, scores)
    return Selection(winner, policy, _slack(winner, policy, latency), reasons, scores)


def _scores(
    members: Sequence[Member], objectives: Sequence[ObjectiveInfo], policy: Policy, latency: str
) -> dict[int, float]:
    """Lower is better."""
    if policy.kind == "best-accuracy":
        return {m.trial: -m.metrics["accuracy"] for m in members}
    if policy.kind == "fastest":
        return {m.trial: m.metrics[latency] for m in members}
    if policy.kind == "smallest":
        return {m.trial: m.metrics["peak_memory_mb"] for m in members}
    points = normalized(members, objectives)
    if policy.kind == "knee":
        knee = knee_scores(points)
        return {m.trial: -float(s) for m, s in zip(members, knee, strict=True)}
    weights = np.array([policy.weights.get(o.name, 0.0) for o in objectives])
    cost = points @ weights / weights.sum()
    return {m.trial: float(c) for m, c in zip(members, cost, strict=True)}


def _why_not(
    m: Member, winner: Member, policy: Policy, latency: str, scores: Mapping[int, float]
) -> str:
    a, w = m.metrics, winner.metrics
    trade = (
        f"{a['accuracy']:.4g} accuracy, {a[latency]:.4g} ms, "
        f"{a['peak_memory_mb']:.4g} MB against {w['accuracy']:.4g}, {w[latency]:.4g} ms, "
        f"{w['peak_memory_mb']:.4g} MB"
    )
    if scores[m.trial] == scores[winner.trial]:
        return f"ties with trial {winner.trial} on the policy and loses the tie-break ({trade})"
    what = {
        "best-accuracy": "less accurate",
        "fastest": "slower",
        "smallest": "uses more memory",
        "knee": "a smaller trade-off (farther from the knee)",
        "weighted": f"a higher weighted cost ({scores[m.trial]:.3f} against "
        f"{scores[winner.trial]:.3f})",
    }[policy.kind]
    return f"{what}: {trade}"


def selection_record(selection: Selection, objectives: Sequence[ObjectiveInfo]) -> dict[str, Any]:
    """The choice as JSON-ready values (for selected.json and `moopt select --json`)."""
    p = selection.policy
    return {
        "policy": p.kind,
        "budgets": {
            k: v
            for k, v in (
                ("max_latency_ms", p.max_latency_ms),
                ("max_memory_mb", p.max_memory_mb),
                ("min_accuracy", p.min_accuracy),
            )
            if v is not None
        },
        "weights": dict(p.weights),
        "slack": dict(selection.slack),
        "others": {str(k): v for k, v in sorted(selection.reasons.items())},
        "objectives": [o.as_dict() for o in objectives],
    }
