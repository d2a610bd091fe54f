"""Search strategies: the flat encoding, the space-filling first trials and the grid."""

from __future__ import annotations

import optuna

from moopt.search import (
    FAMILIES,
    Strategy,
    first_trials,
    grid_design,
    initial_design,
    resolve_space,
    suggest,
)
from moopt.search._space import Choice


def test_the_flat_encoding_gives_every_trial_every_parameter() -> None:
    space = resolve_space(("rf", "logreg", "mlp"))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    every = {"family"} | {f"{f}.{p}" for f in space for p in space[f].params}
    for _ in range(10):
        trial = study.ask()
        candidate = suggest(trial, space, flat=True)
        assert set(trial.params) == every
        assert set(candidate.params) == set(space[candidate.family].params)
        study.tell(trial, 0.0)
    assert Strategy("nsga2").flat and not Strategy("tpe").flat


def test_first_generation_covers_every_family_from_its_low_corner_and_stratifies() -> None:
    import math

    space = resolve_space(tuple(FAMILIES))
    design = initial_design(space, 21, seed=0)
    families = [d["family"] for d in design]
    assert all(families.count(f) == 3 for f in FAMILIES)
    # Each family's first trial is its low corner (its cheapest model for the size
    # parameters), except where the family names an anchor: an SVC with gamma at its low end
    # predicts one class.
    for name in FAMILIES:
        first = next(d for d in design if d["family"] == name)
        for p, r in space[name].params.items():
            expected = r.options[0] if isinstance(r, Choice) else r.low
            expected = space[name].anchor.get(p, expected)
            assert first[f"{name}.{p}"] == expected, (name, p)
    assert first_of(design, "svc")["svc.gamma"] == 0.01
    assert first_of(design, "rf")["rf.n_estimators"] == space["rf"].params["n_estimators"].low
    # rf's other two n_estimators fall in the two different halves of the (log) range.
    rng = space["rf"].params["n_estimators"]
    halves = sorted(
        int(
            2
            * (math.log(d["rf.n_estimators"]) - math.log(rng.low))
            / (math.log(rng.high) - math.log(rng.low) + 1e-9)
        )
        for d in design
        if d["family"] == "rf"
    )[1:]
    assert halves == [0, 1]
    for d in design:
        fam = space[d["family"]]
        for p, r in fam.params.items():
            value = d[f"{fam.name}.{p}"]
            assert value in r.options if isinstance(r, Choice) else r.low <= value <= r.high


def first_of(design: list[dict[str, object]], family: str) -> dict[str, object]:
    return next(d for d in design if d["family"] == family)


def test_an_anchor_outside_a_narrowed_range_is_clamped_into_it() -> None:
    from dataclasses import replace

    from moopt.search._space import FloatRange

    svc = FAMILIES["svc"]
    narrowed = replace(svc, params={**svc.params, "gamma": FloatRange(0.05, 0.1, log=True)})
    (first,) = initial_design({"svc": narrowed}, 1, seed=0)
    assert first["svc.gamma"] == 0.05 and first["svc.C"] == 1.0


def test_grid_design_enumerates_each_family_once() -> None:
    space = resolve_space(("knn", "svc"))
    grid = grid_design(space, seed=0)
    keys = {tuple(sorted(d.items())) for d in grid}
    assert len(keys) == len(grid)
    assert sum(d["family"] == "knn" for d in grid) == 4 * 2  # 4 values x {uniform, distance}
    assert sum(d["family"] == "svc" for d in grid) == 4 * 4
    assert first_trials(Strategy("random"), space, 20, 0) == []
