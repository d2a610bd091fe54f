"""Workers sharing a study: on a real PostgreSQL server, and through a journal file."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

import moopt
from moopt.study import open_storage, sweep_dead_workers

FAST = ["--dataset", "iris", "--families", "logreg,knn"]


def moopt_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "moopt", *args]


def create(url: str, study: str, out: Path, *args: str) -> None:
    subprocess.run(
        moopt_cmd("create", "--storage", url, "--study", study, "--out", str(out), *args),
        check=True,
        capture_output=True,
        timeout=120,
    )


_OPENED: list[optuna.storages.RDBStorage] = []


def load(url: str, study: str) -> optuna.Study:
    storage = open_storage(url, Path("unused"))
    _OPENED.append(storage)
    return optuna.load_study(study_name=study, storage=storage)


@pytest.fixture(autouse=True)
def _close_connections():
    """Close this test's pooled database connections before the server goes away."""
    yield
    while _OPENED:
        _OPENED.pop().engine.dispose()
    gc.collect()


def evaluated(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [
        t
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE and "cached_from" not in t.user_attrs
    ]


@pytest.mark.slow
def test_two_workers_complete_one_study(postgres, tmp_path: Path) -> None:
    create(postgres.url, "two", tmp_path / "out", *FAST, "--trials", "6")
    procs = [
        subprocess.Popen(
            moopt_cmd(
                "worker",
                "--storage",
                postgres.url,
                "--study",
                "two",
                "--trials",
                "3",
                "--out",
                str(tmp_path / f"w{i}"),
                "--quiet",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    study = load(postgres.url, "two")
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    done = evaluated(study)
    assert len(done) == 6
    assert len({t.user_attrs["worker"]["pid"] for t in done}) == 2  # both took part
    # The study opens like any other for the decision commands.
    front = subprocess.run(
        moopt_cmd(
            "front",
            "--storage",
            postgres.url,
            "--study",
            "two",
            "--out",
            str(tmp_path / "out"),
            "--format",
            "json",
        ),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert json.loads(front.stdout)["front"]


@pytest.mark.slow
def test_a_killed_worker_has_its_trial_failed_and_retried(postgres, tmp_path: Path) -> None:
    """A worker on another machine is SIGKILLed mid-trial: its heartbeat stops, the trial is
    failed, its configuration retried by the next worker, and nothing else is lost."""
    config = tmp_path / "slow.toml"
    # Slow enough (seconds of training) to be killed mid-trial.
    config.write_text("[space.gb]\nn_estimators = [80, 80]\nmax_depth = [3, 3]\n")
    create(
        postgres.url,
        "kill",
        tmp_path / "out",
        "--config",
        str(config),
        "--dataset",
        "digits",
        "--families",
        "gb",
        "--trials",
        "3",
    )
    first = subprocess.Popen(
        moopt_cmd(
            "worker",
            "--storage",
            postgres.url,
            "--study",
            "kill",
            "--trials",
            "3",
            "--out",
            str(tmp_path / "w1"),
            "--heartbeat-s",
            "1",
            "--quiet",
        ),
        # as if on another machine: only its missing heartbeat can tell it died
        env={**os.environ, "MOOPT_HOST_NAME": "machine-a"},
    )
    study = load(postgres.url, "kill")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
        if running and "worker" in running[0].user_attrs:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the worker never started a trial")
    killed = running[0].number
    time.sleep(1.0)  # well into its training
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    time.sleep(4)  # past the grace period (3 heartbeats)
    second = subprocess.run(
        moopt_cmd(
            "worker",
            "--storage",
            postgres.url,
            "--study",
            "kill",
            "--trials",
            "2",
            "--out",
            str(tmp_path / "w2"),
            "--heartbeat-s",
            "1",
            "--quiet",
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert second.returncode == 0, second.stderr
    study = load(postgres.url, "kill")
    assert study.trials[killed].state == optuna.trial.TrialState.FAIL
    retried = [
        t
        for t in study.trials
        if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed
    ]
    assert retried
    assert retried[0].state == optuna.trial.TrialState.COMPLETE
    # Every parameter the killed trial had recorded is retried unchanged (knobs it had not
    # reached are suggested afresh).
    assert study.trials[killed].params.items() <= retried[0].params.items()
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))


@pytest.mark.slow
# The restart cuts this test process's own pooled connections too; psycopg warns as they are
# collected. The worker under test is a separate process, checked by its exit code.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_database_restart_is_survived(postgres, tmp_path: Path) -> None:
    create(postgres.url, "restart", tmp_path / "out", *FAST, "--trials", "5")
    worker = subprocess.Popen(
        moopt_cmd(
            "worker",
            "--storage",
            postgres.url,
            "--study",
            "restart",
            "--trials",
            "5",
            "--out",
            str(tmp_path / "w"),
            "--quiet",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    study = load(postgres.url, "restart")
    deadline = time.monotonic() + 120
    while not evaluated(study) and time.monotonic() < deadline:
        time.sleep(0.2)
    postgres.restart(down_s=3)
    del study
    gc.collect()  # the restart cut its connections: let psycopg warn here, where filtered
    _, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err
    assert len(evaluated(load(postgres.url, "restart"))) >= 5


def test_a_dead_local_worker_has_its_trial_failed_and_retried(tmp_path: Path) -> None:
    storage = open_storage(None, tmp_path)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    trial.set_user_attr("worker", {"host": os.uname().nodename, "pid": gone.pid})
    alive = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    alive.set_user_attr("worker", {"host": os.uname().nodename, "pid": os.getpid()})
    assert sweep_dead_workers(study) == [trial.number]
    states = {t.number: t.state for t in study.trials}
    assert states[trial.number] == optuna.trial.TrialState.FAIL
    assert states[alive.number] == optuna.trial.TrialState.RUNNING  # its worker is alive
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.user_attrs["retry_of"] for t in waiting] == [trial.number]
    assert "died" in study.trials[trial.number].user_attrs["error"]


def test_a_timed_out_candidate_is_recorded_with_its_reason(tmp_path: Path) -> None:
    result = moopt.optimize(
        dataset="digits",
        families="gb",
        trials=1,
        trial_timeout_s=0.2,
        space={"gb": {"n_estimators": [150, 150]}},
        out=str(tmp_path / "out"),
    )
    (trial,) = [t for t in result.study.trials if t.state.is_finished()]
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["stage"] == "timeout"
    assert "longer than the per-trial limit of 0.2 s" in trial.user_attrs["error"]


def test_two_local_workers_share_a_run(tmp_path: Path) -> None:
    result = moopt.optimize(
        dataset="iris", families="logreg,knn", trials=6, workers=2, out=str(tmp_path / "out")
    )
    done = evaluated(result.study)
    # The workers share the work until the study holds 6 evaluations; the last two may be
    # under way at once, so at most one more.
    assert result.summary is not None and result.summary.evaluated == len(done) in (6, 7)
    assert len({t.user_attrs["worker"]["pid"] for t in done}) == 2
    assert (tmp_path / "out" / "front.json").exists()


def test_local_workers_share_out_the_cpus_for_training(monkeypatch: pytest.MonkeyPatch) -> None:
    from moopt.study._workers import worker_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1, 2, 3})
    assert [worker_threads(k) for k in (1, 2, 3, 4, 8)] == [4, 2, 1, 1, 1]


def test_a_candidate_over_the_memory_cap_is_recorded_with_its_reason(tmp_path: Path) -> None:
    # A 300-tree unpruned forest grows the process by far more than 20 MB.
    result = moopt.optimize(
        dataset="digits",
        families="et",
        trials=1,
        trial_memory_mb=20,
        space={
            "et": {"n_estimators": [300, 300], "max_depth": [32, 32], "min_samples_leaf": [1, 1]}
        },
        out=str(tmp_path / "out"),
    )
    (trial,) = [t for t in result.study.trials if t.state.is_finished()]
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["stage"] == "memory"
    assert "over the per-trial cap of 20 MB" in trial.user_attrs["error"]
