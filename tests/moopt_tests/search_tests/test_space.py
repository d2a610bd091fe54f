"""The conditional space: each family proposes only its own hyperparameters."""

from __future__ import annotations

import optuna
import pytest

from moopt import ConfigError
from moopt.search import FAMILIES, Candidate, IntRange, known_anchor, resolve_space, suggest


def test_every_family_builds_a_classifier() -> None:
    assert len(FAMILIES) >= 6
    for family in FAMILIES.values():
        trial = optuna.trial.FixedTrial(
            {"family": family.name}
            | {f"{family.name}.{k}": _midpoint(v) for k, v in family.params.items()}
        )
        candidate = suggest(trial, FAMILIES)
        assert candidate.family == family.name
        assert set(candidate.params) == set(family.params)
        assert hasattr(family.build(candidate.params, 0), "fit")


def _midpoint(rng):
    if hasattr(rng, "options"):
        return rng.options[0]
    if isinstance(rng, IntRange):
        return (rng.low + rng.high) // 2
    return (rng.low + rng.high) / 2


def test_trials_only_carry_their_familys_parameters() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = resolve_space(("rf", "logreg", "knn"))
    for _ in range(30):
        trial = study.ask()
        candidate = suggest(trial, space)
        prefixes = {name.split(".")[0] for name in trial.params if name != "family"}
        assert prefixes == {candidate.family}
        study.tell(trial, 0.0)


def test_overrides_narrow_a_range() -> None:
    space = resolve_space(("rf",), {"rf": {"n_estimators": [5, 8], "max_features": ["sqrt"]}})
    assert space["rf"].params["n_estimators"] == IntRange(5, 8, log=True)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        c = suggest(study.ask(), space)
        assert 5 <= c.params["n_estimators"] <= 8 and c.params["max_features"] == "sqrt"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rf": {"depth": [1, 2]}}, r"Unknown hyperparameter 'depth' for family 'rf'"),
        ({"rf": {"n_estimators": [0, 10]}}, r"log scale, so low must be > 0"),
        ({"rf": {"n_estimators": [1.5, 10]}}, r"must be a pair of integers"),
        ({"rf": {"max_features": ["all"]}}, r"unknown options \['all'\]"),
        ({"rf": {"n_estimators": 10}}, r"must be a \[low, high\] pair"),
    ],
)
def test_bad_overrides(overrides, message) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_space(("rf",), overrides)


def test_equal_configurations_share_a_key() -> None:
    a = Candidate("rf", {"n_estimators": 10, "max_depth": 3})
    b = Candidate("rf", {"max_depth": 3, "n_estimators": 10})
    assert a.key == b.key != Candidate("et", dict(a.params)).key


def test_known_anchor_by_family_then_by_an_agreed_parameter_name() -> None:
    assert known_anchor("gb", "learning_rate") == FAMILIES["gb"].anchor["learning_rate"]
    assert known_anchor("gb", "n_estimators") is None  # a size: the low corner's
    assert known_anchor("rf", "C") is None  # a family moopt knows, without that anchor
    # A family moopt does not know: the anchor every built-in family with that name agrees on.
    assert known_anchor("boosting", "learning_rate") == FAMILIES["gb"].anchor["learning_rate"]
    c = FAMILIES["logreg"].anchor["C"]
    assert c == FAMILIES["svc"].anchor["C"] == known_anchor("linear", "C")
    assert known_anchor("boosting", "depth") is None
