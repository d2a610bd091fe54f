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

    def fake_host_record():
        record = real()
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
