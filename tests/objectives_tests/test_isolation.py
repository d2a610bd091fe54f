from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from objectives import (
    Isolation,
    MeasurementError,
    OnnxModel,
    RuntimeSettings,
    host_record,
    measure,
    measurement_lock,
)

HERE = Path(__file__).parent


@pytest.fixture
def helpers_on_child_path(monkeypatch: pytest.MonkeyPatch) -> None:
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", f"{HERE}{os.pathsep}{path}" if path else str(HERE))


def test_isolated_objectives_run_in_another_process(
    helpers_on_child_path, small_model, holdout
) -> None:
    from probe_helpers import Throughput

    report = measure([Throughput()], small_model.model, holdout, RuntimeSettings())
    m = report.measurements["throughput_rows_s"]
    assert m.details["pid"] != os.getpid()
    assert m.values["throughput_rows_s"] > 100


def test_isolation_off_measures_in_this_process(
    helpers_on_child_path, small_model, holdout
) -> None:
    from probe_helpers import Throughput

    report = measure(
        [Throughput()],
        small_model.model,
        holdout,
        RuntimeSettings(),
        Isolation(enabled=False, lock_path=None),
    )
    assert report.measurements["throughput_rows_s"].details["pid"] == os.getpid()


def test_a_model_that_does_not_load_is_a_measurement_error(holdout) -> None:
    from objectives import Latency

    with pytest.raises(MeasurementError, match="cannot load the model"):
        measure([Latency()], OnnxModel(b"not an onnx model"), holdout, RuntimeSettings())


def test_the_lock_keeps_measurements_apart(tmp_path: Path) -> None:
    lock = tmp_path / "measure.lock"
    inside: list[int] = []
    overlaps: list[int] = []

    def hold() -> None:
        with measurement_lock(lock):
            inside.append(1)
            if len(inside) > 1:
                overlaps.append(1)
            time.sleep(0.05)
            inside.pop()

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not overlaps


def test_host_record_names_the_machine() -> None:
    record = host_record()
    assert record.logical_cores >= 1 and record.physical_cores >= 1
    assert record.cpu and record.onnxruntime
    data = record.as_dict()
    assert set(data) >= {
        "cpu",
        "logical_cores",
        "physical_cores",
        "onnxruntime",
        "load_average",
        "overloaded",
    }


def test_an_overloaded_host_is_measured_again(monkeypatch, small_model, holdout) -> None:
    """The host record is faked (a unit-level fake): the first reading says overloaded."""
    import dataclasses

    import objectives._isolation as isolation_module
    from objectives import Latency

    real = isolation_module.host_record
    readings: list[bool] = []

    def fake_host_record(own_workers: int = 0):
        record = real(own_workers)
        if not readings:
            record = dataclasses.replace(record, load_average=(99.0, 9.0, 9.0))
        readings.append(record.overloaded)
        return record

    monkeypatch.setattr(isolation_module, "host_record", fake_host_record)
    report = measure([Latency()], small_model.model, holdout, RuntimeSettings())
    assert readings[0] is True
    assert report.repeats >= 1
    assert report.host.overloaded is False  # the undisturbed attempt is the one kept
    assert report.host.as_dict()["overloaded"] is False


def test_the_next_measuring_process_is_started_ahead_and_used_once(
    helpers_on_child_path, small_model, holdout
) -> None:
    from probe_helpers import Throughput

    from objectives import PeakMemory
    from objectives import _isolation as isolation

    spare = Isolation(spare=True)
    first = measure([Throughput()], small_model.model, holdout, RuntimeSettings(), spare)
    waiting = isolation._spare
    assert waiting is not None and waiting.poll() is None
    second = measure([Throughput()], small_model.model, holdout, RuntimeSettings(), spare)
    # The second measurement ran in the process started ahead, which then ended.
    assert second.measurements["throughput_rows_s"].details["pid"] == waiting.pid
    assert first.measurements["throughput_rows_s"].details["pid"] != waiting.pid
    assert waiting.wait(timeout=10) == 0
    assert isolation._spare is not None and isolation._spare.pid != waiting.pid
    # Peak memory in a spare matches a process started for the measurement.
    fresh = measure([PeakMemory()], small_model.model, holdout, RuntimeSettings(), Isolation())
    ahead = measure([PeakMemory()], small_model.model, holdout, RuntimeSettings(), spare)
    assert (
        abs(ahead.values()["peak_memory_mb"] - fresh.values()["peak_memory_mb"])
        < 0.1 * fresh.values()["peak_memory_mb"] + 1.0
    )


def test_a_spare_with_an_outdated_environment_is_not_used(
    monkeypatch: pytest.MonkeyPatch, helpers_on_child_path, small_model, holdout
) -> None:
    from probe_helpers import Throughput

    from objectives import _isolation as isolation

    spare = Isolation(spare=True)
    measure([Throughput()], small_model.model, holdout, RuntimeSettings(), spare)
    stale = isolation._spare
    assert stale is not None
    monkeypatch.setenv("MOOPT_TEST_MARKER", "changed")
    report = measure([Throughput()], small_model.model, holdout, RuntimeSettings(), spare)
    assert report.measurements["throughput_rows_s"].details["pid"] != stale.pid
    assert stale.poll() is not None


def test_a_spare_ends_with_its_parent(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys\n"
        "from objectives import _isolation as iso\n"
        "iso._start_spare()\n"
        "print(iso._spare.pid, flush=True)\n"
        "os._exit(0)\n"  # no atexit: the spare must notice its parent is gone by itself
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=60
    )
    pid = int(out.stdout.strip())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        pytest.fail("the spare measuring process outlived its parent")


def test_the_runs_own_workers_do_not_make_the_host_overloaded() -> None:
    import dataclasses

    busy = dataclasses.replace(host_record(), logical_cores=2, load_average=(3.5, 3.0, 2.0))
    assert busy.overloaded
    # Two other local workers of this run, kept off the measuring CPU, explain the load.
    assert not dataclasses.replace(busy, own_workers=2).overloaded
    assert dataclasses.replace(busy, own_workers=1).overloaded


def test_a_machine_slow_for_a_while_is_not_measured_three_times_over() -> None:
    """Unit level: faked attempts with their slowdowns against the recorded best."""
    import dataclasses

    from objectives import Measurement, host_record
    from objectives._isolation import Pace

    quiet_host = dataclasses.replace(host_record(), load_average=(0.0, 0.0, 0.0))
    busy_host = dataclasses.replace(quiet_host, load_average=(99.0, 9.0, 9.0))

    def attempt(slowdown: float) -> list[Measurement]:
        details = {"slowdown": slowdown, "contended": slowdown > 1.1}
        return [Measurement("latency_p95_ms", {"latency_p95_ms": 1.0}, details)]

    pace = Pace()
    # The pace is unknown yet: a contended attempt is taken again, a quiet one is not.
    assert pace.disturbed(attempt(1.0), quiet_host) is False
    assert pace.disturbed(attempt(1.3), quiet_host) is True
    assert pace.disturbed(attempt(1.3), quiet_host) is True
    # Slower than the pace so far (the median of 1.0, 1.3, 1.3): taken again.
    assert pace.disturbed(attempt(1.6), quiet_host) is True
    # The machine has run 1.3x slower than its best for a while (median 1.3 of the last
    # attempts): another attempt would be as slow, so this one is kept.
    assert pace.disturbed(attempt(1.32), quiet_host) is False
    # Clearly slower than that pace: taken again.
    assert pace.disturbed(attempt(1.8), quiet_host) is True
    # An overloaded host is always measured again, whatever the pace.
    assert pace.disturbed(attempt(1.3), busy_host) is True
