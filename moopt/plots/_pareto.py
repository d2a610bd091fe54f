"""Pareto plots: pure functions compute the data, others build plotly figures from it."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moopt._front import ObjectiveInfo, Overrides, constraints_of, metrics_of, trial_status

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go

#: How each status is drawn: the front stands out, the rest recedes.
STYLE: dict[str, dict[str, Any]] = {
    "front": {"color": "#d62728", "symbol": "circle", "size": 10, "opacity": 1.0},
    "dominated": {"color": "#1f77b4", "symbol": "circle-open", "size": 7, "opacity": 0.6},
    "infeasible": {"color": "#7f7f7f", "symbol": "x", "size": 6, "opacity": 0.5},
}


@dataclass(frozen=True)
class PlotPoint:
    """One evaluated trial as drawn."""

    trial: int
    family: str
    status: str
    values: tuple[float, ...]
    hover: str


@dataclass(frozen=True)
class ParetoData:
    """Everything a Pareto plot shows.

    Attributes:
        objectives: The plotted objectives, in axis order.
        points: Every evaluated trial.
        budgets: Budget value per objective name, for the ones that have a budget.
    """

    objectives: tuple[ObjectiveInfo, ...]
    points: tuple[PlotPoint, ...]
    budgets: Mapping[str, float]

    def column(self, index: int, status: str | None = None) -> list[float]:
        """Values of one objective, optionally only for points of one status."""
        return [p.values[index] for p in self.points if status is None or p.status == status]


def budget_by_objective(
    budgets: Mapping[str, float], objectives: Sequence[ObjectiveInfo]
) -> dict[str, float]:
    """Map ``max_latency_ms`` / ``max_memory_mb`` / ``min_accuracy`` onto objective names."""
    names = [o.name for o in objectives]
    mapped: dict[str, float] = {}
    for key, value in budgets.items():
        if key == "max_latency_ms":
            target = next((n for n in names if n.startswith("latency_p")), None)
        else:
            target = {"max_memory_mb": "peak_memory_mb", "min_accuracy": "accuracy"}.get(key)
        if target in names:
            mapped[target] = value
    return mapped


def _label(o: ObjectiveInfo) -> str:
    return f"{o.name} ({o.unit})" if o.unit else o.name


def _hover(trial: optuna.trial.FrozenTrial, overrides: Overrides | None) -> str:
    attrs = trial.user_attrs
    reverified = bool(overrides and trial.number in overrides)
    lines = [
        f"trial {trial.number}: {attrs.get('family', '?')}"
        + (" (re-verified)" if reverified else "")
    ]
    lines += [f"{k} = {v:.4g}" for k, v in sorted(metrics_of(trial, overrides).items())]
    lines += [
        f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
        for k, v in sorted(attrs.get("params", {}).items())
    ]
    violated = [k for k, v in constraints_of(trial, overrides).items() if v > 0]
    if violated:
        lines.append("breaks: " + ", ".join(violated))
    return "<br>".join(lines)


def pareto_data(
    trials: Sequence[optuna.trial.FrozenTrial],
    objectives: Sequence[ObjectiveInfo],
    budgets: Mapping[str, float],
    overrides: Overrides | None = None,
) -> ParetoData:
    """Classify every evaluated trial as front, dominated or infeasible, ready to draw.

    Re-verified numbers (``overrides``) replace the search's where there are any.
    """
    status = trial_status(trials, objectives, overrides)
    points = tuple(
        PlotPoint(
            t.number,
            str(t.user_attrs["family"]),
            status[t.number],
            tuple(float(metrics_of(t, overrides)[o.name]) for o in objectives),
            _hover(t, overrides),
        )
        for t in trials
        if t.number in status
    )
    return ParetoData(tuple(objectives), points, budget_by_objective(budgets, objectives))


def _log_axis(values: Sequence[float]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) > 1 and max(positive) / min(positive) > 20


def pareto_figure(data: ParetoData, x: int, y: int) -> go.Figure:
    """A 2-D scatter of objectives ``x`` and ``y`` with budget lines."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for status, style in STYLE.items():
        pts = [p for p in data.points if p.status == status]
        if not pts:
            continue
        fig.add_trace(
            go.Scatter(
                x=[p.values[x] for p in pts],
                y=[p.values[y] for p in pts],
                mode="markers",
                name=f"{status} ({len(pts)})",
                text=[p.hover for p in pts],
                hovertemplate="%{text}<extra></extra>",
                marker={
                    "color": style["color"],
                    "symbol": style["symbol"],
                    "size": style["size"],
                    "opacity": style["opacity"],
                },
            )
        )
    ox, oy = data.objectives[x], data.objectives[y]
    if ox.name in data.budgets:
        fig.add_vline(
            x=data.budgets[ox.name],
            line_dash="dash",
            line_color="#2ca02c",
            annotation_text=f"budget {data.budgets[ox.name]:g}",
        )
    if oy.name in data.budgets:
        fig.add_hline(
            y=data.budgets[oy.name],
            line_dash="dash",
            line_color="#2ca02c",
            annotation_text=f"budget {data.budgets[oy.name]:g}",
        )
    fig.update_layout(
        title=f"{oy.name} vs {ox.name}",
        xaxis_title=_label(ox),
        yaxis_title=_label(oy),
        template="plotly_white",
        height=480,
        legend={"orientation": "h", "y": -0.2},
    )
    if _log_axis(data.column(x)):
        fig.update_xaxes(type="log")
    if _log_axis(data.column(y)):
        fig.update_yaxes(type="log")
    return fig


def pareto_figure_3d(data: ParetoData) -> go.Figure:
    """A 3-D scatter of the first three objectives."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for status, style in STYLE.items():
        pts = [p for p in data.points if p.status == status]
        if pts:
            fig.add_trace(
                go.Scatter3d(
                    x=[p.values[0] for p in pts],
                    y=[p.values[1] for p in pts],
                    z=[p.values[2] for p in pts],
                    mode="markers",
                    name=f"{status} ({len(pts)})",
                    text=[p.hover for p in pts],
                    hovertemplate="%{text}<extra></extra>",
                    marker={
                        "color": style["color"],
                        "size": style["size"] / 2,
                        "opacity": style["opacity"],
                    },
                )
            )
    o = data.objectives
    _budget_planes(fig, data)
    fig.update_layout(
        title="Accuracy, latency and memory",
        template="plotly_white",
        height=600,
        scene={
            "xaxis_title": _label(o[0]),
            "yaxis_title": _label(o[1]),
            "zaxis_title": _label(o[2]),
        },
    )
    return fig


def _budget_planes(fig: go.Figure, data: ParetoData) -> None:
    """A translucent plane at each budget of the first three objectives."""
    import plotly.graph_objects as go

    if not data.points:
        return
    ranges = [(min(data.column(j)), max(data.column(j))) for j in range(3)]
    for axis in range(3):
        name = data.objectives[axis].name
        if name not in data.budgets:
            continue
        (a0, a1), (b0, b1) = (ranges[j] for j in range(3) if j != axis)
        xyz: list[list[float]] = [[], [], []]
        for a, b in [(a0, b0), (a1, b0), (a1, b1), (a0, b1)]:
            others = iter((a, b))
            for j in range(3):
                xyz[j].append(data.budgets[name] if j == axis else next(others))
        fig.add_trace(
            go.Mesh3d(
                x=xyz[0],
                y=xyz[1],
                z=xyz[2],
                i=[0, 0],
                j=[1, 2],
                k=[2, 3],
                color="#2ca02c",
                opacity=0.2,
                name=f"budget {name}",
                hoverinfo="name",
                showlegend=True,
            )
        )


def pareto_figures(data: ParetoData) -> list[tuple[str, go.Figure]]:
    """A 2-D plot for every pair of objectives, then a 3-D plot when there are three or more."""
    figures = [
        (f"{data.objectives[j].name}-vs-{data.objectives[i].name}", pareto_figure(data, i, j))
        for i, j in itertools.combinations(range(len(data.objectives)), 2)
    ]
    if len(data.objectives) >= 3:
        figures.append(("pareto-3d", pareto_figure_3d(data)))
    return figures


def figure_json(fig: go.Figure) -> dict[str, Any]:
    """A figure as plain JSON data (what tests and other tools read)."""
    result: dict[str, Any] = json.loads(fig.to_json())
    return result
