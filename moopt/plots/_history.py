"""Hypervolume over trials and a parallel-coordinates view of the front: data, then figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from moopt._front import ObjectiveInfo, Overrides, hypervolume, metrics_of, trial_status

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go


@dataclass(frozen=True)
class HypervolumeHistory:
    """Hypervolume of the feasible trials seen so far, after each evaluated trial.

    Objectives are normalized to [0, 1] over every feasible trial (0 best); the reference
    point is 1.1 in each, so the largest possible value is 1.1 ** objectives.
    """

    trials: tuple[int, ...]
    hypervolume: tuple[float, ...]
    maximum: float


def hypervolume_history(
    trials: Sequence[optuna.trial.FrozenTrial],
    objectives: Sequence[ObjectiveInfo],
    overrides: Overrides | None = None,
) -> HypervolumeHistory:
    """Compute the hypervolume after each evaluated trial (pure: the figure only draws it)."""
    status = trial_status(trials, objectives, overrides)
    ordered = [t for t in trials if t.number in status]
    feasible = [t for t in ordered if status[t.number] != "infeasible"]
    if not feasible:
        return HypervolumeHistory(tuple(t.number for t in ordered), (0.0,) * len(ordered), 0.0)
    raw = np.array([[metrics_of(t, overrides)[o.name] for o in objectives] for t in feasible])
    signs = np.array([-1.0 if o.direction == "maximize" else 1.0 for o in objectives])
    lo, hi = (raw * signs).min(axis=0), (raw * signs).max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    points = {t.number: (row * signs - lo) / span for t, row in zip(feasible, raw, strict=True)}
    reference = [1.1] * len(objectives)
    seen: list[np.ndarray] = []
    values = []
    for t in ordered:
        if t.number in points:
            seen.append(points[t.number])
        values.append(hypervolume(np.array(seen), reference) if seen else 0.0)
    return HypervolumeHistory(
        tuple(t.number for t in ordered), tuple(values), 1.1 ** len(objectives)
    )


def hypervolume_figure(history: HypervolumeHistory) -> go.Figure:
    """Hypervolume against trial number."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Scatter(
            x=list(history.trials),
            y=list(history.hypervolume),
            mode="lines+markers",
            name="hypervolume",
            line={"shape": "hv", "color": "#9467bd"},
        )
    )
    fig.update_layout(
        title="Hypervolume of the feasible trials so far (normalized objectives)",
        xaxis_title="trial",
        yaxis_title="hypervolume",
        template="plotly_white",
        height=400,
    )
    return fig


@dataclass(frozen=True)
class ParallelData:
    """The front members' objective values, one column per objective, and their families."""

    objectives: tuple[ObjectiveInfo, ...]
    trials: tuple[int, ...]
    families: tuple[str, ...]
    columns: tuple[tuple[float, ...], ...]


def parallel_data(
    front: Sequence[optuna.trial.FrozenTrial],
    objectives: Sequence[ObjectiveInfo],
    overrides: Overrides | None = None,
) -> ParallelData:
    """Columns of the front's metrics for a parallel-coordinates plot."""
    metrics = [metrics_of(t, overrides) for t in front]
    return ParallelData(
        tuple(objectives),
        tuple(t.number for t in front),
        tuple(str(t.user_attrs["family"]) for t in front),
        tuple(tuple(float(m[o.name]) for m in metrics) for o in objectives),
    )


def parallel_figure(data: ParallelData) -> go.Figure:
    """Parallel coordinates of the front, coloured by family."""
    import plotly.graph_objects as go

    names = sorted(set(data.families))
    codes = [names.index(f) for f in data.families]
    dimensions = [
        {
            "label": "family",
            "values": codes,
            "tickvals": list(range(len(names))),
            "ticktext": names,
        }
    ]
    dimensions += [
        {"label": f"{o.name} ({o.unit})" if o.unit else o.name, "values": list(col)}
        for o, col in zip(data.objectives, data.columns, strict=True)
    ]
    fig = go.Figure(
        go.Parcoords(line={"color": codes, "colorscale": "Turbo"}, dimensions=dimensions)
    )
    fig.update_layout(
        title="The front, objective by objective", template="plotly_white", height=420
    )
    return fig
