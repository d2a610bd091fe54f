"""report.html: one self-contained page (plotly's JavaScript embedded; works offline)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "<p>No feasible trial: the front is empty.</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in r.values()) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_report(
    figures: Sequence[tuple[str, Any]],
    front_rows: Sequence[Mapping[str, Any]],
    facts: Mapping[str, Any],
) -> str:
    """The report page: run facts, the front as a table, and every Pareto plot.

    Args:
        figures: (name, plotly figure) pairs, in page order.
        front_rows: One flat row per front member (as in front.csv).
        facts: Short facts shown at the top (study, dataset, budgets, host...).
    """
    import plotly.io as pio

    plots = []
    for index, (name, fig) in enumerate(figures):
        div = pio.to_html(
            fig,
            full_html=False,
            include_plotlyjs=index == 0,
            include_mathjax=False,
            div_id=f"plot-{name}",
            config={"displaylogo": False},
        )
        plots.append(f'<section class="plot">{div}</section>')
    fact_items = "".join(
        f"<li><b>{html.escape(str(k))}</b>: {html.escape(_cell(v))}</li>" for k, v in facts.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>moopt report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }}
th {{ background: #f3f3f3; }}
.plot {{ margin: 2em 0; }}
</style></head>
<body>
<h1>moopt: accuracy / latency / memory trade-offs</h1>
<ul>{fact_items}</ul>
<h2>Pareto front (feasible, non-dominated)</h2>
{_table(front_rows)}
<h2>Plots</h2>
<p>Red: the front. Blue rings: feasible but dominated. Grey crosses: break a budget or the
ONNX parity check. Dashed green lines: budgets.</p>
{"".join(plots)}
</body></html>
"""
