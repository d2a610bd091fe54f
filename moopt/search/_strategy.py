"""Search strategies: the sampler, the encoding of the conditional space, the first trials.

Optuna's NSGA-II/III cross over only the parameters present in every trial, so in a
conditional per-family space they would draw every family-specific hyperparameter at random.
The NSGA strategies therefore suggest *every* family's hyperparameters on every trial (the
"flat" encoding); a candidate uses only its own family's. The default, ``nsga2``, is moopt's
steady-state NSGA-II (:class:`~moopt.search.EvolutionSampler`), which varies only the
parameters the candidate's family uses. Its first generation is space-filling, covers every
family and is sized to the budget.
"""

from __future__ import annotations

import itertools
import math
import random
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from moopt._errors import ConfigError
from moopt.search._candidate import FAMILY_PARAM, Candidate
from moopt.search._evolution import EvolutionSampler
from moopt.search._space import Choice, Family, IntRange, Param

#: Names accepted by ``--sampler``.
SAMPLERS = ("nsga2", "nsga3", "tpe", "random", "grid")
#: Values per numeric hyperparameter in the ``grid`` baseline.
GRID_POINTS = 4
#: Share of the budget, at its end, that ``nsga2`` spends on local steps from the front.
REFINE_SHARE = 0.2


@dataclass(frozen=True)
class Strategy:
    """How a study proposes candidates.

    Attributes:
        name: One of :data:`SAMPLERS`.
        population: Size of the first generation (``nsga2``) or NSGA-III's population
            (None: sized to the budget).
    """

    name: str = "nsga2"
    population: int | None = None

    @property
    def flat(self) -> bool:
        """Suggest every family's hyperparameters on every trial (for NSGA-II/III's crossover).

        TPE handles the conditional space itself (``group=True``), and random and grid do not
        learn from one trial to the next.
        """
        return self.name in ("nsga2", "nsga3")


def population_for(budget: int, families: int, population: int | None = None) -> int:
    """A population that leaves NSGA-II several generations within ``budget``."""
    if population is not None:
        return population
    return max(families + 1, min(50, round(budget / 4)))


def make_sampler(
    strategy: Strategy,
    seed: int,
    budget: int,
    families: int,
    propose: Callable[[optuna.trial.BaseTrial], Candidate] | None = None,
    evaluated: int = 0,
) -> optuna.samplers.BaseSampler:
    """The Optuna sampler of ``strategy``.

    Args:
        strategy: The strategy.
        seed: Sampler seed.
        budget: Distinct evaluations planned.
        families: Number of families in the space.
        propose: How a trial becomes a candidate; lets ``nsga2`` recognize a proposal that
            repeats an evaluated configuration before proposing it.
        evaluated: Distinct configurations the study holds already (a resumed study): the
            budget's last :data:`REFINE_SHARE` refines the front from ``evaluated + budget``
            back.

    Raises:
        ConfigError: An unknown strategy name.
    """
    pop = population_for(budget, families, strategy.population)
    if strategy.name == "nsga2":
        return EvolutionSampler(
            FAMILY_PARAM,
            seed=seed,
            key=_key_function(propose),
            refine_from=evaluated + budget - round(REFINE_SHARE * budget),
        )
    if strategy.name == "nsga3":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.NSGAIIISampler(population_size=pop, seed=seed)
    if strategy.name == "tpe":
        # multivariate + group: TPE models each family's hyperparameters jointly and only on
        # the trials of that family. The first trials come from the space-filling design.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=seed, multivariate=True, group=True, n_startup_trials=families + 1
            )
    if strategy.name in ("random", "grid"):
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"Unknown sampler '{strategy.name}'. Expected one of {', '.join(SAMPLERS)}.")


def _key_function(
    propose: Callable[[optuna.trial.BaseTrial], Candidate] | None,
) -> Callable[[Mapping[str, Any]], str | None] | None:
    if propose is None:
        return None

    def key(params: Mapping[str, Any]) -> str | None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return propose(optuna.trial.FixedTrial(dict(params))).key
        except (ValueError, KeyError):
            return None

    return key


def _unit_to(param: Param, u: float) -> Any:
    if isinstance(param, Choice):
        return param.options[min(int(u * len(param.options)), len(param.options) - 1)]
    lo, hi = float(param.low), float(param.high)
    if u <= 0.0 or u >= 1.0:  # the bounds exactly (exp(log(lo)) can round past lo)
        value = lo if u <= 0.0 else hi
    elif param.log and lo > 0:
        value = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    else:
        value = lo + u * (hi - lo)
    if isinstance(param, IntRange):
        return int(min(max(round(value), param.low), param.high))
    return value


def _anchored(param: Param, value: Any) -> Any:
    """``value`` clamped into ``param``'s range (a category it lacks: the first option);
    None: the low end."""
    if value is None:
        return _unit_to(param, 0.0)
    if isinstance(param, Choice):
        return value if value in param.options else param.options[0]
    clamped = min(max(value, param.low), param.high)
    return round(clamped) if isinstance(param, IntRange) else float(clamped)


def initial_design(space: Mapping[str, Family], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` space-filling first trials: families in turn, each starting at its low corner.

    A family's first trial is its *low corner*: every numeric hyperparameter at the low end of
    its range, every category at its first option, except where the family names a better
    value (:attr:`Family.anchor`: an SVC's ``gamma``). For the hyperparameters that set a
    model's size (trees, depth, units, layers) that is the family's cheapest model, which
    anchors the fast and small end of a cost-accuracy front; a random draw rarely lands there,
    and a family whose only trial is a large, dominated model is seldom bred again. The
    family's other trials are stratified: each hyperparameter's range is cut into as many strata as
    those trials, and every stratum is used once (a Latin hypercube), on the log scale where
    the range is log.
    """
    rng = random.Random(seed)
    names = list(space)
    per_family = {name: len(range(i, n, len(names))) for i, name in enumerate(names)}
    points: dict[str, list[dict[str, Any]]] = {}
    for name, k in per_family.items():
        family = space[name]
        corner = {p: _anchored(param, family.anchor.get(p)) for p, param in family.params.items()}
        columns = {}
        for pname, param in family.params.items():
            strata = [(i + rng.random()) / (k - 1) for i in range(k - 1)]
            rng.shuffle(strata)
            columns[pname] = [_unit_to(param, u) for u in strata]
        rows = [corner] + [{p: columns[p][i] for p in family.params} for i in range(k - 1)]
        points[name] = [
            {FAMILY_PARAM: name, **{f"{name}.{p}": v for p, v in row.items()}} for row in rows[:k]
        ]
    design = []
    for i in range(n):
        name = names[i % len(names)]
        design.append(points[name][i // len(names)])
    return design


def _grid_values(param: Param) -> list[Any]:
    if isinstance(param, Choice):
        return list(param.options)
    values = [_unit_to(param, i / (GRID_POINTS - 1)) for i in range(GRID_POINTS)]
    return list(dict.fromkeys(values))


def grid_design(space: Mapping[str, Family], seed: int) -> list[dict[str, Any]]:
    """Every point of a discretized grid of every family, in a shuffled order."""
    design = []
    for name, family in space.items():
        axes = [_grid_values(p) for p in family.params.values()]
        for combo in itertools.product(*axes):
            design.append(
                {
                    FAMILY_PARAM: name,
                    **{f"{name}.{p}": v for p, v in zip(family.params, combo, strict=True)},
                }
            )
    random.Random(seed).shuffle(design)
    return design


def first_trials(
    strategy: Strategy, space: Mapping[str, Family], budget: int, seed: int
) -> Sequence[dict[str, Any]]:
    """The trials to enqueue before the sampler takes over."""
    if strategy.name == "grid":
        return grid_design(space, seed)
    if strategy.name in ("nsga2", "nsga3"):
        return initial_design(space, population_for(budget, len(space), strategy.population), seed)
    if strategy.name == "tpe":
        return initial_design(space, len(space) + 1, seed)
    return []
