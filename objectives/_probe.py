"""Entry point of the isolated measuring process: ``python -m objectives._probe REQ RESP``.

Reads a pickled request written by :func:`objectives.measure` in the parent, pins itself,
measures, and writes the pickled measurements to RESP. Errors go to stderr, exit code 1.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys


def _pin(cpus: list[int] | None) -> None:
    if cpus and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cpus)


def main(argv: list[str]) -> int:
    """Run one request; returns the exit code."""
    from objectives._base import MeasurementError
    from objectives._isolation import run_request

    request_path, response_path = argv
    # The request was written by the parent moopt process that started this one.
    with open(request_path, "rb") as f:
        request = pickle.load(f)
    _pin(request.get("cpus"))
    try:
        measured = run_request(request)
    except MeasurementError as exc:
        print(f"MeasurementError: {exc}", file=sys.stderr)
        return 1
    tmp = response_path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(measured, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, response_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
