"""Candidates: a family and its hyperparameters, proposed by a trial, fitted and converted."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from moopt._errors import CandidateError
from moopt.search._space import Choice, Family, FloatRange, IntRange, RuntimeSpace
from objectives import OnnxModel

if TYPE_CHECKING:
    import numpy as np
    import optuna

FAMILY_PARAM = "family"


@dataclass(frozen=True)
class Candidate:
    """One configuration to evaluate: a model family, its hyperparameters, runtime knobs.

    Attributes:
        family: Family name.
        params: The family's hyperparameters.
        runtime: Deployment knobs: ``threads``, ``graph_optimization``, ``quantize`` (absent
            when not searched: the run's fixed settings apply).
    """

    family: str
    params: Mapping[str, Any]
    runtime: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A canonical string that equal configurations share (the evaluation cache's key)."""
        record: dict[str, Any] = {"family": self.family, "params": dict(self.params)}
        if self.runtime:
            record["runtime"] = dict(self.runtime)
        return json.dumps(record, sort_keys=True)


def _suggest_family(trial: optuna.trial.BaseTrial, family: Family) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, rng in family.params.items():
        full = f"{family.name}.{name}"
        if isinstance(rng, IntRange):
            params[name] = trial.suggest_int(full, rng.low, rng.high, log=rng.log)
        elif isinstance(rng, FloatRange):
            params[name] = trial.suggest_float(full, rng.low, rng.high, log=rng.log)
        elif isinstance(rng, Choice):
            params[name] = trial.suggest_categorical(full, list(rng.options))
    return params


def _suggest_runtime(
    trial: optuna.trial.BaseTrial,
    runtime: RuntimeSpace,
    family: Family,
    space: Mapping[str, Family],
    flat: bool,
) -> dict[str, Any]:
    knobs: dict[str, Any] = {}
    if len(runtime.threads) > 1:
        knobs["threads"] = trial.suggest_int(
            "runtime.threads", min(runtime.threads), max(runtime.threads)
        )
    else:
        knobs["threads"] = runtime.threads[0]
    if len(runtime.graph_optimization) > 1:
        knobs["graph_optimization"] = trial.suggest_categorical(
            "runtime.graph_optimization", list(runtime.graph_optimization)
        )
    else:
        knobs["graph_optimization"] = runtime.graph_optimization[0]
    knobs["quantize"] = False
    if runtime.quantize:
        for other in space.values():
            if other.quantizable and (flat or other.name == family.name):
                choice = trial.suggest_categorical(f"{other.name}.quantize", [False, True])
                if other.name == family.name:
                    knobs["quantize"] = bool(choice)
    return knobs


def suggest(
    trial: optuna.trial.BaseTrial,
    space: Mapping[str, Family],
    flat: bool = False,
    runtime: RuntimeSpace | None = None,
) -> Candidate:
    """Ask ``trial`` for a family and that family's hyperparameters.

    Args:
        trial: The trial.
        space: The families to choose from.
        flat: Also suggest every other family's hyperparameters (unused by this candidate),
            so that samplers which only cross over parameters present in every trial (Optuna's
            NSGA-II) cross over all of them.
        runtime: Deployment knobs to search too (None: none; the run's fixed settings apply).
            int8 quantization is offered only to families whose graph it applies to.
    """
    family = space[trial.suggest_categorical(FAMILY_PARAM, list(space))]
    params = _suggest_family(trial, family)
    if flat:
        for other in space.values():
            if other.name != family.name:
                _suggest_family(trial, other)
    knobs = _suggest_runtime(trial, runtime, family, space, flat) if runtime else {}
    return Candidate(family.name, params, knobs)


#: Share of an iterative learner's stages trained before the early check.
EARLY_FRACTION = 0.25
#: An iterative learner stops when its training accuracy after :data:`EARLY_FRACTION` of its
#: stages is below the accuracy floor by more than this.
EARLY_MARGIN = 0.10


class TrainingStopped(Exception):
    """An iterative learner was stopped early: it could not reach the accuracy floor.

    Attributes:
        train_accuracy: Its training accuracy when stopped.
        fraction: Share of its stages that had been trained.
        seconds: Time spent training until then.
    """

    def __init__(self, train_accuracy: float, fraction: float, seconds: float) -> None:
        super().__init__(
            f"training accuracy {train_accuracy:.3f} after {fraction:.0%} of its stages is more "
            f"than {EARLY_MARGIN} below the accuracy floor"
        )
        self.train_accuracy = train_accuracy
        self.fraction = fraction
        self.seconds = seconds


def _staged_fit(
    estimator: Any, family: Family, features: np.ndarray, labels: np.ndarray, floor: float
) -> None:
    import time

    assert family.stages is not None  # checked by the caller
    count_param, warm_param, cumulative = family.stages
    total = int(estimator.get_params()[count_param])
    first = max(1, int(total * EARLY_FRACTION))
    start = time.perf_counter()
    estimator.set_params(**{count_param: first, warm_param: True})
    estimator.fit(features, labels)
    train_accuracy = float(estimator.score(features, labels))
    if train_accuracy < floor - EARLY_MARGIN:
        raise TrainingStopped(train_accuracy, first / total, time.perf_counter() - start)
    if first < total:  # continue from the stages already trained, up to the full count
        estimator.set_params(**{count_param: total if cumulative else total - first})
        estimator.fit(features, labels)
    estimator.set_params(**{count_param: total, warm_param: False})


def fit(
    candidate: Candidate,
    space: Mapping[str, Family],
    features: np.ndarray,
    labels: np.ndarray,
    seed: int,
    accuracy_floor: float | None = None,
) -> Any:
    """Build the candidate's estimator and fit it.

    With an ``accuracy_floor``, an iterative learner (gradient boosting, MLP) first trains a
    quarter of its stages and stops (:class:`TrainingStopped`) when even its training accuracy
    is more than :data:`EARLY_MARGIN` below the floor.

    Raises:
        CandidateError: The estimator raised while fitting (stage ``fit``).
        TrainingStopped: Early rejection of an iterative learner.
    """
    family = space[candidate.family]
    estimator = family.build(candidate.params, seed)
    try:
        with warnings.catch_warnings():
            # Convergence warnings are a property of the candidate, visible in its accuracy.
            warnings.simplefilter("ignore")
            if accuracy_floor is not None and family.stages is not None:
                _staged_fit(estimator, family, features, labels, accuracy_floor)
            else:
                estimator.fit(features, labels)
    except TrainingStopped:
        raise
    except Exception as exc:  # any estimator error makes this one candidate fail
        raise CandidateError("fit", f"{type(exc).__name__}: {exc}") from exc
    return estimator


def quantize(model: OnnxModel) -> OnnxModel:
    """int8 dynamic quantization of the model's MatMul weights (ONNX Runtime's).

    Raises:
        CandidateError: The graph has nothing it applies to, or quantization failed.
    """
    import logging
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # it logs advice on every call
    try:
        with tempfile.TemporaryDirectory(prefix="moopt-quant-") as tmp:
            src, dst = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx"
            src.write_bytes(model.content)
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
            return OnnxModel(dst.read_bytes())
    except Exception as exc:  # ONNX Runtime's quantizer raises many types
        raise CandidateError("quantize", f"{type(exc).__name__}: {exc}") from exc
    finally:
        root.setLevel(level)


def _final_step(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


def convert(estimator: Any, sample: np.ndarray) -> OnnxModel:
    """Convert a fitted estimator to ONNX (float32 input, no ZipMap).

    Raises:
        CandidateError: skl2onnx could not convert it (stage ``convert``).
    """
    from skl2onnx import to_onnx

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onx = to_onnx(
                estimator, sample[:1], options={id(_final_step(estimator)): {"zipmap": False}}
            )
        return OnnxModel(onx.SerializeToString())
    except Exception as exc:  # skl2onnx raises many unrelated types
        raise CandidateError("convert", f"{type(exc).__name__}: {exc}") from exc
