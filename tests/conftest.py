"""Shared fixtures: small real models converted to ONNX, built once per session."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from skl2onnx import to_onnx
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from objectives import EvalData, OnnxModel


@dataclass(frozen=True)
class Fitted:
    estimator: Any
    model: OnnxModel


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(
        x.astype(np.float32), y, test_size=0.25, random_state=0, stratify=y
    )
    return xtr, xte, ytr, yte


def _fit(estimator: Any, digits: tuple[np.ndarray, ...]) -> Fitted:
    xtr, _, ytr, _ = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(xtr, ytr)
        onx = to_onnx(estimator, xtr[:1], options={id(estimator): {"zipmap": False}})
    return Fitted(estimator, OnnxModel(onx.SerializeToString()))


@pytest.fixture(scope="session")
def small_model(digits: tuple[np.ndarray, ...]) -> Fitted:
    """A logistic regression: a few KB, microseconds per row."""
    return _fit(LogisticRegression(max_iter=200), digits)


@pytest.fixture(scope="session")
def large_model(digits: tuple[np.ndarray, ...]) -> Fitted:
    """A 300-tree forest: megabytes, clearly slower and bigger than the logistic regression."""
    return _fit(RandomForestClassifier(n_estimators=300, random_state=0, n_jobs=1), digits)


@pytest.fixture(scope="session")
def holdout(digits: tuple[np.ndarray, ...]) -> EvalData:
    _, xte, _, yte = digits
    return EvalData(xte, yte)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the host's reference-speed history of the test run out of the user's cache."""
    old = os.environ.get("MOOPT_CACHE_DIR")
    os.environ["MOOPT_CACHE_DIR"] = str(tmp_path_factory.mktemp("moopt-cache"))
    yield
    if old is None:
        os.environ.pop("MOOPT_CACHE_DIR", None)
    else:
        os.environ["MOOPT_CACHE_DIR"] = old
