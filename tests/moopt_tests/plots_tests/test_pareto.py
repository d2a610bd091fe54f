"""Plot data from pure functions; figures only draw it."""

from __future__ import annotations

import optuna
import pytest

from moopt import ObjectiveInfo
from moopt.plots import STYLE, budget_by_objective, figure_json, pareto_data, pareto_figures

OBJECTIVES = (
    ObjectiveInfo("accuracy", "maximize", ""),
    ObjectiveInfo("latency_p95_ms", "minimize", "ms"),
    ObjectiveInfo("peak_memory_mb", "minimize", "MB"),
)


def _study() -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    rows = [  # accuracy, latency, memory, latency constraint value
        (0.95, 0.10, 30.0, -0.4),  # front
        (0.90, 0.05, 31.0, -0.45),  # front
        (0.85, 0.20, 40.0, -0.3),  # dominated by the first
        (0.99, 0.90, 90.0, 0.4),  # breaks the latency budget
    ]
    for i, (acc, lat, mem, c) in enumerate(rows):
        t = study.ask()
        t.set_user_attr("family", "rf" if i % 2 else "logreg")
        t.set_user_attr("params", {"C": 1.0 + i})
        t.set_user_attr("metrics", {"accuracy": acc, "latency_p95_ms": lat, "peak_memory_mb": mem})
        t.set_constraint("max_latency_ms", c)
        study.tell(t, [acc, lat, mem])
    return study


def test_points_are_classified_and_described() -> None:
    data = pareto_data(_study().trials, OBJECTIVES, {"max_latency_ms": 0.5})
    assert [p.status for p in data.points] == ["front", "front", "dominated", "infeasible"]
    assert data.budgets == {"latency_p95_ms": 0.5}
    assert data.points[3].values == (0.99, 0.90, 90.0)
    assert "breaks: max_latency_ms" in data.points[3].hover
    assert "trial 1: rf" in data.points[1].hover and "C = 2" in data.points[1].hover


def test_budget_names_map_onto_objectives() -> None:
    mapped = budget_by_objective(
        {"max_latency_ms": 1.0, "max_memory_mb": 50.0, "min_accuracy": 0.9}, OBJECTIVES
    )
    assert mapped == {"latency_p95_ms": 1.0, "peak_memory_mb": 50.0, "accuracy": 0.9}


def test_one_figure_per_pair_plus_3d_drawn_from_the_data() -> None:
    data = pareto_data(_study().trials, OBJECTIVES, {"max_latency_ms": 0.5})
    figures = pareto_figures(data)
    assert [name for name, _ in figures] == [
        "latency_p95_ms-vs-accuracy",
        "peak_memory_mb-vs-accuracy",
        "peak_memory_mb-vs-latency_p95_ms",
        "pareto-3d",
    ]
    fig = figure_json(figures[0][1])
    traces = {t["name"]: t for t in fig["data"]}
    assert set(traces) == {"front (2)", "dominated (1)", "infeasible (1)"}
    assert traces["front (2)"]["marker"]["color"] == STYLE["front"]["color"]
    assert traces["infeasible (1)"]["x"] == [0.99]
    # The latency budget is drawn as a horizontal line at 0.5 on the latency-vs-accuracy plot.
    lines = [s for s in fig["layout"]["shapes"] if s["type"] == "line"]
    assert [(s["y0"], s["y1"]) for s in lines] == [(0.5, 0.5)]


class _FlakyPlotlyIO:
    """``plotly.io`` whose ``to_image`` fails its first ``failures`` calls, as kaleido can
    when its page has not loaded its script yet."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def to_image(self, fig: object, **kwargs: object) -> bytes:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("ReferenceError: kaleido is not defined")
        return b"\x89PNG"


def test_an_image_export_is_asked_for_once_more_after_a_failure() -> None:
    from moopt._export import _to_image

    flaky = _FlakyPlotlyIO(failures=1)
    assert _to_image(flaky, object(), "png") == b"\x89PNG"
    assert flaky.calls == 2
    with pytest.raises(RuntimeError, match="kaleido"):
        _to_image(_FlakyPlotlyIO(failures=2), object(), "png")
