"""Where a study lives: the embedded journal file by default, or any Optuna storage URL."""

from __future__ import annotations

import contextlib
import threading
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


def open_storage(storage: str | None, out: Path, heartbeat_s: int = 60) -> Any:
    """Open the study storage.

    Args:
        storage: None for the embedded default (a journal file in ``out``); a database URL
            (``postgresql://...``, ``sqlite:///...``, ``mysql://...``); or a journal file path
            (``*.journal`` or ``journal:///path``).
        out: The output folder (created here for the embedded default).
        heartbeat_s: For databases: how often a worker signals that its trial is alive; a
            trial silent for three times as long is failed and retried.

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
        return optuna.storages.RDBStorage(
            storage,
            # Survive a database restart: test pooled connections before use.
            engine_kwargs={"pool_pre_ping": True},
            heartbeat_interval=heartbeat_s,
            grace_period=3 * heartbeat_s,
            # A trial whose worker stopped beating is failed, and its configuration retried.
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=2
            ),
        )
    except Exception as exc:  # SQLAlchemy raises driver-specific errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StudyError(
            f"Cannot open the storage '{storage}': {first}. Check that the "
            "database is running and the URL is right."
        ) from exc


def heartbeat_enabled(storage: Any) -> bool:
    """Whether trials in ``storage`` beat (databases opened by :func:`open_storage`).

    Optuna wraps an RDBStorage in a cache that is a BaseHeartbeat but not an RDBStorage.
    """
    from optuna.storages._heartbeat import BaseHeartbeat  # no public name in Optuna 5

    return isinstance(storage, BaseHeartbeat) and storage.get_heartbeat_interval() is not None


class Heartbeat:
    """Records a running trial's heartbeat in a database storage until stopped.

    Optuna beats only inside ``study.optimize``; moopt's ask-and-tell loop beats itself.
    """

    def __init__(self, storage: Any, trial_id: int, interval_s: float) -> None:
        self._storage = storage
        self._trial_id = trial_id
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with contextlib.suppress(Exception):  # a missed beat is retried at the next one
                self._storage.record_heartbeat(self._trial_id)

    def __enter__(self) -> Heartbeat:
        if heartbeat_enabled(self._storage):
            with contextlib.suppress(Exception):
                self._storage.record_heartbeat(self._trial_id)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
