"""moopt's exceptions.

::

    MooptError                  anything moopt reports to a user (CLI exit code 2)
    ├── ConfigError             a setting, flag or config file is wrong
    ├── DataError               the dataset cannot be used as given
    ├── StudyError              the study or its storage does not fit this run
    └── CandidateError          one candidate failed (the search records it and goes on)

Messages say what was expected, what was got, and how to fix it.
"""

from __future__ import annotations


class MooptError(Exception):
    """Base class of every error moopt raises on purpose."""


class ConfigError(MooptError, ValueError):
    """A setting, command-line flag or config file is invalid."""


class DataError(MooptError, ValueError):
    """The dataset cannot be loaded or used as given."""


class StudyError(MooptError):
    """The study in the storage does not fit this run, or the storage cannot be used."""


class CandidateError(MooptError):
    """A candidate could not be fitted, converted or measured.

    Attributes:
        stage: Where it failed: ``fit``, ``convert``, ``parity`` or ``measure``.
    """

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage
