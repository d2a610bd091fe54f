"""Candidates: a family and its hyperparameters, proposed by a trial, fitted and converted."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moopt._errors import CandidateError
from moopt.search._space import Choice, Family, FloatRange, IntRange
from objectives import OnnxModel

if TYPE_CHECKING:
    import numpy as np
    import optuna

FAMILY_PARAM = "family"


@dataclass(frozen=True)
class Candidate:
    """One configuration to evaluate: a model family and its hyperparameters."""

    family: str
    params: Mapping[str, Any]

    @property
    def key(self) -> str:
        """A canonical string that equal configurations share (the evaluation cache's key)."""
        return json.dumps({"family": self.family, "params": dict(self.params)}, sort_keys=True)


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


def suggest(
    trial: optuna.trial.BaseTrial, space: Mapping[str, Family], flat: bool = False
) -> Candidate:
    """Ask ``trial`` for a family and that family's hyperparameters.

    Args:
        trial: The trial.
        space: The families to choose from.
        flat: Also suggest every other family's hyperparameters (unused by this candidate),
            so that samplers which only cross over parameters present in every trial (Optuna's
            NSGA-II) cross over all of them.
    """
    family = space[trial.suggest_categorical(FAMILY_PARAM, list(space))]
    params = _suggest_family(trial, family)
    if flat:
        for other in space.values():
            if other.name != family.name:
                _suggest_family(trial, other)
    return Candidate(family.name, params)


def fit(
    candidate: Candidate,
    space: Mapping[str, Family],
    features: np.ndarray,
    labels: np.ndarray,
    seed: int,
) -> Any:
    """Build the candidate's estimator and fit it.

    Raises:
        CandidateError: The estimator raised while fitting (stage ``fit``).
    """
    estimator = space[candidate.family].build(candidate.params, seed)
    try:
        with warnings.catch_warnings():
            # Convergence warnings are a property of the candidate, visible in its accuracy.
            warnings.simplefilter("ignore")
            estimator.fit(features, labels)
    except Exception as exc:  # any estimator error makes this one candidate fail
        raise CandidateError("fit", f"{type(exc).__name__}: {exc}") from exc
    return estimator


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
