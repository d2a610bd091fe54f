"""moopt's default sampler: steady-state NSGA-II with family-aware variation and a surrogate."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
import pytest

from moopt._front import pareto_mask
from moopt.search import (
    FAMILY_PARAM,
    Candidate,
    Strategy,
    first_trials,
    make_sampler,
    resolve_space,
    suggest,
)
from moopt.search._evolution import EvolutionSampler, _scores
from moopt.search._strategy import REFINE_SHARE

SPACE = resolve_space(("rf", "logreg", "mlp"))


def _objectives(candidate: Candidate) -> list[float]:
    """A cheap stand-in for training: accuracy and cost that depend on the parameters."""
    p = candidate.params
    if candidate.family == "rf":
        size = p["n_estimators"] * 2 ** min(p["max_depth"], 12)
        return [1 - 1 / math.log(size + 2), math.log(size + 1)]
    if candidate.family == "mlp":
        size = p["hidden_units"] * p["layers"]
        return [1 - 1 / math.log(size + 3), math.log(size + 1) + 0.5]
    return [0.8 - abs(math.log10(p["C"])) / 20, 0.1]


def _run(seed: int, n: int = 40) -> tuple[optuna.Study, list[Candidate]]:
    def propose(trial: optuna.trial.BaseTrial) -> Candidate:
        return suggest(trial, SPACE, flat=True)

    sampler = make_sampler(Strategy("nsga2"), seed, n, len(SPACE), propose)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    for params in first_trials(Strategy("nsga2"), SPACE, n, seed):
        study.enqueue_trial(params)
    candidates = []
    for _ in range(n):
        trial = study.ask()
        candidate = propose(trial)
        trial.set_user_attr("candidate_key", candidate.key)
        candidates.append(candidate)
        study.tell(trial, _objectives(candidate))
    return study, candidates


def test_it_is_the_default_and_the_same_seed_gives_the_same_proposals() -> None:
    assert isinstance(make_sampler(Strategy(), 0, 50, 3), EvolutionSampler)
    _, first = _run(seed=3)
    _, again = _run(seed=3)
    _, other = _run(seed=4)
    assert [c.key for c in first] == [c.key for c in again]
    assert [c.key for c in first] != [c.key for c in other]


def test_it_proposes_no_configuration_twice() -> None:
    _, candidates = _run(seed=0, n=60)
    keys = [c.key for c in candidates]
    assert len(set(keys)) == len(keys)


def test_a_child_changes_only_its_own_familys_parameters() -> None:
    study, _ = _run(seed=1, n=30)
    first = len(first_trials(Strategy("nsga2"), SPACE, 30, 1))
    bred = study.trials[first:]
    assert len(bred) == 30 - first > 0
    for t in bred:
        fam = t.params[FAMILY_PARAM]
        others = {k: v for k, v in t.params.items() if k.split(".")[0] not in (fam, FAMILY_PARAM)}
        # Its parent: an earlier trial of the same family with the same other parameters.
        assert any(
            t2.params[FAMILY_PARAM] == fam and all(t2.params[k] == v for k, v in others.items())
            for t2 in study.trials[: t.number]
        ), t.number


def test_it_moves_towards_the_front() -> None:
    study, _ = _run(seed=2, n=60)
    values = np.array([t.values for t in study.trials])
    on_front = pareto_mask(values, ["maximize", "minimize"])
    # Bred proposals land on the front of everything evaluated more often than the first,
    # space-filling ones.
    assert on_front[-20:].sum() > on_front[:20].sum()


def test_constraint_domination_ranks_infeasible_trials_last() -> None:
    def trial(values: list[float], violation: float) -> optuna.trial.FrozenTrial:
        return optuna.trial.create_trial(
            values=values, params={}, distributions={}, system_attrs={"constraints": [violation]}
        )

    trials = [trial([0.9, 1.0], 0.0), trial([0.99, 0.1], 0.5), trial([0.5, 2.0], 0.0)]
    minimized = np.array([[-t.values[0], t.values[1]] for t in trials])
    ranks = [r for r, _ in _scores(trials, minimized)]
    assert ranks[0] == 0 and ranks[2] == 1 and ranks[1] == 2


@pytest.mark.parametrize("family", ["rf", "mlp"])
def test_proposals_stay_inside_the_ranges(family: str) -> None:
    _, candidates = _run(seed=5, n=40)
    for c in candidates:
        for name, value in c.params.items():
            rng: Any = SPACE[c.family].params[name]
            if hasattr(rng, "low"):
                assert rng.low <= value <= rng.high
    assert any(c.family == family for c in candidates)


def _snapping_sampler() -> tuple[EvolutionSampler, dict[str, Any], optuna.trial.FrozenTrial]:
    """A sampler whose key snaps ``rf.leaf`` to the values 1, 4 and 16, as a replay table does;
    its space; a front member at the forest's low corner."""
    space: dict[str, Any] = {
        FAMILY_PARAM: optuna.distributions.CategoricalDistribution(["rf", "logreg"]),
        "rf.leaf": optuna.distributions.IntDistribution(1, 16, log=True),
        "rf.criterion": optuna.distributions.CategoricalDistribution(["gini", "entropy"]),
        "logreg.C": optuna.distributions.FloatDistribution(0.01, 100.0, log=True),
    }

    def key(params: Any) -> str:
        leaf = min((1, 4, 16), key=lambda v: abs(math.log(v) - math.log(params["rf.leaf"])))
        return f"{params[FAMILY_PARAM]}:{leaf}:{params['rf.criterion']}:{params['logreg.C']}"

    member = optuna.trial.create_trial(
        values=[0.9, 1.0],
        params={FAMILY_PARAM: "rf", "rf.leaf": 1, "rf.criterion": "gini", "logreg.C": 1.0},
        distributions=space,
    )
    return EvolutionSampler(seed=0, key=key), space, member


def test_a_local_step_moves_one_parameter_to_its_next_distinct_value() -> None:
    sampler, space, member = _snapping_sampler()
    near = sampler._neighbours(space, ["rf", "logreg"], [member], set())
    changed = [{k: v for k, v in n.items() if member.params[k] != v} for n in near]
    # Small steps of the leaf size snap back to 1; the first that does not is the neighbour
    # (4, never 16); the category takes its other option; logreg's C is not the forest's.
    assert len(changed) == 2
    assert {"rf.criterion": "entropy"} in changed
    (leaf,) = [c["rf.leaf"] for c in changed if "rf.leaf" in c]
    assert sampler._key_of({**member.params, "rf.leaf": leaf}, ["rf", "logreg"]) == "rf:4:gini:1.0"


def test_a_local_step_does_not_skip_over_a_configuration_already_seen() -> None:
    sampler, space, member = _snapping_sampler()
    near = sampler._neighbours(space, ["rf", "logreg"], [member], {"rf:4:gini:1.0"})
    assert [n["rf.criterion"] for n in near] == ["entropy"]


def test_the_end_of_the_budget_refines_the_front_one_step_at_a_time() -> None:
    # The default sampler refines over the last fifth of its budget: the last 6 of 30.
    study, _ = _run(seed=0, n=30)
    start = 30 - round(REFINE_SHARE * 30)

    def used(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
        fam = t.params[FAMILY_PARAM]
        return {k: v for k, v in t.params.items() if k.split(".")[0] in (fam, FAMILY_PARAM)}

    def one_step_from_the_front(t: optuna.trial.FrozenTrial) -> bool:
        before = study.trials[: t.number]
        values = np.array([b.values for b in before])
        mask = pareto_mask(values, ["maximize", "minimize"])
        front = [b for b, m in zip(before, mask, strict=True) if m]
        return any(
            sum(used(t)[k] != used(f).get(k) for k in used(t)) == 1
            and used(f).keys() == used(t).keys()
            for f in front
        )

    refined = study.trials[start:]
    assert all(one_step_from_the_front(t) for t in refined)
    # Before that, bred children also jump further (blends, several mutations, bounds).
    bred = study.trials[len(first_trials(Strategy("nsga2"), SPACE, 30, 0)) : start]
    assert not all(one_step_from_the_front(t) for t in bred)
