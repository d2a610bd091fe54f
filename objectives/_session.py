"""One way to open an ONNX Runtime session, shared by every objective."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from objectives._base import MeasurementError, RuntimeSettings

if TYPE_CHECKING:
    import numpy as np

_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def open_session(content: bytes, settings: RuntimeSettings) -> Any:
    """Open a CPU inference session with fixed threads and sequential execution.

    Args:
        content: Serialized ONNX model.
        settings: Threads, optimization level and arena setting.

    Returns:
        An ``onnxruntime.InferenceSession``.

    Raises:
        MeasurementError: The bytes are not a model ONNX Runtime can load.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, _LEVELS[settings.graph_optimization]
    )
    options.enable_cpu_mem_arena = settings.memory_arena
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own untyped exceptions for invalid models
        raise MeasurementError(f"ONNX Runtime cannot load the model: {exc}") from exc


def input_name(session: Any) -> str:
    """Name of the session's single feature input."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise MeasurementError(
            f"Expected a model with one input tensor, got {len(inputs)}; export the model "
            "with a single float feature input."
        )
    return str(inputs[0].name)


def run(session: Any, features: np.ndarray) -> list[Any]:
    """Run the session on a float32 feature matrix and return every output."""
    try:
        return list(session.run(None, {input_name(session): features}))
    except MeasurementError:
        raise
    except Exception as exc:  # ORT's shape and type errors
        raise MeasurementError(f"ONNX Runtime could not run the model: {exc}") from exc


def batch_of(features: np.ndarray, batch_size: int) -> np.ndarray:
    """The first ``batch_size`` rows, repeated if there are fewer rows than that."""
    import numpy as np

    if len(features) == 0:
        raise MeasurementError("Expected at least one row of features, got none.")
    reps = -(-batch_size // len(features))
    rows = np.concatenate([features] * reps) if reps > 1 else features
    return np.ascontiguousarray(rows[:batch_size], dtype=np.float32)
