from __future__ import annotations

import numpy as np
import onnx
import pytest

from objectives import (
    Accuracy,
    EvalData,
    MeasurementError,
    OnnxModel,
    RuntimeSettings,
    check_parity,
)


def test_accuracy_is_computed_from_the_onnx_labels(small_model, holdout) -> None:
    measured = Accuracy().measure(small_model.model, holdout, RuntimeSettings())
    import onnxruntime as ort

    session = ort.InferenceSession(small_model.model.content)
    labels = session.run(None, {session.get_inputs()[0].name: holdout.features})[0]
    assert measured.values["accuracy"] == pytest.approx(np.mean(labels == holdout.labels))
    assert measured.details["rows"] == len(holdout.labels)


def test_accuracy_needs_labels(small_model, holdout) -> None:
    with pytest.raises(MeasurementError, match="needs labels"):
        Accuracy().measure(small_model.model, EvalData(holdout.features), RuntimeSettings())


def test_faithful_conversion_has_full_parity(small_model, large_model, holdout) -> None:
    for fitted in (small_model, large_model):
        parity = check_parity(fitted.model, fitted.estimator, holdout.features)
        assert parity.label_agreement >= 0.99
        assert parity.max_score_diff is not None and parity.max_score_diff < 1e-4


def test_a_model_that_drifted_from_its_estimator_loses_parity(small_model, holdout) -> None:
    """Perturb the ONNX coefficients: the model still runs, but no longer matches scikit-learn."""
    graph = onnx.load_from_string(small_model.model.content)
    rng = np.random.default_rng(0)
    touched = 0
    for node in graph.graph.node:
        for attr in node.attribute:
            if attr.name == "coefficients":
                noisy = np.asarray(attr.floats) * rng.normal(1.0, 3.0, len(attr.floats))
                del attr.floats[:]
                attr.floats.extend(noisy.astype(np.float32).tolist())
                touched += 1
    assert touched == 1
    drifted = OnnxModel(graph.SerializeToString())
    parity = check_parity(drifted, small_model.estimator, holdout.features)
    assert parity.label_agreement < 0.9
    assert parity.max_score_diff is not None and parity.max_score_diff > 0.1
