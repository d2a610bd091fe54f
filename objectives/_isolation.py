"""Run objectives: quality in this process, timing and memory in a fresh isolated one.

Isolated objectives are measured by a child process (``python -m objectives._probe``) that
starts with BLAS/OpenMP threads limited to one, pins itself to as many CPUs as ONNX Runtime has
intra-op threads, and measures peak memory before anything else has run in it. A file lock
held around the child means parallel workers on one machine never time two models at once.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
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

_THREAD_ENV = (
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
        overload_retries: Re-measure this many times while the host is overloaded.
    """

    enabled: bool = True
    lock_path: Path | None = field(default_factory=default_lock_path)
    pin: bool = True
    timeout_s: float = 300.0
    overload_retries: int = 1


@dataclass(frozen=True)
class MeasurementReport:
    """Every objective's measurement of one model, and the host they were taken on."""

    measurements: Mapping[str, Measurement]
    host: HostRecord
    repeats: int = 0

    def values(self) -> dict[str, float]:
        """Every metric of every objective, merged into one mapping."""
        merged: dict[str, float] = {}
        for m in self.measurements.values():
            merged.update(m.values)
        return merged


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in _THREAD_ENV:
        env[name] = "1"
    return env


def _run_child(request: dict[str, Any], timeout_s: float) -> list[Measurement]:
    with tempfile.TemporaryDirectory(prefix="moopt-probe-") as tmp:
        req_path, resp_path = Path(tmp) / "request.pkl", Path(tmp) / "response.pkl"
        with open(req_path, "wb") as f:
            pickle.dump(request, f, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "objectives._probe", str(req_path), str(resp_path)],
                env=_child_env(),
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise MeasurementError(
                f"The measuring process took longer than {timeout_s:g} s and was stopped."
            ) from exc
        if proc.returncode != 0 or not resp_path.exists():
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
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
    host = host_record()
    repeats = 0
    if isolated:
        request = {
            "objectives": isolated,
            "model": model,
            "data": data,
            "settings": settings,
            "pin": isolation.pin,
        }
        while True:
            with measurement_lock(isolation.lock_path):
                host = host_record()
                if isolation.enabled:
                    measured = _run_child(request, isolation.timeout_s)
                else:
                    measured = measure_in_process(isolated, model, data, settings)
            if not host.overloaded or repeats >= isolation.overload_retries:
                break
            repeats += 1
            time.sleep(1.0)
        results.update({m.objective: m for m in measured})
    return MeasurementReport(results, host, repeats)
