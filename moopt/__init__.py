"""moopt: find the deployable trade-offs between accuracy, inference latency and peak memory.

Typical use::

    import moopt
    result = moopt.optimize(dataset="digits", trials=40, max_latency_ms=0.5)
    for trial in result.front:
        print(trial.number, trial.user_attrs["metrics"])
"""

from __future__ import annotations

from moopt._config import Budgets, Config, make_config, read_config_file
from moopt._data import Dataset, Split, load_dataset, split
from moopt._errors import (
    CandidateError,
    ConfigError,
    DataError,
    MooptError,
    StudyError,
)
from moopt._front import ObjectiveInfo, front_trials, pareto_mask
from moopt._version import __version__
from moopt.study import ProgressEvent, Result, RunSummary, optimize

__all__ = [
    "Budgets",
    "CandidateError",
    "Config",
    "ConfigError",
    "DataError",
    "Dataset",
    "MooptError",
    "ObjectiveInfo",
    "ProgressEvent",
    "Result",
    "RunSummary",
    "Split",
    "StudyError",
    "__version__",
    "front_trials",
    "load_dataset",
    "make_config",
    "optimize",
    "pareto_mask",
    "read_config_file",
    "split",
]
