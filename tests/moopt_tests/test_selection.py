"""Selection policies on a hand-built front where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from moopt import ConfigError, ObjectiveInfo
from moopt._selection import (
    Member,
    NoFeasibleMember,
    Policy,
    knee_scores,
    parse_weights,
    select,
)

OBJ = [
    ObjectiveInfo("accuracy", "maximize", ""),
    ObjectiveInfo("latency_p95_ms", "minimize", "ms"),
    ObjectiveInfo("peak_memory_mb", "minimize", "MB"),
]


def m(trial: int, acc: float, lat: float, mem: float, family: str = "rf") -> Member:
    return Member(trial, family, {"accuracy": acc, "latency_p95_ms": lat, "peak_memory_mb": mem})


FRONT = [
    m(1, 0.99, 2.00, 40.0, "svc"),  # most accurate, slow
    m(2, 0.97, 0.10, 12.0, "mlp"),  # the knee: nearly as accurate, 20x faster
    m(3, 0.95, 0.05, 11.0, "logreg"),
    m(4, 0.80, 0.01, 10.0, "logreg"),  # fastest and smallest, poor
]


def test_best_accuracy_within_budgets() -> None:
    assert select(FRONT, OBJ, Policy()).winner.trial == 1
    s = select(FRONT, OBJ, Policy(max_latency_ms=0.5))
    assert s.winner.trial == 2
    assert s.slack == {"max_latency_ms": pytest.approx(0.4)}
    assert s.reasons[1] == "breaks max_latency_ms: 2 ms > 0.5 ms"
    assert s.reasons[3].startswith("less accurate: 0.95 accuracy")


def test_fastest_and_smallest_above_a_floor() -> None:
    s = select(FRONT, OBJ, Policy("fastest", min_accuracy=0.9))
    assert s.winner.trial == 3
    assert s.slack == {"min_accuracy": pytest.approx(0.05)}
    assert s.reasons[4] == "breaks min_accuracy: 0.8 < 0.9"
    assert s.reasons[2].startswith("slower: ")
    assert select(FRONT, OBJ, Policy("smallest")).winner.trial == 4
    assert select(FRONT, OBJ, Policy("smallest", min_accuracy=0.96)).winner.trial == 2


def test_knee_is_the_largest_trade_off() -> None:
    s = select(FRONT, OBJ, Policy("knee"))
    assert s.winner.trial == 2
    assert "farther from the knee" in s.reasons[1]
    # 2-D check by hand: extremes (0, 1) and (1, 0); (0.2, 0.2) lies farthest below the line.
    scores = knee_scores(np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.2], [0.6, 0.5]]))
    assert int(np.argmax(scores)) == 2


def test_weighted_preferences() -> None:
    speed = parse_weights("latency_p95_ms=1", OBJ)
    assert select(FRONT, OBJ, Policy("weighted", weights=speed)).winner.trial == 4
    quality = parse_weights("accuracy=1", OBJ)
    assert select(FRONT, OBJ, Policy("weighted", weights=quality)).winner.trial == 1
    balanced = parse_weights("accuracy=3,latency_p95_ms=1,peak_memory_mb=1", OBJ)
    assert select(FRONT, OBJ, Policy("weighted", weights=balanced)).winner.trial == 2


def test_ties_break_deterministically() -> None:
    twins = [m(7, 0.9, 0.2, 10.0), m(5, 0.9, 0.1, 10.0), m(6, 0.9, 0.1, 10.0)]
    s = select(twins, OBJ, Policy())  # equal accuracy: faster wins, then lower trial number
    assert s.winner.trial == 5
    assert "loses the tie-break" in s.reasons[6]


def test_errors_name_the_problem() -> None:
    with pytest.raises(NoFeasibleMember, match="the closest, trial 4, breaks max_latency_ms"):
        select(FRONT, OBJ, Policy(max_latency_ms=0.001, min_accuracy=0.9))
    with pytest.raises(ConfigError, match="Unknown policy 'cheapest'"):
        select(FRONT, OBJ, Policy("cheapest"))
    with pytest.raises(ConfigError, match="needs --weights"):
        select(FRONT, OBJ, Policy("weighted"))
    with pytest.raises(ConfigError, match="Unknown objective 'speed'"):
        parse_weights("speed=1", OBJ)
    with pytest.raises(NoFeasibleMember, match="front is empty"):
        select([], OBJ, Policy())
