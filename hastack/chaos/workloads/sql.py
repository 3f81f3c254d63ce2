"""SQL workload: unique INSERTs through the VIP (HAProxy's single-writer Galera path).

One connection, autocommit off, one row per request, each committed on its own. Outcomes:

- ok:            COMMIT returned.
- fail:          definitely not committed — the connect failed (nothing was sent), the
                 connection broke before COMMIT was sent (the server rolls the transaction
                 back), or the server *replied* with an error (1047 WSREP not ready, 1213
                 deadlock / certification failure, 1205 lock wait timeout, ...).
- indeterminate: the connection broke or timed out while COMMIT was in flight: the row may
                 or may not be there. Only the check phase can tell.

Short timeouts (connect 1 s, read/write 2 s) make a dead server cost 1–2 s, not the kernel's
TCP give-up time. After any error the connection is dropped and the next request reconnects
(through the VIP, possibly to a new writer: a `sql-backend` transition records the change).

Like oslo.db (which every OpenStack service uses: a `SELECT 1` ping on each checkout of a
pooled connection, and one reconnect when the ping finds it disconnected), a request first
pings a connection it has kept open since the last one; a connection that broke while idle —
its server stopped, or HAProxy shut its sessions down to move the writer — is replaced
before the INSERT is sent, so that costs a reconnect, not a failed request. Connects and
the ping count in the request's latency.

Check phase (`--check`): read back every id of the run and record them in a `check` event;
`measure.classify_set` then sorts each id as Jepsen's set checker does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pymysql
import pymysql.err

from hastack.chaos import ChaosError
from hastack.chaos.measure import SetCheck, classify_set, ranges, write_outcomes
from hastack.chaos.timeline import (
    Outcome,
    TimelineWriter,
    WorkloadMark,
    read_events,
    requests_of,
)
from hastack.chaos.workloads import (
    Workload,
    base_parser,
    run_id_of,
    setup_logging,
    split_host_port,
    stop_on_signals,
)

log = logging.getLogger(__name__)

NAME = "sql"
DEFAULT_TABLE = "hastack_writes"
CONNECT_TIMEOUT_S = 1
IO_TIMEOUT_S = 2
# MySQL client-side error codes (CR_*) are 2000–2999; anything else in an error is a reply
# the server sent, which means it answered and did not commit.
_CLIENT_ERRORS = range(2000, 3000)
# Server errors that mean "you may not create this" while the thing may well exist.
_DENIED = {1044, 1045, 1142}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class SqlWorkload(Workload):
    name = NAME

    def __init__(self, writer: TimelineWriter, host: str, port: int = 3306, user: str = "root",
                 password: str = "", database: str = "hastack", table: str = DEFAULT_TABLE,
                 unix_socket: str | None = None, run_id: str | None = None,
                 setup_timeout_s: float = 30.0):
        super().__init__(writer, run_id)
        for ident in (database, table):
            if not _IDENT.match(ident):
                raise ChaosError(f"sql: {ident!r} is not a plain SQL identifier")
        self.host, self.port, self.user, self.password = host, port, user, password
        self.database, self.table, self.unix_socket = database, table, unix_socket
        self.setup_timeout_s = setup_timeout_s
        self._conn: pymysql.connections.Connection[Any] | None = None
        self._backend: str | None = None
        self._lock = threading.Lock()

    @property
    def target(self) -> str:
        return self.unix_socket or f"{self.host}:{self.port}"

    def describe(self) -> dict[str, Any]:
        return {"target": self.target, "database": self.database, "table": self.table,
                "service": "galera", "connect_timeout_s": CONNECT_TIMEOUT_S,
                "io_timeout_s": IO_TIMEOUT_S}

    # -- connection ------------------------------------------------------------------------

    def connect(self, database: bool = True) -> pymysql.connections.Connection[Any]:
        conn = pymysql.connect(
            host=self.host, port=self.port, user=self.user, password=self.password,
            database=self.database if database else None, unix_socket=self.unix_socket,
            connect_timeout=CONNECT_TIMEOUT_S, read_timeout=IO_TIMEOUT_S,
            write_timeout=IO_TIMEOUT_S, autocommit=False, charset="utf8mb4",
        )
        with conn.cursor() as cur:
            cur.execute("SELECT @@hostname")
            row = cur.fetchone()
        backend = str(row[0]) if row else None
        if backend != self._backend:
            if self._backend is not None:
                self.writer.transition("sql-backend", self._backend, backend, source=NAME)
            self._backend = backend
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # Already broken: nothing to release but the socket.
            with contextlib.suppress(Exception):
                conn.close()

    def setup(self) -> None:
        """Create the database and table, retrying while the cloud comes up; ChaosError when
        it never answers or refuses our credentials."""
        deadline = time.monotonic() + self.setup_timeout_s
        while True:
            try:
                self._create_schema()
                return
            except pymysql.err.MySQLError as exc:
                code = _code(exc)
                if code in (1045, 1044):
                    raise ChaosError(f"sql: {self.target}: access denied: {exc}") from exc
                if time.monotonic() >= deadline:
                    raise ChaosError(f"sql: {self.target}: cannot create {self.database}."
                                     f"{self.table}: {exc}") from exc
                log.info("sql: setup: %s; retrying", exc)
                time.sleep(0.5)

    def _create_schema(self) -> None:
        conn = self.connect(database=False)
        try:
            with conn.cursor() as cur:
                try:
                    cur.execute(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
                except pymysql.err.MySQLError as exc:
                    if _code(exc) not in _DENIED:
                        raise
                cur.execute(f"USE `{self.database}`")
                # InnoDB with a primary key: Galera replicates nothing else reliably.
                cur.execute(
                    f"CREATE TABLE IF NOT EXISTS `{self.table}` ("
                    " run VARCHAR(32) NOT NULL, seq BIGINT NOT NULL, t DOUBLE NOT NULL,"
                    " PRIMARY KEY (run, seq)) ENGINE=InnoDB")
            conn.commit()
        finally:
            conn.close()

    # -- one request -----------------------------------------------------------------------

    def step(self, seq: int) -> None:
        t0 = self.writer.now()
        outcome, error = self.insert(seq)
        self.writer.request(NAME, "insert", outcome, t0, self.writer.now() - t0, error,
                            self._backend, id=seq)

    def insert(self, seq: int) -> tuple[Outcome, str]:
        stage = "connect"
        try:
            if self._conn is not None and not self._alive(self._conn):
                self._drop()
            if self._conn is None:
                self._conn = self.connect()
            stage = "insert"
            with self._conn.cursor() as cur:
                cur.execute(f"INSERT INTO `{self.table}` (run, seq, t) VALUES (%s, %s, %s)",
                            (self.run_id, seq, time.time()))
            stage = "commit"
            self._conn.commit()
            return "ok", ""
        except (pymysql.err.MySQLError, OSError) as exc:
            # Drop the connection even after a clean server error: a Galera node that says
            # "not ready" keeps saying it; the next request reconnects through the VIP.
            self._drop()
            code = _code(exc)
            server_replied = code is not None and code > 0 and code not in _CLIENT_ERRORS
            # Broken before COMMIT was sent: the server rolls back (fail). A reply: fail.
            # Broken or timed out while COMMIT was in flight: nobody knows (indeterminate).
            outcome: Outcome = "indeterminate" if stage == "commit" and not server_replied \
                else "fail"
            return outcome, _error_text(stage, exc)

    @staticmethod
    def _alive(conn: pymysql.connections.Connection[Any]) -> bool:
        """oslo.db's checkout ping: a broken or reset connection is not used."""
        try:
            conn.ping(reconnect=False)
            return True
        except (pymysql.err.MySQLError, OSError):
            return False

    def teardown(self) -> None:
        self._drop()

    # -- check phase -----------------------------------------------------------------------

    def read_back(self, timeout_s: float = 60.0) -> list[int]:
        """Every seq of this run present in the table; retried until the cluster answers."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                conn = self.connect()
                try:
                    with conn.cursor() as cur:
                        cur.execute(f"SELECT seq FROM `{self.table}` WHERE run = %s",
                                    (self.run_id,))
                        return [int(row[0]) for row in cur.fetchall()]
                finally:
                    conn.close()
            except (pymysql.err.MySQLError, OSError) as exc:
                if time.monotonic() >= deadline:
                    raise ChaosError(f"sql: check: {self.target} did not answer within "
                                     f"{timeout_s:g} s: {exc}") from exc
                log.info("sql: check: %s; retrying", exc)
                time.sleep(0.5)


def check(workload: SqlWorkload, timeline: Path, timeout_s: float = 60.0) -> SetCheck:
    """The check phase: read back the run's rows, record them as a `check` event in the
    timeline (the raw evidence), and classify every attempted id."""
    events = read_events(timeline)
    requests = requests_of(events, NAME)
    # Only this run's requests, should the file hold earlier runs too.
    starts = [e.t for e in events if isinstance(e, WorkloadMark) and e.workload == NAME
              and e.phase == "start" and e.detail.get("run") == workload.run_id]
    if starts:
        later = [e.t for e in events if isinstance(e, WorkloadMark) and e.workload == NAME
                 and e.phase == "start" and e.t > starts[-1]]
        requests = [r for r in requests if starts[-1] <= r.t < min(later, default=math.inf)]
    present = workload.read_back(timeout_s)
    workload.writer.check(NAME, {"run": workload.run_id, "table": workload.table,
                                 "present": ranges(present)})
    return classify_set(write_outcomes(requests, "insert"), present)


def _code(exc: BaseException) -> int | None:
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def _error_text(stage: str, exc: BaseException) -> str:
    code = _code(exc)
    if code is not None:
        message = str(exc.args[1]) if len(exc.args) > 1 else ""
        # "Can't connect to MySQL server on 'x' ([Errno 111] Connection refused)" → the cause.
        cause = re.search(r"\(\[Errno \d+\] ([^)]*)\)|\(([^()]*)\)\s*$", message)
        if cause:
            message = cause.group(1) or cause.group(2)
        return f"{stage}: {code} {message}"[:80]
    return f"{stage}: {type(exc).__name__} {exc}"[:80]


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(NAME, "INSERTs through the VIP, then a lost-write check.")
    parser.add_argument("--target", default="127.0.0.1:3306", help="HOST[:PORT] (the VIP)")
    parser.add_argument("--socket", default=None, help="unix socket instead of --target")
    parser.add_argument("--user", default="root")
    parser.add_argument("--password", default="")
    parser.add_argument("--password-file", type=Path, default=None)
    parser.add_argument("--database", default="hastack")
    parser.add_argument("--table", default=DEFAULT_TABLE)
    parser.add_argument("--check", action="store_true",
                        help="only read back the last run's ids and record them")
    parser.add_argument("--check-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    host, port = split_host_port(args.target, 3306)
    password = args.password_file.read_text().strip() if args.password_file else args.password
    try:
        run_id = args.run_id or (run_id_of(args.out, NAME) if args.check else None)
        with TimelineWriter(args.out) as writer:
            workload = SqlWorkload(writer, host, port, args.user, password, args.database,
                                   args.table, args.socket, run_id)
            if args.check:
                result = check(workload, args.out, args.check_timeout)
                print(json.dumps({"run": workload.run_id, "attempted": result.attempted,
                                  "acked": result.acked, "lost": len(result.lost),
                                  "recovered": len(result.recovered),
                                  "unexpected": len(result.unexpected),
                                  "failed_but_present": len(result.failed_but_present)}))
                return 1 if result.lost or result.unexpected else 0
            issued = workload.run(args.duration, args.rate, stop_on_signals())
            print(json.dumps({"run": workload.run_id, "issued": issued}))
            return 0
    except ChaosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
