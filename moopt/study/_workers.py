"""Workers: several processes sharing one study, on one machine or several.

A worker (`moopt worker`) opens an existing study, reads the whole configuration from the
study's record, and evaluates trials like `moopt run` does; trials are coordinated through the
storage (a journal file on one machine, PostgreSQL across machines). Measurements never
overlap on one machine (the measurement lock), every trial records the host and process that
ran it, and a trial whose worker died is failed and its configuration retried: by heartbeat on
a database, by checking the worker's process on a journal file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna

from moopt._config import Config
from moopt.study._loop import ProgressEvent, RunSummary
from moopt.study._storage import JOURNAL_NAME
from objectives._isolation import SIBLINGS_ENV, THREAD_ENV

#: Stages at which an evaluated candidate can fail (a rejected proposal is not evaluated).
_EVALUATION_STAGES = ("fit", "convert", "quantize", "parity", "measure", "timeout", "memory")


def host_name() -> str:
    """This worker's host: ``$MOOPT_HOST_NAME``, else the machine's host name.

    Set it where several machines (containers) share one host name, so that a worker never
    takes another machine's live process for a dead one of its own.
    """
    return os.environ.get("MOOPT_HOST_NAME") or socket.gethostname()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_dead_workers(study: optuna.Study) -> list[int]:
    """Fail the running trials of workers on this host that no longer exist; retry them.

    Returns:
        The trial numbers failed.
    """
    host = host_name()
    failed = []
    storage = study._storage  # Optuna has no public way to annotate another process's trial
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if not worker or worker.get("host") != host or _alive(int(worker["pid"])):
            continue
        with contextlib.suppress(Exception):  # another sweeper got there first
            storage.set_trial_user_attr(
                trial._trial_id, "error", f"its worker (process {worker['pid']}) died"
            )
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            if trial.params:
                study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            failed.append(trial.number)
    return failed


def summarize(
    study: optuna.Study, before: set[int], elapsed_s: float, interrupted: bool
) -> RunSummary:
    """What the trials started after ``before`` did, whichever worker ran them."""
    evaluated = failed = hits = rejected = early = 0
    saved = 0.0
    failures = []
    for t in study.get_trials(deepcopy=False):
        if t.number in before or not t.state.is_finished():
            continue
        attrs = t.user_attrs
        if "cached_from" in attrs:
            hits += 1
        elif attrs.get("stage") == "rejected":
            rejected += 1
        elif t.state == optuna.trial.TrialState.COMPLETE:
            evaluated += 1
            if "early_rejected" in attrs:
                early += 1
                saved += attrs["early_rejected"]["saved_s"]
        elif attrs.get("stage") in _EVALUATION_STAGES:
            evaluated += 1
            failed += 1
            failures.append((t.number, str(attrs.get("error", ""))))
    return RunSummary(
        evaluated,
        failed,
        hits,
        elapsed_s,
        interrupted,
        False,
        tuple(failures),
        rejected,
        early,
        saved,
    )


def evaluations(study: optuna.Study, under_way: bool = False) -> int:
    """Distinct evaluations in the study (with ``under_way``: also those being evaluated)."""
    done = summarize(study, set(), 0.0, False).evaluated
    if not under_way:
        return done
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    return done + sum("candidate_key" in t.user_attrs for t in running)


#: Set for local workers: the study's total of distinct evaluations at which they stop.
STUDY_TARGET_ENV = "MOOPT_STUDY_TARGET"


def worker_threads(workers: int) -> int:
    """BLAS/OpenMP threads each of ``workers`` local workers trains with: the CPUs shared out.

    One worker alone keeps every CPU for training; several would otherwise each start a
    thread per CPU and oversubscribe the machine.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cpus or 1) // max(1, workers))


def run_local_workers(
    config: Config,
    study: optuna.Study,
    workers: int,
    progress: Callable[[ProgressEvent], None] | None = None,
) -> RunSummary:
    """Start ``workers`` worker processes on this machine and wait for them.

    The trials are shared between them: each goes on until the study holds ``config.trials``
    more distinct evaluations. Each reseeds its sampler and trains with its share of the
    CPUs (BLAS/OpenMP threads, unless the environment sets them). Ctrl-C stops them all.
    """
    from moopt.study._optimize import WORKER_ENV

    before = {t.number for t in study.trials if t.state.is_finished()}
    storage = config.storage or str(config.out / JOURNAL_NAME)
    target = evaluations(study) + config.trials
    logs = config.out / "workers"
    siblings = logs / "pids"
    shutil.rmtree(siblings, ignore_errors=True)
    siblings.mkdir(parents=True)
    threads = str(worker_threads(workers))
    env = {
        **{name: threads for name in THREAD_ENV},
        **os.environ,
        WORKER_ENV: "1",
        SIBLINGS_ENV: str(siblings),
        STUDY_TARGET_ENV: str(target),
    }
    procs = []
    for i in range(min(workers, config.trials)):
        with open(logs / f"worker-{i}.log", "w") as log:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "moopt",
                        "worker",
                        "--storage",
                        storage,
                        "--study",
                        config.study,
                        "--out",
                        str(config.out),
                        "--trials",
                        str(config.trials),
                        "--quiet",
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    for p in procs:
        (siblings / str(p.pid)).touch()
    start = time.perf_counter()
    interrupted = False
    try:
        while any(p.poll() is None for p in procs):
            time.sleep(2.0)
            if progress is not None:
                s = summarize(study, before, time.perf_counter() - start, False)
                progress(
                    ProgressEvent(
                        s.evaluated,
                        config.trials,
                        s.failed,
                        s.cache_hits,
                        0,
                        time.perf_counter() - start,
                        f"{sum(p.poll() is None for p in procs)} workers",
                    )
                )
    except KeyboardInterrupt:
        interrupted = True
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGINT)
        for p in procs:
            p.wait()
    shutil.rmtree(siblings, ignore_errors=True)
    sweep_dead_workers(study)
    return summarize(study, before, time.perf_counter() - start, interrupted)


def run_worker(
    out: Path,
    storage: str,
    study_name: str,
    trials: int | None,
    progress: Callable[[ProgressEvent], None] | None = None,
    heartbeat_s: int = 60,
) -> RunSummary:
    """Join an existing study and evaluate ``trials`` (default: the study's own count)."""
    from moopt.study._optimize import _is_worker, make_context, open_result, search

    result = open_result(out, storage, study_name, heartbeat_s)
    config = result.config
    ctx = make_context(config, workers=2 if _is_worker() else 1)
    sweep_dead_workers(result.study)
    target = os.environ.get(STUDY_TARGET_ENV) if _is_worker() else None
    return search(
        result.study,
        ctx,
        config,
        trials or config.trials,
        progress,
        study_target=int(target) if target else None,
    )
