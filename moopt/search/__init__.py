"""The search space and its candidates: families, hyperparameter ranges, fit and convert."""

from __future__ import annotations

from moopt.search._candidate import (
    FAMILY_PARAM,
    Candidate,
    TrainingStopped,
    convert,
    fit,
    quantize,
    suggest,
)
from moopt.search._evolution import EvolutionSampler
from moopt.search._space import (
    FAMILIES,
    GRAPH_LEVELS_SEARCHED,
    Choice,
    Family,
    FloatRange,
    IntRange,
    Param,
    RuntimeSpace,
    known_anchor,
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
    "GRAPH_LEVELS_SEARCHED",
    "SAMPLERS",
    "Candidate",
    "Choice",
    "EvolutionSampler",
    "Family",
    "FloatRange",
    "IntRange",
    "Param",
    "RuntimeSpace",
    "Strategy",
    "TrainingStopped",
    "convert",
    "first_trials",
    "fit",
    "grid_design",
    "initial_design",
    "known_anchor",
    "make_sampler",
    "population_for",
    "quantize",
    "resolve_space",
    "suggest",
]
