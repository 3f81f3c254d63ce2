"""Galera health responder: the clustercheck-style HTTP service HAProxy polls on port 9200.

`python -m hastack.agents.galera_health --config /etc/hastack/galera-health.ini` answers every
request (GET, HEAD, OPTIONS: HAProxy's httpchk default is OPTIONS) with 200 only when the local
member is Synced (wsrep_local_state 4) and in the Primary component, and 503 otherwise: while
joining, while a donor (desynced, out of rotation), in a non-Primary partition (writes would
fail with error 1047) or when MariaDB does not answer within the timeout.

A donor stays in rotation when `available_when_donor` is set (as clustercheck's
AVAILABLE_WHEN_DONOR): right for mariabackup state transfers, which do not block the donor,
so a member rejoining after a restart does not take the writer out from under its clients;
wrong for rsync, which locks the donor for the whole copy.

Cheap on purpose: every load balancer polls every ~500 ms. One connection over the unix
socket is kept open (reopened once when it breaks) and a verdict is reused for `max_age`
seconds (half a check interval), so three load balancers cost one query per half interval.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pymysql

log = logging.getLogger("galera-health")

SYNCED = "4"
DONOR = "2"
PRIMARY = "Primary"
STATUS_QUERY = ("SHOW GLOBAL STATUS WHERE Variable_name IN "
                "('wsrep_local_state', 'wsrep_local_state_comment', 'wsrep_cluster_status')")
SECTION = "galera-health"


@dataclass(frozen=True)
class Config:
    bind: str
    port: int
    socket: str
    user: str
    password: str
    timeout_s: float
    max_age_s: float = 0.0
    available_when_donor: bool = False

    @classmethod
    def read(cls, path: str) -> Config:
        parser = configparser.ConfigParser(interpolation=None)
        if not parser.read(path):
            raise SystemExit(f"galera-health: cannot read {path}")
        try:
            section = parser[SECTION]
            return cls(
                bind=section["bind"],
                port=int(section["port"]),
                socket=section["socket"],
                user=section["user"],
                password=section["password"],
                timeout_s=float(section["timeout"]),
                max_age_s=section.getfloat("max_age", fallback=0.0),
                available_when_donor=section.getboolean("available_when_donor",
                                                        fallback=False),
            )
        except (KeyError, ValueError) as exc:
            raise SystemExit(
                f"galera-health: {path}: bad or missing [{SECTION}] key: {exc}") from None


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    reason: str


def judge(status: dict[str, str], available_when_donor: bool = False) -> Verdict:
    """The rotation decision from the wsrep status variables of one member."""
    state = status.get("wsrep_local_state", "")
    comment = status.get("wsrep_local_state_comment", state or "unknown")
    cluster = status.get("wsrep_cluster_status", "unknown")
    if cluster != PRIMARY:
        return Verdict(False, f"cluster status {cluster} (not Primary)")
    if state == DONOR and available_when_donor:
        return Verdict(True, f"local state {comment}, Primary (a donor that is not blocked)")
    if state != SYNCED:
        return Verdict(False, f"local state {comment} (not Synced)")
    return Verdict(True, "Synced and Primary")


def _connect(config: Config) -> pymysql.connections.Connection:
    return pymysql.connect(
        unix_socket=config.socket, user=config.user, password=config.password,
        connect_timeout=config.timeout_s, read_timeout=config.timeout_s,
        write_timeout=config.timeout_s,
    )


def query_status(config: Config) -> dict[str, str]:
    """One connection over the socket, one query, always closed."""
    conn = _connect(config)
    try:
        return _fetch(conn)
    finally:
        conn.close()


def _fetch(conn: pymysql.connections.Connection) -> dict[str, str]:
    with conn.cursor() as cursor:
        cursor.execute(STATUS_QUERY)
        return {str(name): str(value) for name, value in cursor.fetchall()}


class PersistentQuery:
    """query_status over one kept-open connection; a broken one is replaced once per call
    (MariaDB restarted), so a dead server still answers 'unreachable' within the timeout."""

    def __init__(self) -> None:
        self._conn: pymysql.connections.Connection | None = None

    def __call__(self, config: Config) -> dict[str, str]:
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = _connect(config)
            try:
                return _fetch(self._conn)
            except (pymysql.MySQLError, OSError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(pymysql.MySQLError, OSError):
                self._conn.close()
            self._conn = None


def check(config: Config, query: Callable[[Config], dict[str, str]] = query_status) -> Verdict:
    try:
        return judge(query(config), config.available_when_donor)
    except (pymysql.MySQLError, OSError) as exc:
        return Verdict(False, f"MariaDB unreachable: {exc.__class__.__name__}")


class _Handler(BaseHTTPRequestHandler):
    server: HealthServer
    # A client that opens a connection and sends nothing must not pin a thread for long.
    timeout = 5

    def _answer(self, body: bool) -> None:
        verdict = self.server.evaluate()
        payload = f"Galera member: {verdict.reason}\r\n".encode()
        self.send_response(200 if verdict.healthy else 503)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(body=True)

    def do_OPTIONS(self) -> None:  # noqa: N802
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        # Two requests per second per load balancer: log state changes, not requests.
        pass


class HealthServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, config: Config,
                 query: Callable[[Config], dict[str, str]] | None = None):
        self.config = config
        self._query = query if query is not None else PersistentQuery()
        self._last: Verdict | None = None
        self._last_at = 0.0
        # One query at a time: concurrent checks wait and share its verdict.
        self._lock = threading.Lock()
        super().__init__((config.bind, config.port), _Handler)

    def evaluate(self) -> Verdict:
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last_at < self.config.max_age_s:
                return self._last
            verdict = check(self.config, self._query)
            if self._last is None or verdict != self._last:
                log.info("%s: %s", "healthy" if verdict.healthy else "unhealthy", verdict.reason)
            self._last, self._last_at = verdict, time.monotonic()
            return verdict

    def handle_error(self, request: object, client_address: object) -> None:
        # HAProxy closes the connection as soon as it has read the status line.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="galera-health", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="/etc/hastack/galera-health.ini")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    config = Config.read(args.config)
    server = HealthServer(config)
    log.info("listening on %s:%d", config.bind, config.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
