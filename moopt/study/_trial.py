"""One trial: fit a candidate, convert it, check parity, measure it, record everything."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from moopt._config import Budgets
from moopt._errors import CandidateError, StudyError
from moopt._front import ObjectiveInfo
from moopt.search import Candidate, Family, convert, fit
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

    @property
    def infos(self) -> tuple[ObjectiveInfo, ...]:
        """The optimized objectives as the study records them."""
        return tuple(ObjectiveInfo(o.name, o.direction, o.unit) for o in self.objectives)

    @property
    def latency_key(self) -> str:
        """Metric the latency budget applies to (the optimized latency percentile)."""
        return next(o.name for o in self.objectives if o.name.startswith("latency_p"))

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


def build_model(candidate: Candidate, ctx: SearchContext) -> tuple[Any, OnnxModel, float, float]:
    """Fit and convert a candidate; returns the estimator, the model and both durations."""
    t0 = time.perf_counter()
    estimator = fit(
        candidate, ctx.space, ctx.split.train_features, ctx.split.train_labels, ctx.seed
    )
    t1 = time.perf_counter()
    model = convert(estimator, ctx.split.train_features)
    return estimator, model, t1 - t0, time.perf_counter() - t1


def evaluate(trial: optuna.Trial, candidate: Candidate, ctx: SearchContext) -> list[float]:
    """Evaluate ``candidate`` for ``trial``: set its constraints and records, return its values.

    Raises:
        CandidateError: Fitting, conversion or measurement failed.
    """
    estimator, model, fit_s, convert_s = build_model(candidate, ctx)
    test = ctx.split.test_features
    t0 = time.perf_counter()
    try:
        parity = check_parity(model, estimator, test)
        report = measure(
            ctx.objectives,
            model,
            EvalData(test, ctx.split.test_labels),
            ctx.settings,
            ctx.isolation,
        )
    except MeasurementError as exc:
        raise CandidateError("measure", str(exc)) from exc
    except Exception as exc:  # the estimator itself failed to predict the hold-out
        raise CandidateError("parity", f"{type(exc).__name__}: {exc}") from exc
    measure_s = time.perf_counter() - t0
    metrics = report.values()
    for key, value in ctx.constraints(metrics, 1.0 - parity.label_agreement).items():
        trial.set_constraint(key, value)
    store_artifact(ctx.artifacts, model)
    latency = report.measurements[ctx.latency_key].details
    trial.set_user_attr("family", candidate.family)
    trial.set_user_attr("params", dict(candidate.params))
    trial.set_user_attr("candidate_key", candidate.key)
    trial.set_user_attr("metrics", {k: float(v) for k, v in metrics.items()})
    trial.set_user_attr("model_sha256", model.sha256)
    trial.set_user_attr("runtime", ctx.settings.as_dict())
    trial.set_user_attr(
        "latency", {k: latency[k] for k in ("samples", "stop_reason", "intervals", "elapsed_s")}
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
    candidate = Candidate(trial.user_attrs["family"], trial.user_attrs["params"])
    _, model, _, _ = build_model(candidate, ctx)
    if model.sha256 != sha:
        raise StudyError(
            f"Trial {trial.number}'s model is not in {ctx.artifacts} and rebuilding it gave a "
            f"different model (sha256 {model.sha256[:12]} instead of {sha[:12]}); run this "
            "from the machine that measured it."
        )
    store_artifact(ctx.artifacts, model)
    return model
