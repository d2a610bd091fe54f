"""Accuracy: the quality of the labels the ONNX model itself predicts on the hold-out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from objectives._base import (
    Direction,
    EvalData,
    Measurement,
    MeasurementError,
    OnnxModel,
    RuntimeSettings,
)
from objectives._session import open_session, run

_EVAL_BATCH = 4096


def predict_onnx(model: OnnxModel, features: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels and, when the model has a second output, its scores, from ONNX Runtime.

    The model runs with default (one-thread) settings in batches, so that a large hold-out
    does not need one huge tensor.
    """
    session = open_session(model.content, RuntimeSettings())
    labels: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for start in range(0, len(features), _EVAL_BATCH):
        outputs = run(session, np.ascontiguousarray(features[start : start + _EVAL_BATCH]))
        labels.append(np.asarray(outputs[0]).reshape(-1))
        if len(outputs) > 1:
            scores.append(np.asarray(outputs[1]))
    return np.concatenate(labels), (np.concatenate(scores) if scores else None)


#: Every scorer: its direction and the kind of model it applies to.
SCORERS: dict[str, tuple[Direction, str]] = {
    "accuracy": ("maximize", "classification"),
    "balanced_accuracy": ("maximize", "classification"),
    "f1_macro": ("maximize", "classification"),
    "roc_auc": ("maximize", "classification"),
    "r2": ("maximize", "regression"),
    "rmse": ("minimize", "regression"),
    "mae": ("minimize", "regression"),
}


def _score(
    scorer: str, truth: np.ndarray, predicted: np.ndarray, scores: np.ndarray | None
) -> float:
    from sklearn import metrics

    if scorer == "accuracy":
        return float(np.mean(predicted == truth))
    if scorer == "balanced_accuracy":
        return float(metrics.balanced_accuracy_score(truth, predicted))
    if scorer == "f1_macro":
        return float(metrics.f1_score(truth, predicted, average="macro"))
    if scorer == "roc_auc":
        if scores is None or scores.ndim != 2:
            raise MeasurementError(
                "roc_auc needs class probabilities, but the model has no "
                "probability output; use another scorer."
            )
        try:
            if scores.shape[1] == 2:
                return float(metrics.roc_auc_score(truth, scores[:, 1]))
            return float(
                metrics.roc_auc_score(
                    truth, scores, multi_class="ovr", labels=list(range(scores.shape[1]))
                )
            )
        except ValueError as exc:
            raise MeasurementError(
                f"roc_auc cannot be computed from the model's scores: {exc} "
                "Use a model with probabilities or another scorer."
            ) from exc
    values = predicted.astype(float)
    if scorer == "r2":
        return float(metrics.r2_score(truth, values))
    if scorer == "rmse":
        return float(np.sqrt(np.mean((truth - values) ** 2)))
    return float(np.mean(np.abs(truth - values)))  # mae


@dataclass(frozen=True)
class Accuracy:
    """Quality of what the ONNX model itself predicts on the hold-out.

    Attributes:
        scorer: One of :data:`SCORERS`. The objective is named after it; classification
            scorers other than ``accuracy`` also report plain ``accuracy``.
    """

    scorer: str = "accuracy"
    unit: str = ""
    isolated: bool = False

    @property
    def name(self) -> str:
        """The scorer's name."""
        return self.scorer

    @property
    def direction(self) -> Direction:
        """``minimize`` for the error scorers (rmse, mae), ``maximize`` otherwise."""
        return SCORERS[self.scorer][0] if self.scorer in SCORERS else "maximize"

    @property
    def metrics(self) -> tuple[str, ...]:
        """The scorer, and ``accuracy`` for classification scorers."""
        kind = SCORERS.get(self.scorer, ("", ""))[1]
        if kind == "classification" and self.scorer != "accuracy":
            return (self.scorer, "accuracy")
        return (self.scorer,)

    def measure(self, model: OnnxModel, data: EvalData, settings: RuntimeSettings) -> Measurement:
        """Predict the hold-out with ONNX Runtime and score the predictions.

        Raises:
            MeasurementError: Unknown scorer, no labels, a prediction count that does not match
                the rows, or a scorer the model's outputs cannot serve.
        """
        if self.scorer not in SCORERS:
            raise MeasurementError(
                f"Unknown scorer '{self.scorer}'. Expected one of {', '.join(SCORERS)}."
            )
        if data.labels is None:
            raise MeasurementError("Accuracy needs labels; pass data with a label column.")
        predicted, scores = predict_onnx(model, data.features)
        if predicted.shape[0] != len(data.labels):
            raise MeasurementError(
                f"Expected one prediction per row ({len(data.labels)}), got {predicted.shape[0]}."
            )
        values = {m: _score(m, data.labels, predicted, scores) for m in self.metrics}
        return Measurement(self.name, values, {"rows": len(data.labels)})


@dataclass(frozen=True)
class Parity:
    """How faithfully the ONNX model reproduces the scikit-learn model it came from.

    Attributes:
        label_agreement: Share of rows where both predict the same label.
        max_score_diff: Largest absolute difference between their class probabilities
            (None when the estimator has no ``predict_proba``).
    """

    label_agreement: float
    max_score_diff: float | None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {"label_agreement": self.label_agreement, "max_score_diff": self.max_score_diff}


def check_parity(model: OnnxModel, estimator: Any, features: np.ndarray) -> Parity:
    """Compare the ONNX model's predictions with the fitted scikit-learn ``estimator``."""
    onnx_labels, onnx_scores = predict_onnx(model, features)
    sk_labels = np.asarray(estimator.predict(features)).reshape(-1)
    agreement = float(np.mean(onnx_labels == sk_labels))
    diff: float | None = None
    if onnx_scores is not None and hasattr(estimator, "predict_proba"):
        try:
            proba = np.asarray(estimator.predict_proba(features))
        except AttributeError:  # e.g. SVC(probability=False) exposes the attribute but raises
            proba = None
        if proba is not None and proba.shape == onnx_scores.shape:
            diff = float(np.max(np.abs(proba - onnx_scores)))
    return Parity(agreement, diff)
