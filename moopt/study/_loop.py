"""The ask-evaluate-tell loop shared by `moopt run` and `moopt replay`.

The budget counts distinct evaluations: a configuration proposed again is served from the
cache (its earlier outcome is copied to the new trial, which the sampler sees as usual), and a
configuration that cannot be evaluated at no cost (``Rejected``, e.g. absent from a replay
table) fails its trial without counting.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna

from moopt._errors import CandidateError, StudyError
from moopt.search import Candidate
from moopt.study._storage import Heartbeat, heartbeat_enabled
from moopt.study._trial import replay_cached


def _storage_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [optuna.exceptions.StorageInternalError]
    try:
        from sqlalchemy.exc import DBAPIError

        errors.append(DBAPIError)
    except ImportError:  # pragma: no cover - SQLAlchemy comes with Optuna
        pass
    return tuple(errors)


#: Errors of a storage that stopped answering for a while (a database restart).
STORAGE_ERRORS = _storage_errors()

#: Proposals per wanted evaluation before the search gives up on finding new configurations.
MAX_ASKS_PER_EVALUATION = 20


class Rejected(Exception):
    """A proposal that is not evaluated and costs nothing (its trial fails, uncounted)."""


@dataclass(frozen=True)
class ProgressEvent:
    """Where a run stands, sent after every trial."""

    done: int
    total: int
    failed: int
    cache_hits: int
    front_size: int
    elapsed_s: float
    last: str

    @property
    def remaining_s(self) -> float | None:
        """Estimated seconds left (None before the first evaluation)."""
        if self.done == 0:
            return None
        return self.elapsed_s / self.done * (self.total - self.done)


@dataclass(frozen=True)
class RunSummary:
    """What one run of the loop did."""

    evaluated: int
    failed: int
    cache_hits: int
    elapsed_s: float
    interrupted: bool
    exhausted: bool
    failures: tuple[tuple[int, str], ...] = field(default_factory=tuple)
    rejected: int = 0
    early_rejected: int = 0
    saved_s: float = 0.0


@dataclass
class _Tally:
    evaluated: int = 0
    failed: int = 0
    hits: int = 0
    rejected: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)


def _cacheable(trial: optuna.trial.FrozenTrial) -> bool:
    """An evaluated trial whose outcome a repeat of its configuration would reproduce."""
    if "candidate_key" not in trial.user_attrs or "cached_from" in trial.user_attrs:
        return False
    if trial.state == optuna.trial.TrialState.COMPLETE:
        return True
    # Fit and conversion failures repeat; measurement failures may be passing faults.
    return trial.user_attrs.get("stage") in ("fit", "convert", "rejected")


def _one(
    study: optuna.Study,
    trial: optuna.Trial,
    propose: Callable[[optuna.Trial], Candidate],
    evaluate: Callable[[optuna.Trial, Candidate], list[float]],
    cache: dict[str, optuna.trial.FrozenTrial],
    tally: _Tally,
) -> str:
    candidate = propose(trial)
    source = cache.get(candidate.key)
    if source is not None:
        tally.hits += 1
        values = replay_cached(trial, source)
        if values is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, values)
        return f"trial {trial.number}: same as trial {source.number}, from the cache"
    trial.set_user_attr("family", candidate.family)
    trial.set_user_attr("params", dict(candidate.params))
    trial.set_user_attr("candidate_key", candidate.key)
    try:
        values = evaluate(trial, candidate)
    except Rejected as exc:
        tally.rejected += 1
        trial.set_user_attr("error", str(exc))
        trial.set_user_attr("stage", "rejected")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        line = f"trial {trial.number} rejected: {exc}"
    except CandidateError as exc:
        tally.evaluated += 1
        tally.failed += 1
        tally.failures.append((trial.number, str(exc)))
        trial.set_user_attr("error", str(exc))
        trial.set_user_attr("stage", exc.stage)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        line = f"trial {trial.number} failed: {exc}"
    else:
        tally.evaluated += 1
        study.tell(trial, values)
        line = f"trial {trial.number}: {candidate.family}"
    cache[candidate.key] = study.trials[trial.number]
    return line


def run_loop(
    study: optuna.Study,
    propose: Callable[[optuna.Trial], Candidate],
    evaluate: Callable[[optuna.Trial, Candidate], list[float]],
    wanted: int,
    *,
    front_size: Callable[[], int] = lambda: 0,
    progress: Callable[[ProgressEvent], None] | None = None,
    exhausted: Callable[[], bool] = lambda: False,
    heartbeat_s: float = 60.0,
    max_outage_s: float = 120.0,
) -> RunSummary:
    """Ask, evaluate and tell until ``wanted`` distinct evaluations were made.

    Args:
        study: The study (its sampler proposes).
        propose: Turns a trial into a candidate (suggesting its parameters).
        evaluate: Evaluates a candidate for a trial and returns its objective values; raises
            ``CandidateError`` (a failed evaluation) or ``Rejected`` (no evaluation).
        wanted: Distinct evaluations to make.
        front_size: Current front size, for progress events.
        progress: Called after every trial.
        exhausted: True when nothing new is left to evaluate (stops the loop).
        heartbeat_s: Heartbeat interval of a running trial (database storages).
        max_outage_s: How long to wait for a storage that stopped answering.
    """
    cache = {t.user_attrs["candidate_key"]: t for t in study.trials if _cacheable(t)}
    tally = _Tally()
    asks = 0
    interrupted = False
    start = time.perf_counter()
    trial: optuna.Trial | None = None
    outage_since: float | None = None
    storage = study._storage  # Optuna exposes no public handle; needed for heartbeats
    worker = {
        "host": os.environ.get("MOOPT_HOST_NAME") or socket.gethostname(),
        "pid": os.getpid(),
    }
    try:
        while (
            tally.evaluated < wanted
            and asks < MAX_ASKS_PER_EVALUATION * wanted
            and not exhausted()
        ):
            try:
                if heartbeat_enabled(storage):
                    optuna.storages.fail_stale_trials(study)
                asks += 1
                trial = study.ask()
                with Heartbeat(storage, trial._trial_id, heartbeat_s):
                    # Named inside the heartbeat: a trial that names its worker has beaten.
                    trial.set_user_attr("worker", worker)
                    line = _one(study, trial, propose, evaluate, cache, tally)
                trial = None
                outage_since = None
            except STORAGE_ERRORS as exc:
                # The database went away: wait for it (the unfinished trial, if any, is
                # failed by its missing heartbeat and retried).
                outage_since = outage_since or time.monotonic()
                if time.monotonic() - outage_since > max_outage_s:
                    raise StudyError(
                        f"The storage has not answered for {max_outage_s:g} s: "
                        f"{type(exc).__name__}. Check that the database is running."
                    ) from exc
                trial = None
                time.sleep(min(5.0, 0.5 + (time.monotonic() - outage_since) / 4))
                continue
            if progress is not None:
                progress(
                    ProgressEvent(
                        done=tally.evaluated,
                        total=wanted,
                        failed=tally.failed,
                        cache_hits=tally.hits,
                        front_size=front_size(),
                        elapsed_s=time.perf_counter() - start,
                        last=line,
                    )
                )
    except KeyboardInterrupt:
        interrupted = True
        if trial is not None and not study.trials[trial.number].state.is_finished():
            trial.set_user_attr("error", "interrupted by the user")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return RunSummary(
        evaluated=tally.evaluated,
        failed=tally.failed,
        cache_hits=tally.hits,
        elapsed_s=time.perf_counter() - start,
        interrupted=interrupted,
        exhausted=tally.evaluated < wanted and not interrupted,
        failures=tuple(tally.failures),
        rejected=tally.rejected,
    )
