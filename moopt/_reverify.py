"""Finalists re-verified: the front measured again, interleaved, before it is trusted.

During the search every candidate is timed on its own, minutes apart, on a machine whose speed
drifts. Before the front is written out, its members are timed again in one isolated session,
interleaved (A B C A B C ...), so the same drift hits all of them. The re-verified numbers
replace the search's; the front is recomputed over every trial, and members that turn out
dominated or over a budget leave it. Trials that enter the front because of that are
re-verified in a further round.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from moopt._front import (
    Remeasured,
    constraints_of,
    dominates,
    front_trials,
    is_feasible,
    metrics_of,
)
from moopt.study._trial import SearchContext, load_model
from objectives import EvalData, Latency, measure_interleaved

#: Rounds of re-verification at most (each round re-measures the front interleaved).
MAX_ROUNDS = 3


@dataclass(frozen=True)
class Reverification:
    """What re-verifying the front found.

    Attributes:
        remeasured: New numbers per re-measured trial.
        before: Front members before re-verification.
        after: Front members after it.
        left: Why each member that left the front left.
        change: Relative change of the optimized latency, per re-measured trial.
        rounds: Rounds of interleaved measurement taken.
        host: Host record of the last round.
    """

    remeasured: Mapping[int, Remeasured]
    before: tuple[int, ...]
    after: tuple[int, ...]
    left: Mapping[int, str]
    change: Mapping[int, float]
    rounds: int
    host: Mapping[str, Any] = field(default_factory=dict)

    @property
    def entered(self) -> tuple[int, ...]:
        """Trials that joined the front after re-verification."""
        return tuple(n for n in self.after if n not in self.before)

    def summary(self) -> str:
        """One line for the run summary."""
        if not self.before:
            return "Re-verification: the front was empty; nothing to re-measure."
        changes = [abs(c) for c in self.change.values()]
        text = (
            f"Re-verified {len(self.remeasured)} front members interleaved in {self.rounds} "
            f"round(s): latency moved by {statistics.median(changes):.1%} (median), "
            f"{max(changes):.1%} at most; {len(self.left)} left the front, "
            f"{len(self.entered)} entered."
        )
        return text

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (trial numbers as strings in mappings)."""
        return {
            "before": list(self.before),
            "after": list(self.after),
            "left": {str(k): v for k, v in self.left.items()},
            "entered": list(self.entered),
            "change": {str(k): v for k, v in self.change.items()},
            "rounds": self.rounds,
            "host": dict(self.host),
            "remeasured": {
                str(k): {
                    "metrics": dict(r.metrics),
                    "constraints": dict(r.constraints),
                    "details": dict(r.details),
                }
                for k, r in self.remeasured.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reverification:
        """Read back what :meth:`as_dict` wrote (e.g. from the study's record)."""
        return cls(
            remeasured={
                int(k): Remeasured(v["metrics"], v["constraints"], v["details"])
                for k, v in data["remeasured"].items()
            },
            before=tuple(data["before"]),
            after=tuple(data["after"]),
            left={int(k): v for k, v in data["left"].items()},
            change={int(k): v for k, v in data["change"].items()},
            rounds=data["rounds"],
            host=data.get("host", {}),
        )


def _why_left(
    trial: optuna.trial.FrozenTrial,
    final: Sequence[optuna.trial.FrozenTrial],
    ctx: SearchContext,
    overrides: Mapping[int, Remeasured],
) -> str:
    if not is_feasible(trial, overrides):
        broken = [k for k, v in constraints_of(trial, overrides).items() if v > 0]
        return f"breaks {', '.join(broken)} when re-measured"
    infos = ctx.infos
    directions = [o.direction for o in infos]
    mine = [metrics_of(trial, overrides)[o.name] for o in infos]
    for other in final:
        theirs = [metrics_of(other, overrides)[o.name] for o in infos]
        if dominates(theirs, mine, directions):
            return f"dominated by trial {other.number} when re-measured"
    return "dominated when re-measured"


def reverify(
    trials: Sequence[optuna.trial.FrozenTrial], ctx: SearchContext, latency: Latency
) -> Reverification:
    """Re-measure the front's latency interleaved and recompute the front.

    Args:
        trials: Every trial of the study.
        ctx: The run's context (models, hold-out, settings, budgets).
        latency: The latency objective the search optimized.

    Raises:
        MeasurementError: A front member could not be measured again.
    """
    before = front_trials(trials, ctx.infos)
    overrides: dict[int, Remeasured] = {}
    change: dict[int, float] = {}
    host: Mapping[str, Any] = {}
    current = before
    rounds = 0
    while rounds < MAX_ROUNDS and any(t.number not in overrides for t in current):
        rounds += 1
        models = [load_model(t, ctx) for t in current]
        data = EvalData(ctx.split.test_features)
        settings = [ctx.settings_for(t.user_attrs.get("knobs", {})) for t in current]
        measured, record = measure_interleaved(latency, models, data, settings, ctx.isolation)
        host = record.as_dict()
        for trial, m in zip(current, measured, strict=True):
            metrics = {**trial.user_attrs["metrics"], **m.values}
            disagreement = 1.0 - trial.user_attrs["parity"]["label_agreement"]
            constraints = ctx.constraints(metrics, disagreement)
            keys = ("samples", "stop_reason", "intervals", "estimator", "quiet_share", "slowdown")
            details = {k: m.details.get(k) for k in keys}
            overrides[trial.number] = Remeasured(dict(m.values), constraints, details)
            old = trial.user_attrs["metrics"][latency.name]
            change[trial.number] = (m.values[latency.name] - old) / old if old > 0 else 0.0
        current = front_trials(trials, ctx.infos, overrides)
    after = {t.number for t in current}
    left = {
        t.number: _why_left(t, current, ctx, overrides) for t in before if t.number not in after
    }
    return Reverification(
        remeasured=overrides,
        before=tuple(t.number for t in before),
        after=tuple(sorted(after)),
        left=left,
        change=change,
        rounds=rounds,
        host=host,
    )
