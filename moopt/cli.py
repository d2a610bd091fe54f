"""The command line: parse, call the library, map ``MooptError`` to one line and exit code 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from moopt._config import CLASSIFICATION_SCORERS, make_config, read_config_file
from moopt._errors import MooptError
from moopt._front import metrics_of
from moopt._selection import POLICIES
from moopt.search import FAMILIES, SAMPLERS
from moopt.study import ProgressEvent, Result, optimize

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other moopt error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"moopt: error: {message} (see '{self.prog} --help')\n")


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return (
        f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


class ProgressLine:
    """A live progress line: rewritten in place on a terminal, one line per trial otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._width = 0

    def __call__(self, e: ProgressEvent) -> None:
        left = "?" if e.remaining_s is None else _clock(e.remaining_s)
        line = (
            f"[{e.done:>{len(str(e.total))}}/{e.total}] failed {e.failed} | cached "
            f"{e.cache_hits} | front {e.front_size} | {_clock(e.elapsed_s)} elapsed, ~{left} "
            f"left | {e.last}"
        )
        if self._tty:
            line = line[:150]
            self._stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def close(self) -> None:
        """End the live line."""
        if self._tty and self._width:
            self._stream.write("\n")
            self._stream.flush()


def front_table(result: Result) -> list[str]:
    """The front as an aligned text table, most accurate first."""
    keys = [o.name for o in result.objectives]
    extra = [k for k in ("accuracy", "latency_p99_ms", "model_size_kb") if k not in keys]
    header = ["trial", "family", *keys, *extra]
    rows = []
    for t in sorted(result.front, key=lambda t: -metrics_of(t, result.overrides)[keys[0]]):
        m = metrics_of(t, result.overrides)
        rows.append(
            [str(t.number), t.user_attrs["family"], *[f"{m[k]:.4g}" for k in keys + extra]]
        )
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    lines = [
        f"Pareto front of study '{result.study.study_name}' "
        f"({len(result.front)} feasible, non-dominated):"
    ]
    lines.append("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    if not rows:
        lines.append("(empty: no trial met every budget; loosen a budget or run more trials)")
    return lines


def summary_text(result: Result) -> str:
    """The end-of-run summary: the front as a table, then what the run did."""
    lines = front_table(result)
    s = result.summary
    if s is not None:
        lines.append(
            f"This run: {s.evaluated} distinct evaluations, {s.failed} failed, {s.cache_hits} "
            f"repeated configurations served from the cache, {_clock(s.elapsed_s)} elapsed; "
            f"the study holds {len(result.study.trials)} trials."
        )
        if s.early_rejected:
            lines.append(
                f"Early rejection: {s.early_rejected} candidates could not reach the accuracy "
                f"floor and were stopped before their expensive work, saving about "
                f"{s.saved_s:.0f} s."
            )
    if result.reverification is not None:
        lines.append(result.reverification.summary())
        for number, reason in sorted(result.reverification.left.items()):
            lines.append(f"  trial {number} left the front: {reason}")
    if s is not None:
        if s.exhausted:
            lines.append(
                "The search stopped early: it kept proposing configurations already "
                "evaluated (the space is small); widen it with more families or ranges."
            )
        for number, reason in s.failures:
            lines.append(f"  failed trial {number}: {reason.splitlines()[0][:160]}")
    lines.append(
        f"Wrote {result.config.out}/front.json, front.csv, report.html and "
        f"models/ ({len(result.front)} ONNX files)."
    )
    return "\n".join(lines)


def _add_source_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        default="moopt-out",
        metavar="DIR",
        help="output folder of `moopt run` (default moopt-out)",
    )
    p.add_argument("--storage", metavar="URL", help="Optuna storage instead of --out's journal")
    p.add_argument("--study", default="moopt", metavar="NAME", help="study name (default moopt)")


def _add_policy_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--policy",
        choices=POLICIES,
        default="best-accuracy",
        help="best-accuracy (within budgets), fastest or smallest (at or above the "
        "accuracy floor), knee (largest trade-off), weighted (see --weights)",
    )
    p.add_argument("--max-latency-ms", type=float, metavar="X")
    p.add_argument("--max-memory-mb", type=float, metavar="M")
    p.add_argument("--min-accuracy", type=float, metavar="A")
    p.add_argument(
        "--weights",
        metavar="NAME=W,...",
        help='for --policy weighted, e.g. "accuracy=2,latency_p95_ms=1"',
    )
    p.add_argument("--json", action="store_true", help="print the choice as JSON")


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML file with any of these settings")
    p.add_argument(
        "--dataset",
        metavar="NAME|CSV",
        help="digits (default), iris, wine, breast_cancer, or a .csv file",
    )
    p.add_argument("--target", metavar="COLUMN", help="label column of a CSV dataset")
    p.add_argument(
        "--families",
        metavar="a,b,...",
        help=f"model families to search (default: all of {','.join(FAMILIES)})",
    )
    p.add_argument(
        "--sampler",
        choices=SAMPLERS,
        help="search strategy (default nsga2: moopt's NSGA-II; grid is the exhaustive baseline)",
    )
    p.add_argument(
        "--scorer",
        choices=CLASSIFICATION_SCORERS,
        help="quality objective, computed from the ONNX outputs (default accuracy)",
    )
    p.add_argument(
        "--trials",
        type=int,
        metavar="N",
        help="distinct configurations to evaluate in this run (default 100)",
    )
    p.add_argument("--seed", type=int, metavar="S", help="search and training seed (default 0)")
    p.add_argument("--batch-size", type=int, metavar="B", help="rows per inference (default 1)")
    p.add_argument(
        "--threads", type=int, metavar="T", help="ONNX Runtime intra-op threads (default 1)"
    )
    p.add_argument(
        "--max-latency-ms",
        type=float,
        metavar="X",
        help="latency budget on the optimized percentile (p95)",
    )
    p.add_argument("--max-memory-mb", type=float, metavar="M", help="peak memory budget")
    p.add_argument("--min-accuracy", type=float, metavar="A", help="accuracy floor")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage (default: a journal file in the output folder)",
    )
    p.add_argument("--study", metavar="NAME", help="study name (default moopt)")
    p.add_argument("--out", metavar="DIR", help="output folder (default moopt-out)")


def build_parser() -> argparse.ArgumentParser:
    """The ``moopt`` argument parser."""
    parser = _Parser(
        prog="moopt",
        description="Find the deployable trade-offs between a "
        "model's accuracy, inference latency and peak memory.",
    )
    parser.add_argument("--version", action="version", version=f"moopt {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = commands.add_parser(
        "run",
        help="search, measure and write the Pareto front",
        description="Train, convert and measure candidates; write the feasible Pareto front "
        "to the output folder. Running it again resumes the study and adds trials. Exit "
        "codes: 0 done, 2 bad input, 130 interrupted (the output folder is still written).",
    )
    _add_run_flags(run)
    run.add_argument(
        "--workers",
        type=int,
        metavar="K",
        help="local worker processes sharing the trials (default 1)",
    )
    create = commands.add_parser(
        "create",
        help="create a study for workers, without running trials",
        description="Create the study with its whole configuration recorded in the storage, "
        "so that workers (`moopt worker`) on this or other machines need nothing else. Takes "
        "the flags of `moopt run`.",
    )
    _add_run_flags(create)
    worker = commands.add_parser(
        "worker",
        help="join an existing study and evaluate trials",
        description="Join a study created by `moopt run` or `moopt create` and evaluate "
        "trials; the configuration comes from the study. Run one per machine (or core) "
        "against the same --storage (PostgreSQL across machines). A worker killed mid-trial "
        "has that trial failed and retried.",
    )
    worker.add_argument(
        "--storage",
        required=True,
        metavar="URL",
        help="postgresql://..., or the study.journal file of an output folder",
    )
    worker.add_argument("--study", default="moopt", metavar="NAME")
    worker.add_argument(
        "--trials",
        type=int,
        metavar="N",
        help="distinct evaluations by this worker (default: the study's)",
    )
    worker.add_argument(
        "--out",
        default="moopt-out",
        metavar="DIR",
        help="where this worker keeps its models (default moopt-out)",
    )
    worker.add_argument(
        "--heartbeat-s",
        type=int,
        default=60,
        metavar="S",
        help="database heartbeat; a trial silent 3x as long is retried",
    )
    worker.add_argument("--quiet", action="store_true", help="no progress lines")
    front = commands.add_parser(
        "front",
        help="print the front of a finished study",
        description="Print the feasible Pareto front of a study (re-verified numbers) without "
        "retraining: as a table, JSON (front.json's content) or CSV.",
    )
    _add_source_flags(front)
    front.add_argument("--format", choices=("table", "json", "csv"), default="table")
    for name, text in (
        ("select", "choose one front member and write selected.json"),
        ("export", "choose one front member; write selected.onnx and selected.json"),
    ):
        cmd = commands.add_parser(
            name,
            help=text,
            description=f"{text[0].upper()}{text[1:]}, under a policy and budgets (the run's "
            "budgets unless given), and explain the choice. Exit codes: 0 done, 2 bad input "
            "or no member meets the budgets.",
        )
        _add_source_flags(cmd)
        _add_policy_flags(cmd)
    plot = commands.add_parser(
        "plot",
        help="write every plot of a study as a file",
        description="Write each plot as OUT/plots/<name>.<format> and refresh report.html. "
        "PNG and SVG need kaleido (pip install 'moopt[images]') and a Chrome or Chromium "
        "(Debian: apt-get install -y chromium).",
    )
    _add_source_flags(plot)
    plot.add_argument("--format", choices=("html", "png", "svg"), default="html")
    gate = commands.add_parser(
        "gate",
        help="pass or fail a model against latency, memory and accuracy budgets",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Measure MODEL.onnx with the search's own measurement code and judge it "
        "against budgets.\n\nLatency is judged statistically: PASS when the upper bound of "
        "the percentile's 95%% confidence\ninterval is within the budget, FAIL when its lower "
        "bound is over it; in between the gate\ntakes more samples up to --max-time, then "
        "reports INCONCLUSIVE. With --baseline, both models\nare timed interleaved and the "
        "regression is judged on the ratio.\n\nExit codes:\n  0  every check passed\n  "
        "1  a check failed (or was inconclusive, unless --inconclusive-exit)\n  2  usage or "
        "input error (missing or corrupt model, data that does not fit it, hash\n     "
        "mismatch with --manifest, unknown option)",
    )
    gate.add_argument("model", metavar="MODEL.onnx")
    gate.add_argument(
        "--data",
        metavar="SOURCE",
        help="bundled dataset name (split as `moopt run` does), .csv or .npz "
        "(default: the manifest's dataset)",
    )
    gate.add_argument("--target", metavar="COLUMN", help="label column of a CSV")
    gate.add_argument(
        "--manifest",
        metavar="selected.json",
        help="budgets, data and settings from `moopt export`; the model's sha256 must match",
    )
    gate.add_argument("--max-latency-ms", type=float, metavar="X")
    gate.add_argument(
        "--percentile",
        type=float,
        metavar="P",
        help="latency percentile judged (default 95, or the manifest's)",
    )
    gate.add_argument("--max-memory-mb", type=float, metavar="M")
    gate.add_argument("--min-accuracy", type=float, metavar="A")
    gate.add_argument("--baseline", metavar="OLD.onnx", help="the model in production")
    gate.add_argument(
        "--max-latency-regression",
        type=_fraction,
        metavar="10%%",
        help="largest slowdown against --baseline (default 10%% with a baseline)",
    )
    gate.add_argument(
        "--max-accuracy-drop",
        type=float,
        metavar="D",
        help="largest accuracy drop against --baseline",
    )
    gate.add_argument("--batch-size", type=int, metavar="B")
    gate.add_argument("--threads", type=int, metavar="T")
    gate.add_argument(
        "--max-time",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds of latency sampling before a check is inconclusive",
    )
    gate.add_argument(
        "--inconclusive-exit",
        type=int,
        default=1,
        metavar="CODE",
        help="exit code when no check failed but one was inconclusive (default 1)",
    )
    gate.add_argument("--json", dest="json_file", metavar="FILE", help="write the report as JSON")
    gate.add_argument("--junit", metavar="FILE", help="write JUnit XML, one test case per check")
    replay = commands.add_parser(
        "replay",
        help="run a search strategy against a table of measured configurations",
        description="Run the search against a CSV of pre-measured configurations (one row per "
        "configuration: a 'family' column, hyperparameter columns, objective columns) instead "
        "of training, so strategies compare in seconds. Writes one JSON line per distinct row "
        'evaluated: {"row": <0-based data row>, "values": {...}}. Exit codes: 0 done, '
        "2 bad input.",
    )
    replay.add_argument("--table", required=True, metavar="FILE.csv")
    replay.add_argument(
        "--objectives",
        required=True,
        metavar="NAME:max|min,...",
        help='e.g. "accuracy:max,latency_ms:min,size_kb:min"',
    )
    replay.add_argument(
        "--budget", required=True, type=int, metavar="N", help="distinct rows to evaluate"
    )
    replay.add_argument("--seed", type=int, default=0, metavar="S")
    replay.add_argument("--sampler", choices=SAMPLERS, default="nsga2")
    replay.add_argument("--out", required=True, metavar="FILE.jsonl")
    return parser


def _version() -> str:
    from moopt._version import __version__

    return __version__


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The config file's settings, overridden by every flag given (flag names are the keys)."""
    values: dict[str, Any] = read_config_file(args.config) if args.config else {}
    for key, value in vars(args).items():
        if key not in ("command", "config", "workers") and value is not None:
            values[key] = value
    return values


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    config = make_config(_settings(args))
    progress = ProgressLine(err)
    try:
        workers = getattr(args, "workers", None) or config.workers
        result = optimize(config, progress=progress, workers=workers)
    finally:
        progress.close()
    out.write(summary_text(result) + "\n")
    if result.summary is not None and result.summary.interrupted:
        err.write("moopt: interrupted; the output folder holds what finished.\n")
        return EXIT_INTERRUPTED
    return EXIT_OK


def _open(args: argparse.Namespace) -> Result:
    from moopt.study import open_result

    return open_result(Path(args.out), args.storage, args.study)


def _front(args: argparse.Namespace, out: TextIO) -> int:
    from moopt._export import _csv, front_document, front_rows

    result = _open(args)
    if args.format == "json":
        out.write(json.dumps(front_document(result), indent=2) + "\n")
    elif args.format == "csv":
        out.write(_csv(front_rows(result)))
    else:
        lines = front_table(result)
        if result.reverification is not None:
            lines.append(result.reverification.summary())
        out.write("\n".join(lines) + "\n")
    return EXIT_OK


def _select(args: argparse.Namespace, out: TextIO, export_model: bool) -> int:
    from moopt._export import write_selection
    from moopt._selection import Member, Policy, parse_weights, select, selection_record
    from moopt.study import make_context

    result = _open(args)
    run_budgets = result.config.budgets

    def budget(flag: float | None, run_value: float | None) -> float | None:
        return flag if flag is not None else run_value

    policy = Policy(
        args.policy,
        max_latency_ms=budget(args.max_latency_ms, run_budgets.max_latency_ms),
        max_memory_mb=budget(args.max_memory_mb, run_budgets.max_memory_mb),
        min_accuracy=budget(args.min_accuracy, run_budgets.min_accuracy),
        weights=parse_weights(args.weights, result.objectives) if args.weights else {},
    )
    members = [
        Member(t.number, str(t.user_attrs["family"]), metrics_of(t, result.overrides))
        for t in result.front
    ]
    selection = select(members, result.objectives, policy)
    path = write_selection(result, selection, make_context(result.config), export_model)
    document = json.loads(path.read_text())
    if args.json:
        out.write(
            json.dumps(
                {
                    "selected": document["trial"],
                    "model": document["model"],
                    "sha256": document["sha256"],
                    **selection_record(selection, result.objectives),
                },
                indent=2,
            )
            + "\n"
        )
        return EXIT_OK
    w = selection.winner
    shown = ", ".join(f"{o.name} {w.metrics[o.name]:.4g}" for o in result.objectives)
    lines = [f"Selected trial {w.trial} ({w.family}) by {policy.kind}: {shown}."]
    if selection.slack:
        lines.append("Slack: " + ", ".join(f"{k} {v:+.4g}" for k, v in selection.slack.items()))
    for trial, reason in sorted(selection.reasons.items()):
        lines.append(f"  trial {trial}: {reason}")
    lines.append(f"Wrote {path} (model {document['model']}, sha256 {document['sha256'][:16]}…).")
    out.write("\n".join(lines) + "\n")
    return EXIT_OK


def _plot(args: argparse.Namespace, out: TextIO) -> int:
    from moopt._export import report_html, write_atomic, write_plots

    result = _open(args)
    paths = write_plots(result, args.format)
    write_atomic(result.config.out / "report.html", report_html(result))
    out.write(
        f"Wrote {len(paths)} plots to {result.config.out / 'plots'} and refreshed "
        f"{result.config.out / 'report.html'}.\n"
    )
    return EXIT_OK


def _create(args: argparse.Namespace, out: TextIO) -> int:
    from moopt.study import prepare

    config = make_config(_settings(args))
    _, study = prepare(config)
    storage = config.storage or str(config.out / "study.journal")
    out.write(
        f"Study '{study.study_name}' is ready in {storage}. Start workers with:\n"
        f"  moopt worker --storage {storage} --study {study.study_name} --trials N\n"
    )
    return EXIT_OK


def _worker(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from moopt.study import run_worker

    progress = None if args.quiet else ProgressLine(err)
    try:
        summary = run_worker(
            Path(args.out), args.storage, args.study, args.trials, progress, args.heartbeat_s
        )
    finally:
        if progress is not None:
            progress.close()
    out.write(
        f"Worker {os.getpid()}: {summary.evaluated} distinct evaluations, "
        f"{summary.failed} failed, {summary.cache_hits} from the cache.\n"
    )
    return EXIT_INTERRUPTED if summary.interrupted else EXIT_OK


def _fraction(text: str) -> float:
    from moopt._gate import parse_fraction

    try:
        return parse_fraction(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a share like 10% or 0.1, got {text!r}"
        ) from None


def _gate(args: argparse.Namespace, out: TextIO) -> int:
    from moopt._errors import ConfigError
    from moopt._export import write_atomic
    from moopt._gate import GateSpec, junit_xml, read_manifest, run_gate, table

    manifest = read_manifest(Path(args.manifest)) if args.manifest else {}
    budgets = manifest.get("budgets", {})
    runtime = manifest.get("runtime", {})
    data = manifest.get("data", {})
    latency_name = next(
        (o["name"] for o in manifest.get("objectives", []) if o["name"].startswith("latency_p")),
        "latency_p95_ms",
    )
    source = args.data or data.get("source")
    if source is None:
        raise ConfigError(
            "The gate needs data: pass --data (a bundled dataset, a .csv or an "
            ".npz) or a --manifest that names its dataset."
        )

    def pick(flag: Any, fallback: Any) -> Any:
        return flag if flag is not None else fallback

    regression = args.max_latency_regression
    if args.baseline and regression is None and args.max_accuracy_drop is None:
        regression = 0.10
    spec = GateSpec(
        model=Path(args.model),
        data=source,
        target=pick(args.target, data.get("target") if args.data is None else None),
        max_latency_ms=pick(args.max_latency_ms, budgets.get("max_latency_ms")),
        percentile=pick(args.percentile, float(latency_name[len("latency_p") : -len("_ms")])),
        max_memory_mb=pick(args.max_memory_mb, budgets.get("max_memory_mb")),
        min_accuracy=pick(args.min_accuracy, budgets.get("min_accuracy")),
        baseline=Path(args.baseline) if args.baseline else None,
        max_latency_regression=regression,
        max_accuracy_drop=args.max_accuracy_drop,
        batch_size=pick(args.batch_size, runtime.get("batch_size", 1)),
        threads=pick(args.threads, runtime.get("intra_op_threads", 1)),
        graph_optimization=runtime.get("graph_optimization", "all"),
        max_time_s=args.max_time,
        expected_sha256=manifest.get("sha256"),
        split={k: data[k] for k in ("test_size", "split_seed", "stratify") if k in data},
    )
    report = run_gate(spec)
    out.write(table(report) + "\n")
    if args.json_file:
        write_atomic(Path(args.json_file), json.dumps(report.as_dict(), indent=2) + "\n")
    if args.junit:
        write_atomic(Path(args.junit), junit_xml(report))
    if report.verdict == "pass":
        return EXIT_OK
    return 1 if report.verdict == "fail" else int(args.inconclusive_exit)


def _replay(args: argparse.Namespace, out: TextIO) -> int:
    from moopt._replay import load_table, parse_objectives, replay, write_jsonl
    from moopt.search import Strategy

    table = load_table(args.table, parse_objectives(args.objectives))
    records = replay(table, args.budget, args.seed, Strategy(args.sampler))
    write_jsonl(records, args.out)
    out.write(
        f"Evaluated {len(records)} distinct rows of {len(table.rows)} with {args.sampler}; "
        f"wrote {args.out}.\n"
    )
    return EXIT_OK


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run the command line; returns the exit code."""
    out, err = out or sys.stdout, err or sys.stderr
    import optuna

    # moopt prints its own progress; Optuna's per-trial log lines would drown it.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["run", *(argv or [])])
    try:
        if args.command == "replay":
            return _replay(args, out)
        if args.command == "front":
            return _front(args, out)
        if args.command in ("select", "export"):
            return _select(args, out, export_model=args.command == "export")
        if args.command == "plot":
            return _plot(args, out)
        if args.command == "gate":
            return _gate(args, out)
        if args.command == "create":
            return _create(args, out)
        if args.command == "worker":
            return _worker(args, out, err)
        return _run(args, out, err)
    except MooptError as exc:
        err.write(f"moopt: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.write("moopt: interrupted.\n")
        return EXIT_INTERRUPTED
