"""A real PostgreSQL server on loopback, started for the worker tests and stopped after them."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Postgres:
    url: str
    bindir: Path
    data: Path
    port: int
    sockets: Path
    log: Path

    def _as_postgres(self, *cmd: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True, timeout=60
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.sockets}"
        self._as_postgres(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"
        )

    def restart(self, down_s: float = 0.0) -> None:
        import time

        self.stop()
        time.sleep(down_s)
        self.start()


def _unavailable(reason: str) -> None:
    if os.environ.get("MOOPT_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required here (MOOPT_REQUIRE_POSTGRES=1): {reason}")
    pytest.skip(f"PostgreSQL is not available: {reason} (scripts/test installs it)")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        _unavailable("no server binaries in /usr/lib/postgresql")
    if os.getuid() != 0 or shutil.which("runuser") is None:
        _unavailable("the tests start the server as the postgres user, which needs root")
    bindir = Path(found[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="moopt-pg-"))
    base.chmod(0o755)
    data, sockets = base / "data", base / "sockets"
    for directory in (data, sockets):
        directory.mkdir(mode=0o700)
        shutil.chown(directory, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pg = Postgres(
        f"postgresql://postgres@127.0.0.1:{port}/moopt",
        bindir,
        data,
        port,
        sockets,
        base / "server.log",
    )
    (base / "server.log").touch()
    shutil.chown(base / "server.log", "postgres", "postgres")
    pg._as_postgres(
        str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
    )
    pg.start()
    pg._as_postgres(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "moopt")
    try:
        yield pg
    finally:
        try:
            pg.stop("immediate")
        finally:
            shutil.rmtree(base, ignore_errors=True)
