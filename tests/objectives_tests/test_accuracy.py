from __future__ import annotations

import warnings

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


@pytest.mark.parametrize("scorer", ["accuracy", "balanced_accuracy", "f1_macro", "roc_auc"])
def test_classification_scorers_match_scikit_learn(scorer, large_model, holdout) -> None:
    from sklearn import metrics

    import objectives

    labels, scores = objectives.predict_onnx(large_model.model, holdout.features)
    expected = {
        "accuracy": metrics.accuracy_score(holdout.labels, labels),
        "balanced_accuracy": metrics.balanced_accuracy_score(holdout.labels, labels),
        "f1_macro": metrics.f1_score(holdout.labels, labels, average="macro"),
        "roc_auc": metrics.roc_auc_score(holdout.labels, scores, multi_class="ovr"),
    }[scorer]
    objective = Accuracy(scorer=scorer)
    m = objective.measure(large_model.model, holdout, RuntimeSettings())
    assert objective.name == scorer and objective.direction == "maximize"
    assert m.values[scorer] == pytest.approx(expected)
    assert m.values["accuracy"] == pytest.approx(metrics.accuracy_score(holdout.labels, labels))


def test_regression_scorers_on_a_regression_model() -> None:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    x, y = load_diabetes(return_X_y=True)
    x = x.astype(np.float32)
    ridge = Ridge().fit(x[:300], y[:300])
    model = OnnxModel(to_onnx(ridge, x[:1]).SerializeToString())
    data = EvalData(x[300:], y[300:])
    predicted = ridge.predict(x[300:])
    r2 = Accuracy(scorer="r2").measure(model, data, RuntimeSettings()).values["r2"]
    rmse = Accuracy(scorer="rmse").measure(model, data, RuntimeSettings()).values["rmse"]
    mae = Accuracy(scorer="mae").measure(model, data, RuntimeSettings()).values["mae"]
    assert Accuracy(scorer="rmse").direction == "minimize" == Accuracy(scorer="mae").direction
    assert r2 == pytest.approx(
        1 - np.sum((y[300:] - predicted) ** 2) / np.sum((y[300:] - y[300:].mean()) ** 2), rel=1e-4
    )
    assert rmse == pytest.approx(np.sqrt(np.mean((y[300:] - predicted) ** 2)), rel=1e-4)
    assert mae == pytest.approx(np.mean(np.abs(y[300:] - predicted)), rel=1e-4)


def test_roc_auc_needs_probabilities(holdout, digits) -> None:
    from skl2onnx import to_onnx
    from sklearn.svm import SVC

    xtr, _, ytr, _ = digits
    svc = SVC().fit(xtr, ytr)  # no probability output: decision values only
    with warnings.catch_warnings():  # skl2onnx reads SVC attributes scikit-learn deprecates
        warnings.simplefilter("ignore", FutureWarning)
        model = OnnxModel(to_onnx(svc, xtr[:1]).SerializeToString())
    with pytest.raises(MeasurementError, match="roc_auc"):
        Accuracy(scorer="roc_auc").measure(model, holdout, RuntimeSettings())


def test_unknown_scorer(small_model, holdout) -> None:
    with pytest.raises(MeasurementError, match=r"Unknown scorer 'auc'\. Expected one of"):
        Accuracy(scorer="auc").measure(small_model.model, holdout, RuntimeSettings())
