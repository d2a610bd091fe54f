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

__all__ = [
    "FAMILIES",
    "FAMILY_PARAM",
    "Candidate",
    "Choice",
    "Family",
    "FloatRange",
    "IntRange",
    "Param",
    "convert",
    "fit",
    "resolve_space",
    "suggest",
]
