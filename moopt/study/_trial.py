"""One trial: fit a candidate, convert it, check parity, measure it, record everything."""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from moopt._config import Budgets
from moopt._errors import CandidateError, StudyError
from moopt._front import ObjectiveInfo
from moopt.search import (
    Candidate,
    Family,
    RuntimeSpace,
    TrainingStopped,
    convert,
    fit,
    quantize,
)
from objectives import (
    EvalData,
    Isolation,
    MeasurementError,
    Objective,
    OnnxModel,
    RuntimeSettings,
    check_parity,
    measure,
)

if TYPE_CHECKING:
    from moopt._data import Split

PARITY_CONSTRAINT = "parity"


@dataclass(frozen=True)
class SearchContext:
    """What every trial of a run shares."""

    space: Mapping[str, Family]
    split: Split
    objectives: Sequence[Objective]
    settings: RuntimeSettings
    budgets: Budgets
    parity_tolerance: float
    seed: int
    isolation: Isolation
    artifacts: Path
    runtime: RuntimeSpace = field(default_factory=RuntimeSpace)
    timeout_s: float | None = None
    memory_cap_mb: float | None = None

    def settings_for(self, knobs: Mapping[str, Any]) -> RuntimeSettings:
        """How a candidate with these deployment knobs runs (the run's settings otherwise)."""
        return replace(
            self.settings,
            intra_op_threads=knobs.get("threads", self.settings.intra_op_threads),
            graph_optimization=knobs.get("graph_optimization", self.settings.graph_optimization),
        )

    @property
    def infos(self) -> tuple[ObjectiveInfo, ...]:
        """The optimized objectives as the study records them."""
        return tuple(ObjectiveInfo(o.name, o.direction, o.unit) for o in self.objectives)

    @property
    def latency_key(self) -> str:
        """Metric the latency budget applies to (the optimized latency percentile)."""
        return next(o.name for o in self.objectives if o.name.startswith("latency_p"))

    @property
    def constraint_keys(self) -> tuple[str, ...]:
        """The constraints every trial of the run carries: one per budget set, and parity."""
        b = self.budgets
        keys = [
            k
            for k, v in (
                ("max_latency_ms", b.max_latency_ms),
                ("max_memory_mb", b.max_memory_mb),
                ("min_accuracy", b.min_accuracy),
            )
            if v is not None
        ]
        return (*keys, PARITY_CONSTRAINT)

    def constraints(self, metrics: Mapping[str, float], disagreement: float) -> dict[str, float]:
        """Constraint values (<= 0 feasible): one per budget that is set, and parity."""
        values: dict[str, float] = {}
        b = self.budgets
        if b.max_latency_ms is not None:
            values["max_latency_ms"] = metrics[self.latency_key] - b.max_latency_ms
        if b.max_memory_mb is not None:
            values["max_memory_mb"] = metrics["peak_memory_mb"] - b.max_memory_mb
        if b.min_accuracy is not None:
            values["min_accuracy"] = b.min_accuracy - metrics["accuracy"]
        values[PARITY_CONSTRAINT] = disagreement - self.parity_tolerance
        return values


def artifact_path(artifacts: Path, sha256: str) -> Path:
    """Where the ONNX model with this hash is kept."""
    return artifacts / f"{sha256}.onnx"


def store_artifact(artifacts: Path, model: OnnxModel) -> Path:
    """Keep the model under its hash (written whole, then renamed into place)."""
    path = artifact_path(artifacts, model.sha256)
    if not path.exists():
        artifacts.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(model.content)
        os.replace(tmp, path)
    return path


class _TrialTimeout(BaseException):
    """Raised by the alarm; a BaseException, like KeyboardInterrupt, so no estimator code's
    ``except Exception`` swallows it on the way out."""


@contextlib.contextmanager
def deadline(seconds: float | None, stage: str) -> Iterator[None]:
    """Stop the work inside after ``seconds`` (a CandidateError of stage ``timeout``).

    Uses a real-time interval timer, so it works in the main thread only (where the search
    loop runs); elsewhere it does not limit anything.
    """
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise _TrialTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _TrialTimeout:
        raise CandidateError(
            "timeout",
            f"{stage} took longer than the per-trial limit of {seconds:g} s (trial_timeout_s)",
        ) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _TrialOverMemory(BaseException):
    """Raised in the main thread when the watchdog saw the trial exceed its memory cap."""


@contextlib.contextmanager
def memory_cap(megabytes: float | None, stage: str) -> Iterator[None]:
    """Stop the work inside once this process's resident memory has grown by ``megabytes``.

    A watchdog thread polls the resident memory every 20 ms and, past the cap, signals the
    main thread (SIGUSR1), which stops with a CandidateError of stage ``memory``. Main thread
    only; elsewhere it does not limit anything. Allocations faster than the poll can overshoot
    the cap before they are stopped.
    """
    if not megabytes or threading.current_thread() is not threading.main_thread():
        yield
        return
    import psutil

    process = psutil.Process()
    start = process.memory_info().rss
    limit = start + megabytes * 1_000_000
    stop = threading.Event()
    peak = [start]

    def watch() -> None:
        while not stop.wait(0.02):
            rss = process.memory_info().rss
            peak[0] = max(peak[0], rss)
            if rss > limit:
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)
                return

    def over(signum: int, frame: Any) -> None:
        raise _TrialOverMemory

    previous = signal.signal(signal.SIGUSR1, over)
    watchdog = threading.Thread(target=watch, daemon=True)
    watchdog.start()
    try:
        yield
    except _TrialOverMemory:
        grown = (peak[0] - start) / 1_000_000
        raise CandidateError(
            "memory",
            f"{stage} grew the worker's memory by {grown:.0f} MB, over the per-trial cap of "
            f"{megabytes:g} MB (trial_memory_mb)",
        ) from None
    finally:
        stop.set()
        watchdog.join()
        signal.signal(signal.SIGUSR1, previous)


def build_model(candidate: Candidate, ctx: SearchContext) -> tuple[Any, OnnxModel, float, float]:
    """Fit and convert a candidate; returns the estimator, the model and both durations.

    Raises:
        CandidateError: Fitting, conversion or quantization failed.
        TrainingStopped: An iterative learner could not reach the accuracy floor.
    """
    t0 = time.perf_counter()
    estimator = fit(
        candidate,
        ctx.space,
        ctx.split.train_features,
        ctx.split.train_labels,
        ctx.seed,
        accuracy_floor=ctx.budgets.min_accuracy,
    )
    t1 = time.perf_counter()
    model = convert(estimator, ctx.split.train_features)
    if candidate.runtime.get("quantize"):
        model = quantize(model)
    return estimator, model, t1 - t0, time.perf_counter() - t1


def _typical_measure_s(trial: optuna.Trial) -> float:
    """Median seconds of an isolated measurement so far in the study (0.5 before any)."""
    seconds = [
        t.user_attrs["seconds"]["measure"]
        for t in trial.study.get_trials(deepcopy=False)
        if "seconds" in t.user_attrs and "early_rejected" not in t.user_attrs
    ]
    return float(statistics.median(seconds)) if seconds else 0.5


def _placeholder(trial: optuna.Trial, name: str, direction: str) -> float:
    """A value no measured trial is worse than, for an objective that was not measured."""
    seen = [
        t.user_attrs["metrics"][name]
        for t in trial.study.get_trials(deepcopy=False)
        if t.state == optuna.trial.TrialState.COMPLETE and name in t.user_attrs.get("metrics", {})
    ]
    if direction == "maximize":
        return float(min(seen)) if seen else 0.0
    return float(max(seen)) * 2 if seen else 1e3


def _reject_early(
    trial: optuna.Trial,
    candidate: Candidate,
    ctx: SearchContext,
    metrics: Mapping[str, float],
    reason: str,
    saved_s: float,
) -> list[float]:
    """Record a candidate stopped before its expensive measurements, infeasible by its floor.

    Every constraint is set (unmeasured ones at 0); the accuracy floor's is violated, so the
    sampler learns the region. Objectives not measured get placeholder values no measured
    trial is worse than; the trial never enters the front.
    """
    floor = ctx.budgets.min_accuracy if ctx.budgets.min_accuracy is not None else 1.0
    for key in ctx.constraint_keys:
        trial.set_constraint(key, floor - metrics["accuracy"] if key == "min_accuracy" else 0.0)
    trial.set_user_attr("family", candidate.family)
    trial.set_user_attr("params", dict(candidate.params))
    trial.set_user_attr("knobs", dict(candidate.runtime))
    trial.set_user_attr("metrics", {k: float(v) for k, v in metrics.items()})
    trial.set_user_attr("early_rejected", {"reason": reason, "saved_s": round(saved_s, 3)})
    return [
        float(metrics[o.name]) if o.name in metrics else _placeholder(trial, o.name, o.direction)
        for o in ctx.objectives
    ]


def evaluate(trial: optuna.Trial, candidate: Candidate, ctx: SearchContext) -> list[float]:
    """Evaluate ``candidate`` for ``trial``: set its constraints and records, return its values.

    With an accuracy floor, a candidate that cannot reach it is stopped before the expensive
    work (see :func:`_reject_early`): an iterative learner after a quarter of its training,
    any other before its latency and memory are measured.

    Raises:
        CandidateError: Fitting, conversion or measurement failed.
    """
    try:
        with (
            deadline(ctx.timeout_s, "training and conversion"),
            memory_cap(ctx.memory_cap_mb, "training and conversion"),
        ):
            estimator, model, fit_s, convert_s = build_model(candidate, ctx)
    except TrainingStopped as stop:
        saved = stop.seconds * (1 / stop.fraction - 1) + _typical_measure_s(trial)
        return _reject_early(
            trial,
            candidate,
            ctx,
            {"accuracy": stop.train_accuracy},
            f"training stopped: {stop}",
            saved,
        )
    test = EvalData(ctx.split.test_features, ctx.split.test_labels)
    settings = ctx.settings_for(candidate.runtime)
    local = [o for o in ctx.objectives if not o.isolated]
    isolated = [o for o in ctx.objectives if o.isolated]
    t0 = time.perf_counter()
    try:
        parity = check_parity(model, estimator, test.features)
        quality = measure(local, model, test, settings, ctx.isolation)
        floor = ctx.budgets.min_accuracy
        if floor is not None and quality.values()["accuracy"] < floor:
            metrics = {**quality.values(), "model_size_kb": model.size_kb}
            return _reject_early(
                trial,
                candidate,
                ctx,
                metrics,
                f"accuracy {metrics['accuracy']:.4f} is below the floor {floor}",
                _typical_measure_s(trial),
            )
        report = measure(isolated, model, test, settings, ctx.isolation)
    except MeasurementError as exc:
        raise CandidateError("measure", str(exc)) from exc
    except Exception as exc:  # the estimator itself failed to predict the hold-out
        raise CandidateError("parity", f"{type(exc).__name__}: {exc}") from exc
    measure_s = time.perf_counter() - t0
    metrics = {**quality.values(), **report.values()}
    for key, value in ctx.constraints(metrics, 1.0 - parity.label_agreement).items():
        trial.set_constraint(key, value)
    store_artifact(ctx.artifacts, model)
    latency = report.measurements[ctx.latency_key].details
    trial.set_user_attr("metrics", {k: float(v) for k, v in metrics.items()})
    trial.set_user_attr("model_sha256", model.sha256)
    trial.set_user_attr("knobs", dict(candidate.runtime))
    trial.set_user_attr(
        "runtime", {**settings.as_dict(), "quantized": bool(candidate.runtime.get("quantize"))}
    )
    trial.set_user_attr(
        "latency",
        {
            k: latency.get(k)
            for k in (
                "samples",
                "stop_reason",
                "intervals",
                "elapsed_s",
                "estimator",
                "quiet_share",
                "slowdown",
            )
        },
    )
    trial.set_user_attr(
        "memory_method", report.measurements["peak_memory_mb"].details.get("method")
    )
    trial.set_user_attr("parity", parity.as_dict())
    trial.set_user_attr("host", report.host.as_dict())
    trial.set_user_attr("measurement", {"pinned_cpus": report.cpus, "repeats": report.repeats})
    trial.set_user_attr(
        "seconds",
        {"fit": round(fit_s, 4), "convert": round(convert_s, 4), "measure": round(measure_s, 4)},
    )
    return [float(metrics[o.name]) for o in ctx.objectives]


def replay_cached(trial: optuna.Trial, source: optuna.trial.FrozenTrial) -> list[float] | None:
    """Give ``trial`` the outcome of an earlier trial with the same configuration.

    Returns:
        The earlier values, or None when the earlier trial failed (``trial`` should fail too).
    """
    for key, value in source.user_attrs.items():
        trial.set_user_attr(key, value)
    trial.set_user_attr("cached_from", source.number)
    if source.state != optuna.trial.TrialState.COMPLETE:
        return None
    for key, value in source.constraints.items():
        trial.set_constraint(key, value)
    return list(source.values)


def load_model(trial: optuna.trial.FrozenTrial, ctx: SearchContext) -> OnnxModel:
    """The trial's ONNX model: from the artifact store, or rebuilt and checked by its hash.

    Raises:
        StudyError: The model is not stored here and rebuilding it gives another model.
    """
    sha = trial.user_attrs["model_sha256"]
    path = artifact_path(ctx.artifacts, sha)
    if path.exists():
        return OnnxModel(path.read_bytes())
    candidate = Candidate(
        trial.user_attrs["family"], trial.user_attrs["params"], trial.user_attrs.get("knobs", {})
    )
    _, model, _, _ = build_model(candidate, ctx)
    if model.sha256 != sha:
        raise StudyError(
            f"Trial {trial.number}'s model is not in {ctx.artifacts} and rebuilding it gave a "
            f"different model (sha256 {model.sha256[:12]} instead of {sha[:12]}); run this "
            "from the machine that measured it."
        )
    store_artifact(ctx.artifacts, model)
    return model
