"""The study: storage, trials and the search loop, recorded in Optuna."""

from __future__ import annotations

from moopt.study._optimize import (
    STUDY_ATTR,
    ProgressEvent,
    Result,
    RunSummary,
    default_objectives,
    family_of,
    optimize,
    population_size,
)
from moopt.study._storage import JOURNAL_NAME, open_storage
from moopt.study._trial import PARITY_CONSTRAINT, SearchContext, artifact_path

__all__ = [
    "JOURNAL_NAME",
    "PARITY_CONSTRAINT",
    "STUDY_ATTR",
    "ProgressEvent",
    "Result",
    "RunSummary",
    "SearchContext",
    "artifact_path",
    "default_objectives",
    "family_of",
    "open_storage",
    "optimize",
    "population_size",
]
