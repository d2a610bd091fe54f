"""Deployment knobs in the space, and early rejection under an accuracy floor."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

import moopt
from moopt import CandidateError
from moopt.search import (
    FAMILIES,
    Candidate,
    RuntimeSpace,
    TrainingStopped,
    convert,
    fit,
    quantize,
    resolve_space,
    suggest,
)


def test_quantization_is_offered_only_where_it_applies() -> None:
    space = resolve_space(tuple(FAMILIES))
    runtime = RuntimeSpace(threads=(1, 2), graph_optimization=("basic", "all"), quantize=True)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        candidate = suggest(trial, space, flat=True, runtime=runtime)
        quantizable = [n for n in trial.params if n.endswith(".quantize")]
        assert quantizable == ["mlp.quantize"]  # the only MatMul-based family
        assert candidate.runtime["threads"] in (1, 2)
        if candidate.family != "mlp":
            assert candidate.runtime["quantize"] is False
        seen.add((candidate.family, candidate.runtime["quantize"]))
        study.tell(trial, 0.0)
    assert ("mlp", True) in seen and ("mlp", False) in seen


def test_knobs_are_part_of_the_configuration() -> None:
    a = Candidate("mlp", {"hidden_units": 8}, {"threads": 1, "quantize": False})
    b = Candidate("mlp", {"hidden_units": 8}, {"threads": 2, "quantize": False})
    assert a.key != b.key


def test_int8_quantization_shrinks_an_mlp_and_refuses_a_linear_model(digits) -> None:
    xtr, _, ytr, _ = digits
    space = resolve_space(("mlp", "logreg"))
    mlp = fit(
        Candidate(
            "mlp", {"hidden_units": 64, "layers": 1, "alpha": 1e-4, "learning_rate_init": 1e-3}
        ),
        space,
        xtr,
        ytr,
        0,
    )
    model = convert(mlp, xtr)
    assert quantize(model).size_kb < model.size_kb / 2
    logreg = fit(Candidate("logreg", {"C": 1.0, "max_iter": 200}), space, xtr, ytr, 0)
    with pytest.raises(CandidateError, match=r"^quantize: "):
        quantize(convert(logreg, xtr))


def test_an_iterative_learner_stops_when_it_cannot_reach_the_floor(digits) -> None:
    xtr, _, ytr, _ = digits
    space = resolve_space(("gb",))
    slow = Candidate(
        "gb", {"n_estimators": 40, "max_depth": 1, "learning_rate": 0.02, "subsample": 1.0}
    )
    with pytest.raises(TrainingStopped) as stopped:
        fit(slow, space, xtr, ytr, 0, accuracy_floor=0.99)
    assert stopped.value.fraction == 0.25 and stopped.value.train_accuracy < 0.89
    # Below a floor it can reach, it trains to its full size, and predicts like a plain fit.
    staged = fit(slow, space, xtr, ytr, 0, accuracy_floor=0.3)
    plain = fit(slow, space, xtr, ytr, 0)
    assert staged.n_estimators_ == plain.n_estimators_ == 40
    np.testing.assert_allclose(staged.predict_proba(xtr), plain.predict_proba(xtr))


def test_early_rejected_candidates_are_infeasible_and_save_work(tmp_path) -> None:
    result = moopt.optimize(
        dataset="digits",
        families="logreg,gb",
        trials=4,
        seed=2,
        min_accuracy=0.999,
        out=str(tmp_path / "out"),
    )
    rejected = [
        t
        for t in result.study.trials
        if "early_rejected" in t.user_attrs and "cached_from" not in t.user_attrs
    ]
    assert len(rejected) == result.summary.early_rejected == 4
    assert result.summary.saved_s > 0
    for t in rejected:
        assert t.constraints["min_accuracy"] > 0  # the sampler learns the region
        assert "latency_p95_ms" not in t.user_attrs["metrics"]  # never measured
    assert result.front == ()
