"""The machine's yardstick: the fastest recent runs of the reference model on this host kind.

A session that is slowed from start to finish by a neighbour on the same core cannot tell so
from its own reference timings. The best reference median of each session is therefore kept
per host kind (CPU model, cores, ONNX Runtime version) in a small JSON file, and the fastest
of the last :data:`HISTORY` sessions is the floor against which quiet blocks are judged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

#: Sessions remembered per host kind (older ones roll out, so a changed machine is relearnt).
HISTORY = 50


def cache_dir() -> Path:
    """``$MOOPT_CACHE_DIR``, else ``$XDG_CACHE_HOME/moopt``, else ``~/.cache/moopt``."""
    if os.environ.get("MOOPT_CACHE_DIR"):
        return Path(os.environ["MOOPT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "moopt"


def _path(host_kind: str) -> Path:
    digest = hashlib.sha256(host_kind.encode()).hexdigest()[:16]
    return cache_dir() / f"reference-{digest}.json"


def reference_floor(host_kind: str) -> float | None:
    """The fastest recent session-best reference median on this host kind, in ms."""
    try:
        history = json.loads(_path(host_kind).read_text())["best_ms"]
        return float(min(history)) if history else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_reference(host_kind: str, best_ms: float) -> None:
    """Remember a session's best reference median (best effort: never fails a measurement)."""
    path = _path(host_kind)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        try:
            history = list(json.loads(path.read_text())["best_ms"])
        except (OSError, ValueError, KeyError, TypeError):
            history = []
        history = [*history, best_ms][-HISTORY:]
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".reference-")
        with os.fdopen(fd, "w") as f:
            json.dump({"host": host_kind, "best_ms": history}, f)
        os.replace(tmp, path)
