"""Workloads against real local servers, on 127.0.0.1 only.

Every server here is started by the test, on a random high port, and stopped by its own pid
(`Popen.kill`) in a finally block — never by name. memcached and mariadbd come from the
project's Debian packages; a test that cannot start one says why and skips.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from hastack.agents.standin_api import serve
from hastack.chaos import ChaosError
from hastack.chaos.measure import Expectations, summarise
from hastack.chaos.timeline import Check, Request, TimelineWriter, WorkloadMark, read_events
from hastack.chaos.workloads import workload_argv
from hastack.chaos.workloads.api import ApiWorkload
from hastack.chaos.workloads.cache import CacheWorkload
from hastack.chaos.workloads.sql import SqlWorkload, check

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill exactly this process (a SIGSTOPped one too) and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def run_in_thread(target: object, *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


def python_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


# --- cache: a real memcached pair ------------------------------------------------------------

def start_memcached(port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("memcached")
    if binary is None:
        pytest.skip("memcached is not installed")
    proc = subprocess.Popen([binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "16",
                             "-u", "root"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, 5)
    except TimeoutError:
        stop(proc)
        raise
    return proc


def test_cache_survives_losing_one_memcached_cheaply(tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs = [start_memcached(p) for p in ports]
        path = tmp_path / "cache.jsonl"
        with TimelineWriter(path) as writer:
            workload = CacheWorkload(writer, [f"127.0.0.1:{p}" for p in ports])
            thread = run_in_thread(workload.run, 5.0, 25.0)
            time.sleep(1.5)
            writer.fault("kill", f"memcached:{ports[0]}", "start", reverse="start")
            killed_at = writer.now()
            stop(procs[0])
            thread.join(timeout=20)
        events = read_events(path)
        requests = [e for e in events if isinstance(e, Request)]
        # The request that meets the dead server drops it from the hash ring and is sent
        # again where its key now hashes (oslo.cache's retry client): no request fails,
        # the dead server's keys miss, and from then on every key lives on the survivor.
        after = [r for r in requests if r.t > killed_at + 0.5]
        assert len(requests) > 150
        assert max(r.latency_s for r in requests) < 0.6          # a dead node costs little
        assert after and all(r.ok for r in after if r.op == "set")   # re-hashed to the survivor
        summary = summarise(events, "kill one memcached")
        cache = summary.as_dict()["workloads"]["cache"]
        assert cache["service"] == "memcached"
        assert cache["hits"] > 20 and cache["errors"] == 0
        assert cache["misses"] >= 1                               # the dead server's keys
        assert cache["downtime_s"] < 0.5 and cache["available_again"]
        assert {r.target for r in requests} == {f"127.0.0.1:{p}" for p in ports}
    finally:
        for proc in procs:
            stop(proc)


def test_cache_records_an_error_when_every_attempt_fails(tmp_path: Path) -> None:
    port = free_port()
    proc = start_memcached(port)
    try:
        path = tmp_path / "cache.jsonl"
        with TimelineWriter(path) as writer:
            workload = CacheWorkload(writer, [f"127.0.0.1:{port}"])
            thread = run_in_thread(workload.run, 3.0, 20.0)
            time.sleep(1.0)
            stop(proc)
            thread.join(timeout=20)
        requests = [e for e in read_events(path) if isinstance(e, Request)]
        assert any(r.ok for r in requests)
        assert any(not r.ok for r in requests)      # nowhere left to retry: an error
    finally:
        stop(proc)


# --- api: the stand-in API ---------------------------------------------------------------

def test_api_workload_sees_the_outage_and_the_back_end(tmp_path: Path) -> None:
    port = free_port()
    server = serve("127.0.0.1", port, hostname="node-a")
    path = tmp_path / "api.jsonl"
    try:
        with TimelineWriter(path) as writer:
            workload = ApiWorkload(writer, f"http://127.0.0.1:{port}/v3")
            thread = run_in_thread(workload.run, 3.0, 20.0)
            time.sleep(1.0)
            with writer.fault_window("kill", "standin-api", reverse="start"):
                server.shutdown()
                server.server_close()
                time.sleep(0.8)
                server = serve("127.0.0.1", port, hostname="node-b")
            thread.join(timeout=20)
    finally:
        server.shutdown()
        server.server_close()
    events = read_events(path)
    summary = summarise(events, "restart api", Expectations(max_downtime_s={"api": 2.0}))
    api = summary.as_dict()["workloads"]["api"]
    assert api["service"] == "standin-api"
    assert api["errors"] >= 5 and 0.4 < api["downtime_s"] < 2.0
    assert summary.verdict == "pass", summary.reasons
    targets = [e.target for e in events if isinstance(e, Request) and e.ok]
    assert targets[0] == "node-a" and targets[-1] == "node-b"
    assert any("Connection refused" in e for e in api["error_counts"])


def test_api_workload_and_standin_as_processes(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "hastack.agents.standin_api",
                               "--bind", "127.0.0.1", "--port", str(port), "--hostname", "ctl9"],
                              env=python_env(), stdout=subprocess.PIPE)
    try:
        wait_for_port(port)
        out = tmp_path / "api.jsonl"
        argv = workload_argv("api", {"target": f"http://127.0.0.1:{port}/", "duration": 1,
                                     "rate": 20, "out": out}, python=sys.executable)
        done = subprocess.run(argv, env=python_env(), capture_output=True, text=True,
                              timeout=30)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["service"] == "standin-api"
        events = read_events(out)
        reqs = [e for e in events if isinstance(e, Request)]
        assert len(reqs) >= 10 and all(r.ok and r.target == "ctl9" for r in reqs)
        assert [e.phase for e in events if isinstance(e, WorkloadMark)] == \
            ["start", "info", "end"]
        server.send_signal(signal.SIGTERM)          # stops cleanly on SIGTERM
        assert server.wait(timeout=10) == 0
    finally:
        stop(server)


def test_api_rejects_a_non_http_target(tmp_path: Path) -> None:
    with TimelineWriter(tmp_path / "x.jsonl") as writer, pytest.raises(ChaosError):
        ApiWorkload(writer, "ftp://127.0.0.1/")


def test_workload_argv() -> None:
    argv = workload_argv("cache", {"server": ["a:1", "b:2"], "duration": 5, "verbose": True,
                                   "run_id": None}, python="py")
    assert argv == ["py", "-m", "hastack.chaos.workloads.cache", "--server", "a:1",
                    "--server", "b:2", "--duration", "5", "--verbose"]
    assert workload_argv("sql", {"out": "f"}, check=True)[-1] == "--check"
    with pytest.raises(ChaosError):
        workload_argv("nope", {})


# --- sql: a real mariadbd in a temporary datadir -------------------------------------------

class Mariadb:
    def __init__(self, base: Path, port: int):
        self.base, self.port = base, port
        self.socket = str(base / "mysqld.sock")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        self.proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={self.base / 'data'}", "--user=root",
             f"--socket={self.socket}", "--bind-address=127.0.0.1", f"--port={self.port}",
             f"--pid-file={self.base / 'mysqld.pid'}", f"--log-error={self.base / 'err.log'}",
             "--innodb-buffer-pool-size=16M", "--skip-log-bin", "--skip-name-resolve"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, timeout)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def sql(self, statement: str, args: tuple[object, ...] = ()) -> None:
        conn = pymysql.connect(unix_socket=self.socket, user="root", database="hastack",
                               autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, args)
        finally:
            conn.close()


@pytest.fixture(scope="module")
def mariadb() -> Iterator[Mariadb]:
    if shutil.which("mariadb-install-db") is None or shutil.which("mariadbd") is None:
        pytest.skip("mariadb-server is not installed")
    base = Path(tempfile.mkdtemp(prefix="hs-test-mariadb-"))
    db = Mariadb(base, free_port())
    try:
        install = subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={base / 'data'}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            capture_output=True, text=True, timeout=120)
        if install.returncode != 0:
            pytest.skip(f"mariadb-install-db failed: {install.stderr[-300:]}")
        try:
            db.start()
        except TimeoutError:
            log = (base / "err.log").read_text()[-500:] if (base / "err.log").exists() else ""
            pytest.skip(f"mariadbd did not start within 20 s: {log}")
        yield db
    finally:
        db.stop()
        shutil.rmtree(base, ignore_errors=True)


def run_sql(db: Mariadb, path: Path, duration: float, rate: float = 20.0,
            during: object = None) -> SqlWorkload:
    with TimelineWriter(path) as writer:
        workload = SqlWorkload(writer, "127.0.0.1", db.port, "root", "", "hastack")
        thread = run_in_thread(workload.run, duration, rate)
        if callable(during):
            during(writer)
        thread.join(timeout=duration + 30)
        assert not thread.is_alive()
    return workload


def check_run(db: Mariadb, path: Path, workload: SqlWorkload) -> None:
    with TimelineWriter(path) as writer:
        checker = SqlWorkload(writer, "127.0.0.1", db.port, "root", "", "hastack",
                              run_id=workload.run_id)
        check(checker, path, timeout_s=20)


def test_sql_clean_run_loses_nothing(mariadb: Mariadb, tmp_path: Path) -> None:
    path = tmp_path / "sql.jsonl"
    workload = run_sql(mariadb, path, 1.5)
    check_run(mariadb, path, workload)
    events = read_events(path)
    assert any(isinstance(e, Check) for e in events)
    summary = summarise(events, "baseline")
    sql = summary.as_dict()["workloads"]["sql"]
    assert summary.verdict == "pass", summary.reasons
    assert sql["acked"] >= 15 and sql["errors"] == 0
    assert (sql["lost"], sql["unexpected"], sql["failed_but_present"]) == (0, 0, 0)
    assert {e.target for e in events if isinstance(e, Request)} == {socket.gethostname()}


def test_sql_lost_write_check_must_fail(mariadb: Mariadb, tmp_path: Path) -> None:
    """Delete an acknowledged row and add one never written, behind the workload's back:
    the check must report the first as lost and the second as unexpected."""
    path = tmp_path / "sql.jsonl"
    workload = run_sql(mariadb, path, 1.0)
    acked = [e.id for e in read_events(path) if isinstance(e, Request) and e.ok]
    victim = acked[len(acked) // 2]
    mariadb.sql("DELETE FROM hastack_writes WHERE run = %s AND seq = %s",
                (workload.run_id, victim))
    mariadb.sql("INSERT INTO hastack_writes (run, seq, t) VALUES (%s, 100000, 0)",
                (workload.run_id,))
    check_run(mariadb, path, workload)
    summary = summarise(read_events(path), "tampered")
    sql = summary.as_dict()["workloads"]["sql"]
    assert sql["lost_ids"] == [victim] and sql["unexpected_ids"] == [100000]
    assert summary.verdict == "fail"
    assert any(f"1 acknowledged writes lost (max 0): ids {victim}" in r for r in summary.reasons)


def test_sql_frozen_then_killed_server(mariadb: Mariadb, tmp_path: Path) -> None:
    """Freeze mariadbd for 3 s (timeouts: each costs ≤ ~2 s), then kill and restart it
    (refused connects): every outcome classified, nothing reported failed is present, no
    acknowledged write lost, and the workload recovers."""
    path = tmp_path / "sql.jsonl"

    def faults(writer: TimelineWriter) -> None:
        time.sleep(1.0)
        assert mariadb.proc is not None
        with writer.fault_window("freeze", "mariadbd", reverse="unfreeze"):
            mariadb.proc.send_signal(signal.SIGSTOP)
            time.sleep(3.0)
            mariadb.proc.send_signal(signal.SIGCONT)
        time.sleep(1.0)
        with writer.fault_window("kill", "mariadbd", reverse="start"):
            mariadb.stop()
            time.sleep(0.5)
            mariadb.start()

    try:
        workload = run_sql(mariadb, path, 9.0, rate=10.0, during=faults)
    finally:
        if mariadb.proc is not None and mariadb.proc.poll() is None:
            mariadb.proc.send_signal(signal.SIGCONT)
    check_run(mariadb, path, workload)
    events = read_events(path)
    requests = [e for e in events if isinstance(e, Request)]
    assert max(r.latency_s for r in requests) < 3.5
    summary = summarise(events, "freeze and kill mariadbd")
    sql = summary.as_dict()["workloads"]["sql"]
    assert sql["errors"] >= 2, sql
    assert (sql["lost"], sql["failed_but_present"], sql["unexpected"]) == (0, 0, 0), sql
    assert sql["recovered"] <= sql["indeterminate"]
    assert summary.verdict == "pass", summary.reasons
    assert len(summary.faults) == 2


def test_sql_as_a_process_with_check(mariadb: Mariadb, tmp_path: Path) -> None:
    out = tmp_path / "sql.jsonl"
    common = {"target": f"127.0.0.1:{mariadb.port}", "out": out, "database": "hastack"}
    run = subprocess.run(workload_argv("sql", {**common, "duration": 1, "rate": 10},
                                       python=sys.executable),
                         env=python_env(), capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    checked = subprocess.run(workload_argv("sql", common, python=sys.executable, check=True),
                             env=python_env(), capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    result = json.loads(checked.stdout)
    assert result["lost"] == 0 and result["acked"] >= 1
    assert result["run"] == json.loads(run.stdout)["run"]


# --- amqp: a real single-node RabbitMQ (optional: ~15 s to start) ------------------------

RABBIT_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def test_amqp_publishes_confirms_and_drains_a_quorum_queue(tmp_path: Path) -> None:
    if not Path(RABBIT_SERVER).exists() or shutil.which("epmd") is None:
        pytest.skip("rabbitmq-server is not installed")
    base = Path(tempfile.mkdtemp(prefix="hs-test-rabbit-"))
    port, epmd_port, dist_port = free_port(), free_port(), free_port()
    (base / "enabled_plugins").write_text("[].\n")
    (base / "rabbitmq.conf").write_text("loopback_users = none\n")
    env = {**os.environ, "HOME": str(base), "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
           "RABBITMQ_LOG_BASE": str(base / "log"), "RABBITMQ_NODENAME": f"hs-test-{port}@localhost",
           "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(port),
           "RABBITMQ_DIST_PORT": str(dist_port), "ERL_EPMD_PORT": str(epmd_port),
           "ERL_EPMD_ADDRESS": "127.0.0.1",
           "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
           "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
           "RABBITMQ_PID_FILE": str(base / "pid"),
           "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+sbwt none"}
    # Its own PID namespace (host network, so loopback works): killing the namespace's first
    # process takes the script, beam.smp and the daemonised epmd with it.
    broker = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "--mount-proc",
                               RABBIT_SERVER], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        try:
            wait_for_port(port, 60)
        except TimeoutError:
            pytest.skip("RabbitMQ did not start within 60 s")
        url = f"amqp://guest:guest@127.0.0.1:{port}/%2F"
        dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"   # a node that is down
        path = tmp_path / "amqp.jsonl"
        with TimelineWriter(path) as writer:
            from hastack.chaos.workloads.amqp import AmqpWorkload, drain

            workload = AmqpWorkload(writer, [dead, url], queue="hs-test", consume=True)
            workload.run(2.0, 20.0)
            assert drain(writer, [url], "hs-test", workload.run_id, quiet_s=1.0, timeout_s=30)
        events = read_events(path)
        summary = summarise(events, "amqp baseline")
        amqp = summary.as_dict()["workloads"]["amqp"]
        assert summary.verdict == "pass", summary.reasons
        assert amqp["confirmed"] >= 20 and amqp["lost"] == 0 and amqp["errors"] == 0
        assert amqp["delivered"] == amqp["confirmed"] and amqp["drained"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(broker.pid, signal.SIGKILL)
        broker.wait(timeout=10)
        # The namespace's init is gone; the kernel kills the rest of the namespace after it,
        # which takes a moment: give it 5 s, then nothing of the broker may be left.
        deadline = time.monotonic() + 5
        while processes_with_env(f"HOME={base}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes_with_env(f"HOME={base}") == [], "a broker process outlived its test"
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


def processes_with_env(entry: str) -> list[int]:
    """Pids whose environment holds `entry` exactly: the processes one test started (with a
    HOME nobody else uses), found without matching any process name."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.encode() in environ:
            found.append(int(proc.name))
    return found
