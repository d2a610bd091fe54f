"""Plots and the HTML report: data functions and the figures built from them."""

from __future__ import annotations

from moopt.plots._history import (
    HypervolumeHistory,
    ParallelData,
    hypervolume_figure,
    hypervolume_history,
    parallel_data,
    parallel_figure,
)
from moopt.plots._pareto import (
    STYLE,
    ParetoData,
    PlotPoint,
    budget_by_objective,
    figure_json,
    pareto_data,
    pareto_figure,
    pareto_figure_3d,
    pareto_figures,
)
from moopt.plots._report import render_report

__all__ = [
    "STYLE",
    "HypervolumeHistory",
    "ParallelData",
    "ParetoData",
    "PlotPoint",
    "budget_by_objective",
    "figure_json",
    "hypervolume_figure",
    "hypervolume_history",
    "parallel_data",
    "parallel_figure",
    "pareto_data",
    "pareto_figure",
    "pareto_figure_3d",
    "pareto_figures",
    "render_report",
]
