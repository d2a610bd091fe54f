"""The study: storage, trials and the search loop, recorded in Optuna."""

from __future__ import annotations

from moopt.study._loop import ProgressEvent, Rejected, RunSummary, run_loop
from moopt.study._optimize import (
    STUDY_ATTR,
    Result,
    default_objectives,
    finish,
    make_context,
    open_result,
    optimize,
    prepare,
    search,
)
from moopt.study._storage import JOURNAL_NAME, open_storage
from moopt.study._trial import PARITY_CONSTRAINT, SearchContext, artifact_path
from moopt.study._workers import run_worker, sweep_dead_workers

__all__ = [
    "JOURNAL_NAME",
    "PARITY_CONSTRAINT",
    "STUDY_ATTR",
    "ProgressEvent",
    "Rejected",
    "Result",
    "RunSummary",
    "SearchContext",
    "artifact_path",
    "default_objectives",
    "finish",
    "make_context",
    "open_result",
    "open_storage",
    "optimize",
    "prepare",
    "run_loop",
    "run_worker",
    "search",
    "sweep_dead_workers",
]
