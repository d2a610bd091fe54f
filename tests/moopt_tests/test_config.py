from __future__ import annotations

from pathlib import Path

import pytest

from moopt import ConfigError, make_config, read_config_file
from moopt.search import FAMILIES


def test_defaults_search_every_family() -> None:
    config = make_config({})
    assert config.families == tuple(FAMILIES)
    assert config.dataset == "digits" and config.batch_size == 1
    assert config.threads is None and config.graph_optimization is None  # searched knobs
    assert config.quantize is True
    assert config.budgets.as_dict() == {}


def test_budgets_and_families_are_parsed() -> None:
    config = make_config({"families": "rf, logreg", "max_latency_ms": 0.5, "min_accuracy": 0.9})
    assert config.families == ("rf", "logreg")
    assert config.budgets.as_dict() == {"max_latency_ms": 0.5, "min_accuracy": 0.9}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"families": "rf,forest"}, r"Unknown model family 'forest'\..*Expected a subset of"),
        ({"families": "rff"}, r"Did you mean 'rf'\?"),
        ({"trials": 0}, r"The 'trials' setting must be an int in the range \[1, inf\)\. Got 0"),
        ({"trials": 2.5}, r"'trials' setting must be an int"),
        ({"min_accuracy": 1.5}, r"'min_accuracy' setting must be a number in the range \[0, 1\]"),
        ({"max_latency_ms": 0}, r"'max_latency_ms' setting must be a number in the range \(0,"),
        ({"test_size": 0.95}, r"'test_size' setting must be a number in the range \(0, 0.9\]"),
        ({"threads": True}, r"'threads' setting must be an int"),
        ({"graph_optimization": "max"}, r"must be one of disable, basic, extended, all"),
        ({"trails": 3}, r"Unknown setting 'trails'\. Did you mean 'trials'\?"),
        ({"scorer": "r2"}, r"The 'scorer' setting must be one of accuracy, balanced_accuracy"),
        ({"space": {"rf": {"n_estimators": [300, 10]}}, "families": "rf"}, None),
        (
            {"space": {"svc": {"C": [1, 2]}}, "families": "rf"},
            r"\[space\.svc\] sets ranges for "
            "a family that is not searched",
        ),
    ],
)
def test_invalid_settings_name_the_problem(settings: dict, message: str | None) -> None:
    if message is None:  # range errors surface when the space is resolved
        from moopt.search import resolve_space

        config = make_config(settings)
        with pytest.raises(ConfigError, match=r"space\.rf\.n_estimators has low > high"):
            resolve_space(config.families, config.space)
        return
    with pytest.raises(ConfigError, match=message):
        make_config(settings)


def test_config_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "moopt.toml"
    path.write_text('dataset = "iris"\ntrials = 7\n[space.rf]\nn_estimators = [5, 20]\n')
    config = make_config(read_config_file(path))
    assert (config.dataset, config.trials) == ("iris", 7)
    assert config.space == {"rf": {"n_estimators": [5, 20]}}


def test_unreadable_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_config_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("trials = = 3\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        read_config_file(bad)
