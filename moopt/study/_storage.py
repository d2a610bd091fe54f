"""Where a study lives: the embedded journal file by default, or any Optuna storage URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend

from moopt._errors import StudyError

JOURNAL_NAME = "study.journal"
_RDB_SCHEMES = ("sqlite", "postgresql", "mysql")


def storage_description(storage: str | None, out: Path) -> str:
    """How the storage is named in messages and records."""
    return storage or f"journal file {out / JOURNAL_NAME}"


def open_storage(storage: str | None, out: Path) -> Any:
    """Open the study storage.

    Args:
        storage: None for the embedded default (a journal file in ``out``); a database URL
            (``postgresql://...``, ``sqlite:///...``, ``mysql://...``); or a journal file path
            (``*.journal`` or ``journal:///path``).
        out: The output folder (created here for the embedded default).

    Raises:
        StudyError: The URL has an unknown form or the storage cannot be opened.
    """
    if storage is None or storage.startswith("journal:") or storage.endswith(".journal"):
        if storage is None:
            path = out / JOURNAL_NAME
        else:
            path = Path(storage.removeprefix("journal://").removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path))
        return optuna.storages.JournalStorage(backend)
    scheme = storage.split("://", 1)[0].split("+", 1)[0] if "://" in storage else ""
    if scheme not in _RDB_SCHEMES:
        raise StudyError(
            f"Unknown storage '{storage}'. Expected a database URL "
            "(postgresql://user@host/db, sqlite:///file.db, mysql://...) or a "
            "journal file path ending in .journal."
        )
    try:
        return optuna.storages.RDBStorage(storage, heartbeat_interval=60, grace_period=120)
    except Exception as exc:  # SQLAlchemy raises driver-specific errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StudyError(
            f"Cannot open the storage '{storage}': {first}. Check that the "
            "database is running and the URL is right."
        ) from exc
