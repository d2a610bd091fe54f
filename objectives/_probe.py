"""The isolated measuring process: ``python objectives/_probe.py REQ RESP CPUS``.

Pins itself to CPUS (comma-separated, may be empty) before importing anything heavy, reads
the pickled request written by :func:`objectives.measure` in the parent, measures, and writes
the pickled measurements to RESP. Errors go to stderr, exit code 1. It is run by path, not as
``-m objectives._probe``, so that the package (numpy) is imported only after pinning.

``python objectives/_probe.py --spare HOME`` is a measuring process started ahead of time:
pinned to the HOME CPUs (away from the measuring ones), it imports numpy, ONNX Runtime and
the objectives, then waits for one line ``REQ RESP CPUS`` on stdin, moves to CPUS and serves
that one request as above. It loads no model before the request, so peak memory is measured
as in a fresh process; it exits without measuring when stdin closes (its parent ended).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys


def _pin(cpus: str) -> None:
    if cpus and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError, ValueError):
            os.sched_setaffinity(0, [int(c) for c in cpus.split(",")])


def main(argv: list[str]) -> int:
    """Run one request; returns the exit code."""
    if argv and argv[0] == "--spare":
        _pin(argv[1] if len(argv) > 1 else "")
        # Imported ahead (the point of a spare), in the order a fresh probe imports them:
        # numpy and ONNX Runtime first made the same model run ~2% slower (memory layout).
        import importlib

        import objectives._base
        import objectives._isolation  # noqa: F401

        importlib.import_module("onnxruntime")

        line = sys.stdin.readline()
        if not line.strip():
            return 0
        argv = line.rstrip("\n").split("\t")
        while len(argv) < 3:
            argv.append("")
    request_path, response_path, cpus = argv
    _pin(cpus)
    from objectives._base import MeasurementError
    from objectives._isolation import run_request

    # The request was written by the parent moopt process that started this one.
    with open(request_path, "rb") as f:
        request = pickle.load(f)
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
