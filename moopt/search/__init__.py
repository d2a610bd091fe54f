"""The search space and its candidates: families, hyperparameter ranges, fit and convert."""

from __future__ import annotations

from moopt.search._candidate import FAMILY_PARAM, Candidate, convert, fit, suggest
from moopt.search._space import (
    FAMILIES,
    Choice,
    Family,
    FloatRange,
    IntRange,
    Param,
    resolve_space,
)
from moopt.search._strategy import (
    SAMPLERS,
    Strategy,
    first_trials,
    grid_design,
    initial_design,
    make_sampler,
    population_for,
)

__all__ = [
    "FAMILIES",
    "FAMILY_PARAM",
    "SAMPLERS",
    "Candidate",
    "Choice",
    "Family",
    "FloatRange",
    "IntRange",
    "Param",
    "Strategy",
    "convert",
    "first_trials",
    "fit",
    "grid_design",
    "initial_design",
    "make_sampler",
    "population_for",
    "resolve_space",
    "suggest",
]
