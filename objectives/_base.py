"""The small interface every objective implements, and the values it exchanges."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

Direction = Literal["maximize", "minimize"]
GraphOptimization = Literal["disable", "basic", "extended", "all"]


class MeasurementError(Exception):
    """A measurement could not be taken (the model does not load or run, the probe died)."""


@dataclass(frozen=True)
class RuntimeSettings:
    """How the ONNX model runs while it is measured; recorded with every measurement.

    Attributes:
        batch_size: Rows per inference call.
        intra_op_threads: ONNX Runtime intra-op threads (inter-op is always 1, sequential).
        graph_optimization: ONNX Runtime graph optimization level.
        memory_arena: Whether ONNX Runtime's CPU memory arena is enabled.
    """

    batch_size: int = 1
    intra_op_threads: int = 1
    graph_optimization: GraphOptimization = "all"
    memory_arena: bool = True

    def as_dict(self) -> dict[str, Any]:
        """Return the settings as plain JSON-ready values."""
        return {
            "batch_size": self.batch_size,
            "intra_op_threads": self.intra_op_threads,
            "inter_op_threads": 1,
            "execution_mode": "sequential",
            "graph_optimization": self.graph_optimization,
            "memory_arena": self.memory_arena,
        }


@dataclass(frozen=True)
class OnnxModel:
    """A serialized ONNX model: what ships and what every objective measures."""

    content: bytes = field(repr=False)

    @cached_property
    def sha256(self) -> str:
        """Hex SHA-256 of the serialized model."""
        return hashlib.sha256(self.content).hexdigest()

    @property
    def size_kb(self) -> float:
        """Size of the serialized model in KiB."""
        return len(self.content) / 1024.0


@dataclass(frozen=True)
class EvalData:
    """Rows the model is measured on: float32 features and, for quality scores, labels."""

    features: np.ndarray = field(repr=False)
    labels: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Measurement:
    """What one objective measured on one model.

    Attributes:
        objective: Name of the objective that measured it.
        values: Numeric metrics, keyed by metric name (e.g. ``latency_p95_ms``).
        details: Everything needed to judge the numbers (sample counts, intervals, settings).
    """

    objective: str
    values: Mapping[str, float]
    details: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Objective(Protocol):
    """One thing measured about a model, and which way is better.

    ``name`` is the metric the search optimizes; ``metrics`` lists every key that
    :meth:`measure` puts in :attr:`Measurement.values` (``name`` among them). An objective
    with ``isolated`` set is measured in a fresh, thread-limited process (see
    :func:`objectives.measure`) so that nothing else in the searching process disturbs it; it
    must then be picklable.
    """

    @property
    def name(self) -> str:
        """Metric key optimized by the search."""
        ...

    @property
    def direction(self) -> Direction:
        """``maximize`` or ``minimize``."""
        ...

    @property
    def unit(self) -> str:
        """Unit of the optimized metric, for tables and plots."""
        ...

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric key the measurement reports."""
        ...

    @property
    def isolated(self) -> bool:
        """Whether the objective must be measured in a fresh isolated process."""
        ...

    def measure(self, model: OnnxModel, data: EvalData, settings: RuntimeSettings) -> Measurement:
        """Measure ``model`` on ``data`` run with ``settings``."""
        ...
