"""Finalists re-verified: re-measured interleaved, and a member that was mismeasured leaves."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from moopt import load_dataset, make_config, split
from moopt._front import front_trials
from moopt._reverify import Reverification, reverify
from moopt.search import Candidate, resolve_space
from moopt.study import SearchContext, default_objectives
from moopt.study._trial import evaluate
from objectives import Isolation, Latency, RuntimeSettings


@pytest.fixture
def context(tmp_path: Path) -> SearchContext:
    config = make_config({"families": "logreg,knn"})
    return SearchContext(
        space=resolve_space(config.families),
        split=split(load_dataset("digits"), 0.25, 0, True),
        objectives=default_objectives(config),
        settings=RuntimeSettings(),
        budgets=config.budgets,
        parity_tolerance=0.01,
        seed=0,
        isolation=Isolation(),
        artifacts=tmp_path / "artifacts",
    )


def _evaluated(study: optuna.Study, ctx: SearchContext, candidate: Candidate) -> None:
    trial = study.ask({"family": optuna.distributions.CategoricalDistribution(["logreg", "knn"])})
    study.tell(trial, evaluate(trial, candidate, ctx))


def test_a_mismeasured_member_leaves_the_front(context: SearchContext) -> None:
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    _evaluated(study, context, Candidate("logreg", {"C": 1.0, "max_iter": 200}))
    _evaluated(study, context, Candidate("knn", {"n_neighbors": 30, "weights": "uniform"}))
    logreg, knn = study.trials
    assert logreg.user_attrs["metrics"]["accuracy"] > knn.user_attrs["metrics"]["accuracy"]
    # Memory is not re-measured: the k-NN model really does use more of it.
    assert (
        logreg.user_attrs["metrics"]["peak_memory_mb"]
        < knn.user_attrs["metrics"]["peak_memory_mb"]
    )
    # A third trial claims the k-NN model ran 1000x faster than it does (a measurement
    # taken during the search that went wrong): that puts it on the front.
    claimed = {**knn.user_attrs["metrics"]}
    claimed.update({k: v / 1000 for k, v in claimed.items() if k.startswith("latency_")})
    fake = optuna.trial.create_trial(
        params={},
        distributions={},
        values=[claimed["accuracy"], claimed["latency_p95_ms"], claimed["peak_memory_mb"]],
        user_attrs={**knn.user_attrs, "metrics": claimed},
        system_attrs={"constraints:parity": -0.01},
    )
    study.add_trial(fake)
    trials = study.trials
    assert [t.number for t in front_trials(trials, context.infos)] == [0, 2]

    result = reverify(
        trials, context, next(o for o in context.objectives if isinstance(o, Latency))
    )
    assert result.before == (0, 2)
    assert result.after == (0,)
    assert result.left == {2: "dominated by trial 0 when re-measured"}
    assert result.change[2] > 100  # re-measured more than 100x slower than claimed
    assert set(result.remeasured) == {0, 2}
    details = result.remeasured[0].details
    assert details["samples"] >= 130 and "latency_p95_ms" in details["intervals"]
    # Round-trips through the study record.
    assert Reverification.from_dict(result.as_dict()) == result
    assert "1 left the front" in result.summary()
