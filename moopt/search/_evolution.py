"""moopt's default sampler: a steady-state, surrogate-assisted NSGA-II for a per-family space.

Optuna's ``NSGAIISampler`` breeds a whole generation at a time, starts with a random one and
crosses over parameters whether or not the candidate uses them. At the budgets people can
afford (25-200 trained models) that leaves only a few generations. This sampler keeps NSGA-II's
selection (constraint-domination, non-dominated rank, crowding distance) but breeds for every
trial from all trials evaluated so far (a steady-state NSGA-II), so each evaluation informs the
next proposal:

1. Parents are chosen by binary tournament on (rank, crowding distance) over all evaluated,
   distinct configurations, infeasible ones ranked after every feasible one by violation.
2. A child keeps its first parent's family. With a second parent of the same family it is a
   blend (BLX-0.5) of the two on that family's parameters, each in [0, 1] units (log scale
   where the range is log); then it is mutated: Gaussian steps in the same units, sometimes a
   jump to a bound of the range (cost-accuracy fronts often lie there: the fewest trees, the
   smallest layer), a random other option for a category. Parameters of other families are
   never touched, so no proposal is spent on a change the candidate does not use.
3. A child whose configuration was already evaluated or is being evaluated (``key``) is mutated
   again, with growing steps.
4. Several children are bred and the one with the largest predicted hypervolume gain is
   proposed: a cheap surrogate (inverse-distance weighting over the same family's trials),
   optimistic in proportion to the distance from what was evaluated, so that unexplored
   regions are tried too. Training a model costs seconds; this choice costs milliseconds.
5. The end of the budget refines the front: once the study holds ``refine_from`` distinct
   configurations, every proposal is a *local step*, a neighbour of a member of the current
   front that differs in one hyperparameter by one step (the next value that makes a new
   configuration, up or down, or another option of a category), the one with the largest
   predicted gain, without optimism. The optimistic surrogate favours children far from
   everything evaluated, so without these steps the configurations right next to the front
   (a forest of three trees with another leaf size) were seldom tried, and on small, fast
   models the front is often made of such neighbours. Local steps from the start would cost
   the exploration that finds a family's good region in the first place.

Every proposal is seeded by the study seed and the trial number, so the same seed gives the
same proposals, and parallel workers that share the study see each other's trials. The
parameters were chosen on the replay tables in ``benchmarks/`` (see ``scripts/bench_search``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from moopt._front import hypervolume

#: Key of a proposal's configuration (equal configurations share it), from its parameters.
KeyFunction = Callable[[Mapping[str, Any]], str | None]


class EvolutionSampler(optuna.samplers.BaseSampler):
    """Steady-state NSGA-II over a per-family space (see the module docstring).

    Args:
        family_param: Name of the categorical parameter that picks the family; a parameter
            named ``"<family>.<name>"`` belongs to that family, any other to every family.
        seed: Seed of every random choice.
        key: Configuration key of a parameter set (None: the family's parameters' values);
            children whose key was already seen are mutated again.
        mutation_scale: Standard deviation of a numeric mutation step, in [0, 1] units.
        crossover_prob: Probability of blending with a second parent of the same family.
        explore_prob: Probability of proposing a random point of the least-tried family.
        retries: Mutations tried before a duplicate child is given up for a random point.
        children: Children bred per proposal; the surrogate picks one.
        optimism: How far a prediction is moved towards better values per unit of distance
            from the nearest evaluated configuration (exploration).
        boundary: Probability that a numeric mutation jumps to a bound of the range.
        refine_from: Number of distinct evaluated configurations from which every proposal
            is a local step from the front (None: never).
        local_step: Size of a local step of a numeric hyperparameter, in [0, 1] units
            (repeated until the configuration changes).
    """

    def __init__(
        self,
        family_param: str = "family",
        *,
        seed: int | None = None,
        key: KeyFunction | None = None,
        mutation_scale: float = 0.3,
        crossover_prob: float = 0.5,
        explore_prob: float = 0.0,
        retries: int = 40,
        children: int = 16,
        optimism: float = 0.5,
        boundary: float = 0.35,
        refine_from: int | None = None,
        local_step: float = 0.1,
    ) -> None:
        self._family_param = family_param
        self._seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
        self._key = key
        self._mutation_scale = mutation_scale
        self._crossover_prob = crossover_prob
        self._explore_prob = explore_prob
        self._retries = retries
        self._children = children
        self._optimism = optimism
        self._boundary = boundary
        self._refine_from = refine_from
        self._local_step = local_step
        self._random = optuna.samplers.RandomSampler(seed=self._seed)

    def reseed_rng(self) -> None:
        """Draw a new seed (Optuna calls this for each of ``n_jobs`` threads)."""
        self._seed = random.SystemRandom().randrange(2**31)
        self._random.reseed_rng()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """The parameters every completed trial has (with the flat encoding: all of them)."""
        done = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True)
        space: dict[str, BaseDistribution] = {}
        for i, t in enumerate(done):
            if i == 0:
                space = dict(t.distributions)
            else:
                space = {n: d for n, d in space.items() if t.distributions.get(n) == d}
        return dict(sorted(space.items()))

    def sample_relative(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        """Breed one child from the trials evaluated so far."""
        family_dist = search_space.get(self._family_param)
        if not isinstance(family_dist, CategoricalDistribution):
            return {}
        trials = study._get_trials(deepcopy=False, use_cache=True)
        done = [
            t
            for t in trials
            if t.state == TrialState.COMPLETE and all(n in t.params for n in search_space)
        ]
        archive = _distinct(done)
        if len(archive) < 2:
            return {}
        rng = random.Random(f"{self._seed}:{trial.number}")
        families = list(family_dist.choices)
        seen = {k for k in (self._key_of(t.params, families) for t in trials if t.params) if k}
        if rng.random() < self._explore_prob:
            return self._explore(rng, search_space, families, archive, seen)
        values = _minimized(archive, study.directions)
        scores = _scores(archive, values)

        def tournament(pool: Sequence[int]) -> int:
            if len(pool) == 1:
                return pool[0]
            a, b = rng.sample(list(pool), 2)
            return a if scores[a] <= scores[b] else b

        scaled = _scaled(values)
        front = [i for i, sc in enumerate(scores) if sc[0] == 0]

        def gain(child: Mapping[str, Any], optimism: float) -> float:
            family = child[self._family_param]
            same = [i for i, t in enumerate(archive) if t.params[self._family_param] == family]
            return _predicted_gain(
                child,
                [archive[i].params for i in same],
                scaled[same],
                scaled[front],
                search_space,
                [n for n in search_space if self._belongs(n, family, families)],
                optimism,
            )

        if self._refine_from is not None and len(archive) >= self._refine_from:
            near = self._neighbours(search_space, families, [archive[i] for i in front], seen)
            if near:
                # Ties (a family with one evaluated configuration) are broken at random.
                ranked = [(gain(child, 0.0), rng.random(), i) for i, child in enumerate(near)]
                return near[max(ranked)[2]]
        best: tuple[float, dict[str, Any]] | None = None
        keys = set(seen)
        for _ in range(self._children):
            child = self._breed(rng, search_space, families, archive, tournament, keys)
            if child is None:
                continue
            keys.add(self._key_of(child, families) or "")
            predicted = gain(child, self._optimism)
            if best is None or predicted > best[0]:
                best = (predicted, child)
        if best is not None:
            return best[1]
        return self._explore(rng, search_space, families, archive, seen)

    def _breed(
        self,
        rng: random.Random,
        search_space: Mapping[str, BaseDistribution],
        families: Sequence[Any],
        archive: Sequence[FrozenTrial],
        tournament: Callable[[Sequence[int]], int],
        seen: set[str],
    ) -> dict[str, Any] | None:
        """One child of a tournament-chosen parent that repeats no configuration in ``seen``."""
        first = tournament(range(len(archive)))
        parent = archive[first]
        family = parent.params[self._family_param]
        active = [n for n in search_space if self._belongs(n, family, families)]
        units = {n: _to_unit(search_space[n], parent.params[n]) for n in active}
        mates = [
            i
            for i, t in enumerate(archive)
            if i != first and t.params[self._family_param] == family
        ]
        if mates and rng.random() < self._crossover_prob:
            other = archive[tournament(mates)]
            for n in active:
                units[n] = _blend(rng, search_space[n], units[n], other.params[n])
        for attempt in range(self._retries):
            scale = self._mutation_scale * (1 + attempt / 4)
            child = dict(parent.params)
            child.update(
                {
                    n: _from_unit(search_space[n], u)
                    for n, u in _mutate(rng, search_space, units, scale, self._boundary).items()
                }
            )
            if self._key_of(child, families) not in seen:
                return child
        return None

    def _neighbours(
        self,
        space: Mapping[str, BaseDistribution],
        families: Sequence[Any],
        front: Sequence[FrozenTrial],
        seen: set[str],
    ) -> list[dict[str, Any]]:
        """The configurations one step from a front member, not in ``seen``.

        A numeric hyperparameter moves by ``local_step`` units, repeatedly, until the
        configuration changes (a replay table snaps small moves back to the observed value):
        that next configuration in each direction is the neighbour, and if it was seen, that
        direction has none (the walk does not go past it). A category takes each of its other
        options.
        """
        out: list[dict[str, Any]] = []
        keys = set(seen)
        for member in front:
            parent = member.params
            family = parent[self._family_param]
            start = self._key_of(parent, families)
            for name in (n for n in space if self._belongs(n, family, families)):
                for walk in self._walks(space[name], parent[name]):
                    for value in walk:
                        child = {**parent, name: value}
                        key = self._key_of(child, families)
                        if key == start:
                            continue
                        if key is not None and key not in keys:
                            keys.add(key)
                            out.append(child)
                        break
        return out

    def _walks(self, dist: BaseDistribution, value: Any) -> list[list[Any]]:
        """The values a local step tries, in order, in each direction from ``value``."""
        if isinstance(dist, CategoricalDistribution):
            return [[c] for c in dist.choices if c != value]
        u = _to_unit(dist, value)
        steps = range(1, math.ceil(1.0 / self._local_step) + 1)
        walks = [[u + sign * self._local_step * j for j in steps] for sign in (-1, 1)]
        # The tolerance keeps a step that lands on a bound up to rounding (0.3 + 7 x 0.1).
        return [[_from_unit(dist, v) for v in walk if -1e-9 <= v <= 1 + 1e-9] for walk in walks]

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """Parameters outside the relative space are drawn at random."""
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        """Nothing to update: every proposal is bred from the storage's trials."""

    def _belongs(self, name: str, family: Any, families: Sequence[Any]) -> bool:
        if name == self._family_param:
            return False
        prefix = name.split(".", 1)[0] if "." in name else None
        return prefix == str(family) or prefix not in {str(f) for f in families}

    def _key_of(self, params: Mapping[str, Any], families: Sequence[Any]) -> str | None:
        if self._family_param not in params:
            return None
        if self._key is not None:
            return self._key(params)
        family = params[self._family_param]
        return repr(
            sorted(
                (n, v)
                for n, v in params.items()
                if n == self._family_param or self._belongs(n, family, families)
            )
        )

    def _explore(
        self,
        rng: random.Random,
        space: Mapping[str, BaseDistribution],
        families: Sequence[Any],
        archive: Sequence[FrozenTrial],
        seen: set[str],
    ) -> dict[str, Any]:
        """A random point of the family least tried so far (ties broken at random)."""
        tried = {f: 0 for f in families}
        for t in archive:
            tried[t.params[self._family_param]] = tried.get(t.params[self._family_param], 0) + 1
        order = sorted(families, key=lambda f: (tried.get(f, 0), rng.random()))
        child: dict[str, Any] = {}
        for family in order:
            for _ in range(self._retries):
                child = {n: _random_value(rng, d) for n, d in space.items()}
                child[self._family_param] = family
                if self._key_of(child, families) not in seen:
                    return child
        return child


def _minimized(
    trials: Sequence[FrozenTrial], directions: Sequence[optuna.study.StudyDirection]
) -> np.ndarray:
    signs = np.array(
        [-1.0 if d == optuna.study.StudyDirection.MAXIMIZE else 1.0 for d in directions]
    )
    out: np.ndarray = np.array([t.values for t in trials], dtype=float) * signs
    return out


def _predicted_gain(
    child: Mapping[str, Any],
    relatives: Sequence[Mapping[str, Any]],
    their_values: np.ndarray,
    front: np.ndarray,
    space: Mapping[str, BaseDistribution],
    active: Sequence[str],
    optimism: float,
) -> float:
    """Hypervolume the child is predicted to add to the front, optimistic where unexplored.

    The prediction is the inverse-distance-weighted mean of the values of the same family's
    evaluated trials (``relatives``; objectives scaled to [0, 1], minimized), in the [0, 1]
    units of the family's ``active`` parameters; it is moved towards better values by
    ``optimism`` times the distance to the nearest of them.
    """
    if not relatives:
        return math.inf
    distances = np.array([_distance(space, active, child, r) for r in relatives], dtype=float)
    weights = 1.0 / (distances**2 + 1e-6)
    predicted = (weights[:, None] * their_values).sum(axis=0) / weights.sum()
    predicted = predicted - optimism * distances.min()
    reference = [1.1] * front.shape[1]
    return hypervolume(np.vstack([front, predicted]), reference) - hypervolume(front, reference)


def _distance(
    space: Mapping[str, BaseDistribution],
    names: Sequence[str],
    a: Mapping[str, Any],
    b: Mapping[str, Any],
) -> float:
    total = 0.0
    for n in names:
        dist = space[n]
        if isinstance(dist, CategoricalDistribution):
            total += 0.0 if a[n] == b[n] else 1.0
        else:
            total += (_to_unit(dist, a[n]) - _to_unit(dist, b[n])) ** 2
    return math.sqrt(total / max(1, len(names)))


def _distinct(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """One trial per configuration (the first), by the evaluation cache's key where known."""
    out, keys = [], set()
    for t in trials:
        k = t.user_attrs.get("candidate_key") or repr(sorted(t.params.items()))
        if k not in keys:
            keys.add(k)
            out.append(t)
    return out


def _scores(trials: Sequence[FrozenTrial], values: np.ndarray) -> list[tuple[int, float]]:
    """Per trial ``(rank, -crowding)``: lower is better (constraint-domination first).

    Args:
        trials: The trials.
        values: Their objective values, every column minimized.
    """
    violation = np.array(
        [sum(max(0.0, c) for c in t.constraints.values()) for t in trials], dtype=float
    )
    n = len(trials)
    rank = np.full(n, -1)
    feasible = violation <= 0
    current = 0
    remaining = np.flatnonzero(feasible)
    while remaining.size:
        v = values[remaining]
        no_worse = (v[:, None, :] <= v[None, :, :]).all(axis=2)
        better = (v[:, None, :] < v[None, :, :]).any(axis=2)
        dominated = (no_worse & better).any(axis=0)
        rank[remaining[~dominated]] = current
        remaining = remaining[dominated]
        current += 1
    for i in np.argsort(violation[~feasible], kind="stable"):
        rank[np.flatnonzero(~feasible)[i]] = current
        current += 1
    scaled = _scaled(values)
    crowding = np.zeros(n)
    for r in set(rank.tolist()):
        members = np.flatnonzero(rank == r)
        if members.size <= 2:
            crowding[members] = math.inf
            continue
        for j in range(values.shape[1]):
            order = members[np.argsort(scaled[members, j], kind="stable")]
            crowding[order[0]] = crowding[order[-1]] = math.inf
            gaps = scaled[order[2:], j] - scaled[order[:-2], j]
            crowding[order[1:-1]] += gaps
    return [(int(rank[i]), -float(crowding[i])) for i in range(n)]


def _scaled(values: np.ndarray) -> np.ndarray:
    """Minimized objectives in [0, 1] over the trials; log scale for one spanning 10x or more."""
    out = np.zeros_like(values)
    for j in range(values.shape[1]):
        col = values[:, j]
        if (col > 0).all() and col.max() > 10 * col.min():
            col = np.log(col)
        lo, hi = col.min(), col.max()
        out[:, j] = (col - lo) / (hi - lo) if hi > lo else 0.0
    return out


def _to_unit(dist: BaseDistribution, value: Any) -> float | Any:
    if isinstance(dist, CategoricalDistribution):
        return value
    assert isinstance(dist, FloatDistribution | IntDistribution)
    lo, hi = float(dist.low), float(dist.high)
    if hi <= lo:
        return 0.5
    if dist.log:
        return (math.log(float(value)) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return (float(value) - lo) / (hi - lo)


def _random_value(rng: random.Random, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return rng.choice(dist.choices)
    return _from_unit(dist, rng.random())


def _from_unit(dist: BaseDistribution, u: float | Any) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return u
    assert isinstance(dist, FloatDistribution | IntDistribution)
    u = min(max(float(u), 0.0), 1.0)
    lo, hi = float(dist.low), float(dist.high)
    value = (
        math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        if dist.log
        else lo + u * (hi - lo)
    )
    step = dist.step
    if step is not None:
        value = lo + round((value - lo) / step) * step
    value = min(max(value, lo), hi)
    return round(value) if isinstance(dist, IntDistribution) else value


def _blend(rng: random.Random, dist: BaseDistribution, u: Any, other_value: Any) -> Any:
    """BLX-0.5 of two parents in [0, 1] units; a category from either parent."""
    if isinstance(dist, CategoricalDistribution):
        return u if rng.random() < 0.5 else other_value
    v = _to_unit(dist, other_value)
    lo, hi = min(u, v), max(u, v)
    spread = (hi - lo) * 0.5
    return rng.uniform(lo - spread, hi + spread)


def _mutate(
    rng: random.Random,
    space: Mapping[str, BaseDistribution],
    units: Mapping[str, Any],
    scale: float,
    boundary: float,
) -> dict[str, Any]:
    """Each parameter mutated with probability 1/n, at least one."""
    names = list(units)
    if not names:
        return {}
    # A list, not a set: the order of the random draws below must not depend on string hashes.
    chosen = [n for n in names if rng.random() < 1.0 / len(names)] or [rng.choice(names)]
    out = dict(units)
    for n in chosen:
        dist = space[n]
        if isinstance(dist, CategoricalDistribution):
            options = [c for c in dist.choices if c != units[n]]
            if options:
                out[n] = rng.choice(options)
        elif rng.random() < boundary:
            out[n] = float(rng.random() < 0.5)
        else:
            out[n] = min(max(units[n] + rng.gauss(0.0, scale), 0.0), 1.0)
    return out
