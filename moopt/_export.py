"""The output folder: the one place moopt writes result files.

Every file is written whole under a temporary name and renamed into place, and ``models/`` is
swapped in as a whole, so an interrupted write never leaves a half-written result.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moopt._errors import MooptError
from moopt._front import member_record, metrics_of
from moopt._selection import selection_record
from moopt.plots import (
    hypervolume_figure,
    hypervolume_history,
    parallel_data,
    parallel_figure,
    pareto_data,
    pareto_figures,
    render_report,
)
from moopt.study._trial import load_model

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go

    from moopt._selection import Selection
    from moopt.study import Result, SearchContext


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write ``content`` to ``path`` so that readers see the old file or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    if isinstance(content, bytes):
        tmp.write_bytes(content)
    else:
        tmp.write_text(content, encoding="utf-8")
    os.replace(tmp, path)


def _host(
    front: Sequence[optuna.trial.FrozenTrial], trials: Sequence[optuna.trial.FrozenTrial]
) -> dict[str, Any]:
    measured = [t for t in trials if "host" in t.user_attrs]
    source = front[0] if front else (measured[-1] if measured else None)
    if source is None:
        from objectives import host_record

        record = host_record().as_dict()
    else:
        record = dict(source.user_attrs["host"])
    kinds = sorted(
        {
            f"{t.user_attrs['host']['cpu']} / {t.user_attrs['host']['logical_cores']}"
            for t in measured
        }
    )
    return {
        "cpu": record["cpu"],
        "cores": record["logical_cores"],
        "physical_cores": record["physical_cores"],
        "onnxruntime": record["onnxruntime"],
        "python": record["python"],
        "mixed_hosts": len(kinds) > 1,
        "hosts": kinds,
    }


def front_document(result: Result) -> dict[str, Any]:
    """``front.json``'s content."""
    trials = result.study.trials
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    s = result.summary
    return {
        "study": result.study.study_name,
        "objectives": [o.as_dict() for o in result.objectives],
        "data": {
            k: result.record["data"][k]
            for k in (
                "source",
                "target",
                "test_size",
                "split_seed",
                "stratify",
                "rows",
                "features",
                "classes",
            )
        },
        "budgets": result.config.budgets.as_dict(),
        "parity_tolerance": result.config.parity_tolerance,
        "runtime": result.record["runtime"],
        "host": _host(result.front, trials),
        "trials": states,
        "run": None
        if s is None
        else {
            "evaluated": s.evaluated,
            "failed": s.failed,
            "cache_hits": s.cache_hits,
            "early_rejected": s.early_rejected,
            "saved_s": round(s.saved_s, 2),
            "elapsed_s": round(s.elapsed_s, 2),
            "interrupted": s.interrupted,
        },
        "moopt": result.record.get("moopt"),
        "reverification": result.reverification.as_dict() if result.reverification else None,
        "front": [member_record(t, result.overrides) for t in result.front],
    }


def front_rows(result: Result) -> list[dict[str, Any]]:
    """One flat row per front member: trial, family, every metric, every hyperparameter."""
    metric_keys = sorted({k for t in result.front for k in t.user_attrs["metrics"]})
    rows = []
    for t in result.front:
        row: dict[str, Any] = {"trial": t.number, "family": t.user_attrs["family"]}
        row.update({k: metrics_of(t, result.overrides).get(k) for k in metric_keys})
        row["params"] = json.dumps(t.user_attrs["params"], sort_keys=True)
        rows.append(row)
    return rows


def _csv(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def _write_models(out: Path, result: Result, ctx: SearchContext) -> None:
    staging = out / f".models.tmp{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for t in result.front:
        (staging / f"trial-{t.number}.onnx").write_bytes(load_model(t, ctx).content)
    final, old = out / "models", out / f".models.old{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)


def _runtime_fact(runtime: dict[str, Any]) -> str:
    threads = runtime["threads"]
    searched = "searched" if len(threads) > 1 else "fixed"
    return (
        f"batch {runtime['batch_size']}; intra-op threads {searched} in "
        f"{', '.join(map(str, threads))}; graph optimization "
        f"{' / '.join(runtime['graph_optimization'])}; int8 quantization "
        f"{'offered where it applies' if runtime['quantize'] else 'off'}"
    )


def figures(result: Result) -> list[tuple[str, go.Figure]]:
    """Every plot of a study, named: Pareto pairs, 3-D, hypervolume history, the front."""
    trials, objectives, overrides = result.study.trials, result.objectives, result.overrides
    data = pareto_data(trials, objectives, result.config.budgets.as_dict(), overrides)
    named = pareto_figures(data)
    named.append(
        ("hypervolume", hypervolume_figure(hypervolume_history(trials, objectives, overrides)))
    )
    if result.front:
        named.append(
            ("front-parallel", parallel_figure(parallel_data(result.front, objectives, overrides)))
        )
    return named


def report_html(result: Result, document: dict[str, Any] | None = None) -> str:
    """The self-contained report page of a study."""
    document = document or front_document(result)
    facts = {
        "study": document["study"],
        "dataset": document["data"]["source"],
        "budgets": json.dumps(document["budgets"]) if document["budgets"] else "none",
        "runtime": _runtime_fact(document["runtime"]),
        "host": f"{document['host']['cpu']}, {document['host']['cores']} cores, "
        f"onnxruntime {document['host']['onnxruntime']}",
        "trials": json.dumps(document["trials"]),
    }
    if document["host"]["mixed_hosts"]:
        facts["hosts"] = (
            f"trials were measured on {len(document['host']['hosts'])} kinds of host "
            f"({'; '.join(document['host']['hosts'])}); search-time latencies compare only "
            "within one kind, and the front's numbers are those re-verified on one host"
        )
    return render_report(figures(result), front_rows(result), facts)


def write_outputs(result: Result, ctx: SearchContext) -> None:
    """Write front.json, front.csv, report.html and models/ into the output folder."""
    out = result.config.out
    document = front_document(result)
    _write_models(out, result, ctx)
    write_atomic(out / "front.csv", _csv(front_rows(result)))
    write_atomic(out / "report.html", report_html(result, document))
    # front.json last: its presence says the folder is complete.
    write_atomic(out / "front.json", json.dumps(document, indent=2) + "\n")


class ImageExportError(MooptError):
    """PNG/SVG export is not possible here (kaleido or a Chrome is missing)."""


def write_plots(result: Result, fmt: str) -> list[Path]:
    """Write every plot as ``plots/<name>.<fmt>`` (html, png or svg); returns the paths.

    Raises:
        ImageExportError: PNG/SVG asked for but kaleido or a Chrome/Chromium is missing.
    """
    import plotly.io as pio

    directory = result.config.out / "plots"
    named = figures(result)
    written = []
    if fmt == "html":
        for name, fig in named:
            path = directory / f"{name}.html"
            write_atomic(
                path,
                pio.to_html(fig, include_plotlyjs=True, full_html=True, include_mathjax=False),
            )
            written.append(path)
        return written
    try:
        import kaleido  # noqa: F401
    except ImportError:
        raise ImageExportError(
            f"{fmt.upper()} export needs the kaleido package: pip install 'moopt[images]' "
            "(and a Chrome or Chromium, e.g. Debian's: apt-get install -y chromium)."
        ) from None
    for name, fig in named:
        path = directory / f"{name}.{fmt}"
        try:
            content = _to_image(pio, fig, fmt)
        except Exception as exc:  # kaleido/choreographer raise their own types
            raise ImageExportError(
                f"{fmt.upper()} export failed: kaleido needs a Chrome or Chromium and found "
                f"none that works ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}). "
                "Install Debian's: apt-get install -y chromium (or scripts/setup-chromium), "
                "or use --format html."
            ) from exc
        write_atomic(path, content)
        written.append(path)
    return written


def _to_image(pio: Any, fig: Any, fmt: str) -> bytes:
    """The figure's image, asked for a second time if the first attempt fails.

    On a loaded machine kaleido can call its page's script before the page has loaded it
    (``ReferenceError: kaleido``, plotly/Kaleido#214); a second attempt starts a new browser.
    """
    try:
        content: bytes = pio.to_image(fig, format=fmt, width=1000, height=600)
    except Exception:  # kaleido/choreographer raise their own types
        content = pio.to_image(fig, format=fmt, width=1000, height=600)
    return content


def versions() -> dict[str, str]:
    """Versions of what made and runs the model (recorded in selected.json)."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("moopt", "onnxruntime", "scikit-learn", "skl2onnx", "onnx", "optuna"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def selected_document(
    result: Result, selection: Selection, model_path: str, sha256: str
) -> dict[str, Any]:
    """``selected.json``: enough for an audit and for `moopt gate` to check the same model."""
    trial = result.study.trials[selection.winner.trial]
    member = member_record(trial, result.overrides)
    budgets = selection_record(selection, result.objectives)
    return {
        "trial": trial.number,
        "family": member["family"],
        "params": member["params"],
        "metrics": member["metrics"],
        "model": model_path,
        "sha256": sha256,
        "hyperparameters": member["params"],
        "runtime": member["runtime"],
        "latency": member["latency"],
        "reverified": member["reverified"],
        "parity": member["parity"],
        "budgets": budgets["budgets"],
        "slack": budgets["slack"],
        "selection": {
            "policy": budgets["policy"],
            "weights": budgets["weights"],
            "others": budgets["others"],
        },
        "objectives": budgets["objectives"],
        "study": result.study.study_name,
        "data": dict(result.record["data"]),
        "host": member["host"],
        "versions": versions(),
    }


def write_selection(
    result: Result, selection: Selection, ctx: SearchContext, export_model: bool
) -> Path:
    """Write selected.json (and, when exporting, selected.onnx) into the output folder.

    ``select`` points selected.json at ``models/trial-<n>.onnx`` (written if missing);
    ``export`` writes the model as ``selected.onnx`` beside it. Returns selected.json's path.
    """
    out = result.config.out
    trial = result.study.trials[selection.winner.trial]
    model = load_model(trial, ctx)
    relative = "selected.onnx" if export_model else f"models/trial-{trial.number}.onnx"
    target = out / relative
    if not target.exists() or target.read_bytes() != model.content:
        write_atomic(target, model.content)
    path = out / "selected.json"
    document = selected_document(result, selection, relative, model.sha256)
    write_atomic(path, json.dumps(document, indent=2) + "\n")
    return path
