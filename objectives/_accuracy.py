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


@dataclass(frozen=True)
class Accuracy:
    """Share of hold-out rows whose ONNX-predicted label equals the true label."""

    name: str = "accuracy"
    direction: Direction = "maximize"
    unit: str = ""
    isolated: bool = False

    @property
    def metrics(self) -> tuple[str, ...]:
        """The single metric ``accuracy``."""
        return (self.name,)

    def measure(self, model: OnnxModel, data: EvalData, settings: RuntimeSettings) -> Measurement:
        """Predict the hold-out with ONNX Runtime and score the labels.

        Raises:
            MeasurementError: No labels, or a label count that does not match the rows.
        """
        if data.labels is None:
            raise MeasurementError("Accuracy needs labels; pass data with a label column.")
        predicted, _ = predict_onnx(model, data.features)
        if predicted.shape[0] != len(data.labels):
            raise MeasurementError(
                f"Expected one predicted label per row ({len(data.labels)}), "
                f"got {predicted.shape[0]}."
            )
        value = float(np.mean(predicted == data.labels))
        return Measurement(self.name, {self.name: value}, {"rows": len(data.labels)})


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
