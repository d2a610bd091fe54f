"""Run objectives: quality in this process, timing and memory in a fresh isolated one.

Isolated objectives are measured by a child process (``python -m objectives._probe``) that
starts with BLAS/OpenMP threads limited to one, pins itself to as many CPUs as ONNX Runtime has
intra-op threads, and measures peak memory before anything else has run in it. A file lock
held around the child means parallel workers on one machine never time two models at once.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from objectives._base import (
    EvalData,
    Measurement,
    MeasurementError,
    Objective,
    OnnxModel,
    RuntimeSettings,
)
from objectives._host import HostRecord, host_record
from objectives._latency import Latency

#: Thread-count variables of the BLAS and OpenMP pools (1 in a measuring process).
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def default_lock_path() -> Path:
    """The machine-wide measurement lock shared by every moopt process of this user."""
    return Path(tempfile.gettempdir()) / f"moopt-measure-{os.getuid()}.lock"


@contextmanager
def measurement_lock(path: Path | None) -> Iterator[float]:
    """Hold an exclusive lock on ``path`` (no lock when None); yields the seconds waited."""
    if path is None:
        yield 0.0
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield time.perf_counter() - start
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@dataclass(frozen=True)
class Isolation:
    """How isolated measurements are taken.

    Attributes:
        enabled: Measure isolated objectives in a fresh child process (off: in this process;
            only for comparison, the numbers are then disturbed by whatever else runs here).
        lock_path: Measurement lock shared by processes on this machine (None: no lock).
        pin: Pin the child to a fixed CPU set where the OS allows it.
        timeout_s: Give up on a child that takes longer.
        retries: Re-measure up to this many times while the host is overloaded or the machine
            runs slower than its best (a neighbour on the core) and than its recent pace
            (:class:`Pace`); the least disturbed is kept.
        spare: Keep the next measuring process started ahead of time, its imports done away
            from the measuring CPUs, so that a measurement (and the lock) does not wait for
            Python and ONNX Runtime to start. It still serves one request only, so peak
            memory is measured as in a fresh process.
    """

    enabled: bool = True
    lock_path: Path | None = field(default_factory=default_lock_path)
    pin: bool = True
    timeout_s: float = 300.0
    retries: int = 2
    spare: bool = True


@dataclass(frozen=True)
class MeasurementReport:
    """Every objective's measurement of one model, and the host they were taken on."""

    measurements: Mapping[str, Measurement]
    host: HostRecord
    repeats: int = 0
    cpus: tuple[int, ...] | None = None

    def values(self) -> dict[str, float]:
        """Every metric of every objective, merged into one mapping."""
        merged: dict[str, float] = {}
        for m in self.measurements.values():
            merged.update(m.values)
        return merged


def measurement_cpus(threads: int) -> list[int] | None:
    """The CPUs the measuring process pins itself to: the last ``threads`` allowed ones.

    None where the OS has no CPU affinity or there are no more CPUs than threads.
    """
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[-threads:] if len(allowed) > threads else None


#: A folder of files named by the process ids of sibling workers (`moopt run --workers`):
#: while one of them measures, all of them are kept off the measuring CPUs.
SIBLINGS_ENV = "MOOPT_SIBLINGS_DIR"


def _sibling_pids() -> set[int]:
    """Process ids of the other registered local workers (see :data:`SIBLINGS_ENV`)."""
    folder = os.environ.get(SIBLINGS_ENV)
    if not folder or not os.path.isdir(folder):
        return set()
    return {int(name) for name in os.listdir(folder) if name.isdigit()} - {os.getpid()}


def _threads_to_move() -> list[int]:
    """Thread ids of this process and of every registered sibling worker process."""
    pids = {os.getpid()} | _sibling_pids()
    tids = []
    for pid in pids:
        with suppress(OSError):
            tids += [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    return tids


@contextmanager
def _parent_elsewhere(cpus: list[int] | None) -> Iterator[None]:
    """Move every thread of this process (and of sibling workers) off ``cpus`` meanwhile.

    Threads left over from training (OpenMP, BLAS pools), and other local workers training,
    would otherwise be free to run on the measuring CPU. Affinity is restored afterwards
    (the measurement lock makes this safe); where it cannot be changed, nothing is.
    """
    if not cpus:
        yield
        return
    others = set(os.sched_getaffinity(0)) - set(cpus)
    if not others:
        yield
        return
    saved: dict[int, set[int]] = {}
    try:
        for tid in _threads_to_move():
            try:
                saved[tid] = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, others)
            except OSError:  # the thread ended meanwhile, or affinity is not ours to change
                saved.pop(tid, None)
    except OSError:
        pass
    try:
        yield
    finally:
        for tid, mask in saved.items():
            with suppress(OSError):
                os.sched_setaffinity(tid, mask)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in THREAD_ENV:
        env[name] = "1"
    return env


_PROBE = Path(__file__).with_name("_probe.py")
#: The measuring process started ahead of time, waiting for its one request (see ``spare``).
_spare: subprocess.Popen[str] | None = None
#: The environment the spare was started with: a spare is used only while it still matches.
_spare_env: dict[str, str] = {}


def _stop_spare() -> None:
    global _spare
    proc, _spare = _spare, None
    if proc is None:
        return
    try:
        proc.communicate(timeout=5)  # closes its stdin: a waiting spare then exits
    except (OSError, ValueError, subprocess.TimeoutExpired):
        proc.kill()
        with suppress(OSError, ValueError):
            proc.communicate()


atexit.register(_stop_spare)


def _start_spare() -> None:
    """Start the next measuring process, pinned away from the usual measuring CPU."""
    global _spare, _spare_env
    _stop_spare()
    _spare_env = _child_env()
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    measuring = measurement_cpus(1) or []
    home = [c for c in allowed if c not in measuring]
    _spare = subprocess.Popen(
        [sys.executable, str(_PROBE), "--spare", ",".join(map(str, home))],
        env=_spare_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _take_spare(req: Path, resp: Path, cpus: list[int] | None) -> subprocess.Popen[str] | None:
    """Hand the request to the spare process, if one is alive; it is then used up.

    A spare started with another environment (a changed ``PYTHONPATH``, say) is not used.
    """
    global _spare
    if _spare is not None and _spare_env != _child_env():
        _stop_spare()
    proc, _spare = _spare, None
    if proc is None:
        return None
    if proc.poll() is not None or proc.stdin is None:  # it died meanwhile
        with suppress(OSError, ValueError):
            proc.communicate()
        return None
    if cpus is None and hasattr(os, "sched_getaffinity"):
        cpus = sorted(os.sched_getaffinity(0))  # unpinned: where this process may run
    try:
        proc.stdin.write(f"{req}\t{resp}\t{','.join(map(str, cpus or []))}\n")
        proc.stdin.close()
        proc.stdin = None  # used up: communicate() must not flush it
    except OSError:
        proc.kill()
        proc.communicate()
        return None
    return proc


def _run_child(
    request: dict[str, Any], timeout_s: float, cpus: list[int] | None, spare: bool = False
) -> list[Measurement]:
    """Measure in a fresh child pinned to ``cpus``; this process and its siblings move away.

    The child is started first, with its CPUs on its command line, so that it pins itself
    before importing anything heavy; only then does this process leave those CPUs (a child
    started afterwards would inherit, and start up on, the CPUs the others train on). With
    ``spare``, the child started ahead of time takes the request if there is one, and the
    next one is started afterwards.
    """
    with tempfile.TemporaryDirectory(prefix="moopt-probe-") as tmp:
        req_path, resp_path = Path(tmp) / "request.pkl", Path(tmp) / "response.pkl"
        with open(req_path, "wb") as f:
            pickle.dump(request, f, protocol=pickle.HIGHEST_PROTOCOL)
        proc = _take_spare(req_path, resp_path, cpus) if spare else None
        if proc is None:
            command = [
                sys.executable,
                str(_PROBE),
                str(req_path),
                str(resp_path),
                ",".join(map(str, cpus or [])),
            ]
            proc = subprocess.Popen(
                command,
                env=_child_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        with _parent_elsewhere(cpus):
            try:
                _, stderr = proc.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired as exc:
                proc.kill()
                proc.communicate()
                raise MeasurementError(
                    f"The measuring process took longer than {timeout_s:g} s and was stopped."
                ) from exc
        if spare:
            _start_spare()
        if proc.returncode != 0 or not resp_path.exists():
            lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
            reason = lines[-1] if lines else f"exit code {proc.returncode}"
            raise MeasurementError(f"The measuring process failed: {reason}")
        # The response was written by our own child process a moment ago.
        with open(resp_path, "rb") as f:
            result: list[Measurement] = pickle.load(f)
        return result


def measure_in_process(
    objectives: Sequence[Objective], model: OnnxModel, data: EvalData, settings: RuntimeSettings
) -> list[Measurement]:
    """Measure each objective here, in order (what the probe process does after pinning)."""
    ordered = sorted(objectives, key=lambda o: not getattr(o, "first_in_process", False))
    return [o.measure(model, data, settings) for o in ordered]


def run_request(request: Mapping[str, Any]) -> list[Measurement]:
    """Carry out a measuring request here (the probe process calls this after pinning)."""
    if request["kind"] == "interleaved":
        latency: Latency = request["objective"]
        return latency.measure_many(request["models"], request["data"], request["settings"])
    return measure_in_process(
        request["objectives"], request["model"], request["data"], request["settings"]
    )


def _threads(settings: RuntimeSettings | Sequence[RuntimeSettings]) -> int:
    if isinstance(settings, RuntimeSettings):
        return settings.intra_op_threads
    return max(s.intra_op_threads for s in settings)


def _disturbance(measured: Sequence[Measurement], host: HostRecord) -> tuple[bool, float]:
    """How disturbed a measurement was: (host overloaded, largest slowdown of the machine)."""
    slowdowns = [float(m.details.get("slowdown") or 1.0) for m in measured]
    return host.overloaded, max(slowdowns, default=1.0)


#: Attempts remembered to judge the machine's current pace.
PACE_WINDOW = 5
#: A contended attempt is taken again only if it ran this much slower than the recent pace.
PACE_MARGIN = 1.05


class Pace:
    """The machine's recent pace: the slowdowns of the last measurement attempts.

    An attempt that ran slower than the machine's recorded best (``contended``) is taken again,
    in the hope of a quieter moment. But a machine can run slower than its best for a long while
    (another physical host, a lower clock, a steady neighbour): then every attempt is as slow,
    and taking each one three times only multiplies the time. So a contended attempt is taken
    again only while the pace is unknown (fewer than three attempts seen) or when it ran more
    than :data:`PACE_MARGIN` times slower than the median of the last :data:`PACE_WINDOW`.
    An overloaded host is always measured again.
    """

    def __init__(self) -> None:
        self._recent: deque[float] = deque(maxlen=PACE_WINDOW)

    def disturbed(self, measured: Sequence[Measurement], host: HostRecord) -> bool:
        """Whether an attempt should be taken again; the attempt is then remembered."""
        _, slowdown = _disturbance(measured, host)
        steady = len(self._recent) >= 3 and slowdown <= PACE_MARGIN * statistics.median(
            self._recent
        )
        self._recent.append(slowdown)
        contended = any(m.details.get("contended") for m in measured)
        return host.overloaded or (contended and not steady)


#: This process's pace, shared by every measurement it takes.
_pace = Pace()


def _isolated(
    request: dict[str, Any], isolation: Isolation
) -> tuple[list[Measurement], HostRecord, int, tuple[int, ...] | None]:
    """Run a request under the lock, in a child unless isolation is off.

    A measurement taken while the host was overloaded, or flagged ``contended`` by an
    objective, is taken again (up to ``isolation.retries`` times); the least disturbed attempt
    is kept.
    """
    attempts: list[tuple[list[Measurement], HostRecord]] = []
    cpus: list[int] | None = None
    while True:
        with measurement_lock(isolation.lock_path):
            host = host_record(own_workers=len(_sibling_pids()))
            if isolation.enabled:
                # Chosen here, before this process moves off them: a child inherits the
                # parent's affinity and could not see these CPUs otherwise.
                cpus = measurement_cpus(_threads(request["settings"]))
                cpus = cpus if isolation.pin else None
                measured = _run_child(request, isolation.timeout_s, cpus, isolation.spare)
            else:
                measured = run_request(request)
        attempts.append((measured, host))
        if not _pace.disturbed(measured, host) or len(attempts) > isolation.retries:
            break
        time.sleep(0.5)
    best, best_host = min(attempts, key=lambda a: _disturbance(*a))
    return best, best_host, len(attempts) - 1, tuple(cpus) if cpus else None


def measure_interleaved(
    latency: Latency,
    models: Sequence[OnnxModel],
    data: EvalData,
    settings: RuntimeSettings | Sequence[RuntimeSettings],
    isolation: Isolation | None = None,
) -> tuple[list[Measurement], HostRecord]:
    """Time several models interleaved (A B C A B C ...) in one isolated session.

    Use it to compare models fairly: models timed one after the other can look far apart on a
    busy machine; timed interleaved, the same drift hits every one.

    Returns:
        One latency measurement per model, in order, and the host record.
    """
    request = {
        "kind": "interleaved",
        "objective": latency,
        "models": list(models),
        "data": data,
        "settings": settings,
    }
    measured, host, _, _ = _isolated(request, isolation or Isolation())
    return measured, host


def measure(
    objectives: Sequence[Objective],
    model: OnnxModel,
    data: EvalData,
    settings: RuntimeSettings,
    isolation: Isolation | None = None,
) -> MeasurementReport:
    """Measure ``model`` with every objective.

    Args:
        objectives: Objectives to measure; isolated ones share one fresh child process.
        model: The ONNX model.
        data: Hold-out rows (labels needed by quality objectives only).
        settings: How the model runs.
        isolation: How to isolate; the default is a fresh pinned child under the lock.

    Raises:
        MeasurementError: An objective could not measure the model.
    """
    isolation = isolation or Isolation()
    local = [o for o in objectives if not o.isolated]
    isolated = [o for o in objectives if o.isolated]
    results = {m.objective: m for m in measure_in_process(local, model, data, settings)}
    if not isolated:
        return MeasurementReport(results, host_record())
    request = {
        "kind": "objectives",
        "objectives": isolated,
        "model": model,
        "data": data,
        "settings": settings,
    }
    measured, host, repeats, cpus = _isolated(request, isolation)
    results.update({m.objective: m for m in measured})
    return MeasurementReport(results, host, repeats, cpus)
