"""Galera renderer: behaviour of the rendered files, and the real programs on them
(mariadbd's option parser, garbd's provider-option checks, a real bootstrapped member with the
bootstrap SQL and the health responder)."""

from __future__ import annotations

import configparser
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hastack.agents import galera_health
from hastack.plan import make_plan
from hastack.render import RenderContext, RenderedFile, render_cloud, secret_specs
from hastack.render import galera as galera_render
from hastack.render.budget import make_budget
from hastack.render.secrets import complete
from tests.conftest import (
    EXAMPLE_NAMES,
    example_plan,
    plan_from_text,
    render_example,
    require_program,
    write_rendered,
)

REPO = Path(__file__).resolve().parent.parent

ARBITRATED = """
name: arb
nodes:
  - {name: db1, address: 198.18.9.11, roles: [controller]}
  - {name: db2, address: 198.18.9.12, roles: [controller]}
  - {name: arb1, address: 198.18.9.30, roles: [compute]}
vips: {internal: 198.18.9.100}
services: [keystone]
settings:
  galera: {arbitrator: arb1, sst_method: rsync}
"""

GALERA_EXAMPLES = [n for n in EXAMPLE_NAMES if example_plan(n).runs("mariadb-galera")]


def galera_files(files: list[RenderedFile]) -> list[RenderedFile]:
    return [f for f in files if f.system == "galera"]


def file_of(files: list[RenderedFile], node: str, path: str) -> str:
    for f in files:
        if f.node == node and f.path == path:
            assert isinstance(f.content, str)
            return f.content
    raise AssertionError(f"{node}:{path} was not rendered")


def provider_options(my_cnf: str) -> dict[str, str]:
    match = re.search(r'^wsrep_provider_options = "(.*)"$', my_cnf, re.M)
    assert match, "no wsrep_provider_options"
    return dict(item.split("=", 1) for item in match.group(1).split(";"))


def seconds(period: str) -> float:
    match = re.fullmatch(r"PT([0-9.]+)S", period)
    assert match, period
    return float(match.group(1))


def render_text(text: str) -> list[RenderedFile]:
    plan = plan_from_text(text)
    return render_cloud(plan, complete({}, secret_specs(plan)))


# --------------------------------------------------------------------------------------------
# Behaviour


@pytest.mark.parametrize("name", GALERA_EXAMPLES)
def test_every_member_gets_config_and_gcomm_lists_every_member(name: str) -> None:
    plan = example_plan(name)
    files = render_example(name)
    members = plan.nodes_running("mariadb-galera")
    addresses = [str(plan.cloud.node(n).ip) for n in members]
    for node in members:
        cnf = file_of(files, node, galera_render.MY_CNF)
        assert not re.search(r"^!include", cnf, re.M)
        assert f"wsrep_cluster_address = gcomm://{','.join(a + ':4567' for a in addresses)}" \
            in cnf
        assert f"bind-address = {plan.cloud.node(node).ip}" in cnf
        assert f"wsrep_cluster_name = {plan.cloud.name}" in cnf
        options = provider_options(cnf)
        assert options["gmcast.listen_addr"] == f"tcp://{plan.cloud.node(node).ip}:4567"
        assert options["pc.recovery"] == "TRUE"
        file_of(files, node, galera_render.HEALTH_INI)
    init = [f for f in files if f.path == galera_render.INIT_SQL]
    assert [f.node for f in init] == [members[0]]


@pytest.mark.parametrize("target", [0.5, 2.0, 5.0, 30.0])
def test_evs_timings_equal_budget_and_respect_galera_ordering(target: float) -> None:
    plan = plan_from_text(ARBITRATED.replace(
        "settings:\n", f"settings:\n  failover: {{target_seconds: {target}}}\n"))
    budget = make_budget(plan.cloud)
    files = render_cloud(plan, complete({}, secret_specs(plan)))
    for cfg in (file_of(files, "db1", galera_render.MY_CNF),):
        options = provider_options(cfg)
        keepalive = seconds(options["evs.keepalive_period"])
        check = seconds(options["evs.inactive_check_period"])
        suspect = seconds(options["evs.suspect_timeout"])
        inactive = seconds(options["evs.inactive_timeout"])
        install = seconds(options["evs.install_timeout"])
        assert (keepalive, check, suspect, inactive, install) == (
            budget.galera_keepalive_s, budget.galera_inactive_check_s,
            budget.galera_suspect_s, budget.galera_inactive_s, budget.galera_install_s)
        assert 0.1 <= keepalive <= check <= suspect <= inactive
        assert check <= install < inactive
        assert keepalive < suspect / 3 and check < suspect / 2    # Galera's ranges


def test_arbitrator_is_in_gcomm_and_gets_garbd_conf() -> None:
    files = render_text(ARBITRATED)
    cnf = file_of(files, "db1", galera_render.MY_CNF)
    assert "gcomm://198.18.9.11:4567,198.18.9.12:4567,198.18.9.30:4567" in cnf
    assert "wsrep_sst_method = rsync" in cnf and "wsrep_sst_auth" not in cnf
    garbd = file_of(files, "arb1", galera_render.GARBD_CONF)
    assert "group = arb" in garbd
    assert "address = gcomm://198.18.9.11:4567,198.18.9.12:4567\n" in garbd
    assert "gmcast.listen_addr=tcp://198.18.9.30:4567" in garbd
    db1 = provider_options(cnf)
    options = dict(i.split("=", 1) for i in garbd.split("options = ")[1].strip().split(";"))
    assert {k: v for k, v in options.items() if k.startswith("evs.")} == \
        {k: v for k, v in db1.items() if k.startswith("evs.")}
    assert not [f for f in files if f.node == "arb1" and f.path == galera_render.MY_CNF]


def test_rerendering_is_byte_identical() -> None:
    plan = example_plan("demo")
    secrets = complete({}, secret_specs(plan))
    ctx = RenderContext(plan, make_budget(plan.cloud), secrets)
    assert galera_render.render(ctx) == galera_render.render(ctx)


def test_init_sql_is_data_driven_idempotent_and_has_no_open_accounts() -> None:
    plan = example_plan("demo")
    secrets = complete({}, secret_specs(plan))
    files = render_cloud(plan, secrets)
    sql = file_of(files, "ctl1", galera_render.INIT_SQL)
    for db in ("keystone", "glance", "nova", "nova_api", "nova_cell0", "neutron", "cinder",
               "heat"):
        assert f"CREATE DATABASE IF NOT EXISTS `{db}`" in sql
    for service in ("keystone", "nova", "heat"):
        assert f"'{service}'@'198.18.0.0/255.255.255.0' IDENTIFIED BY " \
               f"'{secrets['db_' + service]}'" in sql
    assert "DROP USER IF EXISTS ''@'localhost';" in sql
    assert "'%'" not in sql
    assert "CREATE USER 'nova'" not in sql          # always IF NOT EXISTS
    assert "GRANT USAGE ON *.* TO 'hastack_health'@'localhost'" in sql
    assert "BINLOG MONITOR" in sql
    assert secrets["db_root"] in sql


def test_secrets_cover_every_service_database() -> None:
    names = {s.name for s in galera_render.secrets_needed(example_plan("demo"))}
    assert {"db_root", "db_health", "db_sst", "db_keystone", "db_nova", "db_heat"} <= names


def test_health_ini_binds_node_ip() -> None:
    files = render_example("demo")
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(file_of(files, "ctl2", galera_render.HEALTH_INI))
    section = ini["galera-health"]
    assert section["bind"] == "198.18.0.12" and section["port"] == "9200"
    assert section["socket"] == galera_render.SOCKET


# --------------------------------------------------------------------------------------------
# The health responder against a fake status source


def _fake_server(status: dict[str, str] | None) -> galera_health.HealthServer:
    def query(_config: galera_health.Config) -> dict[str, str]:
        if status is None:
            raise OSError("no socket")
        return status
    config = galera_health.Config("127.0.0.1", 0, "/nonexistent", "u", "p", 0.5)
    return galera_health.HealthServer(config, query)


def _http(url: str, method: str = "GET") -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method),
                                    timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.parametrize(("status", "code"), [
    ({"wsrep_local_state": "4", "wsrep_local_state_comment": "Synced",
      "wsrep_cluster_status": "Primary"}, 200),
    ({"wsrep_local_state": "2", "wsrep_local_state_comment": "Donor/Desynced",
      "wsrep_cluster_status": "Primary"}, 503),
    ({"wsrep_local_state": "1", "wsrep_local_state_comment": "Joining",
      "wsrep_cluster_status": "Primary"}, 503),
    ({"wsrep_local_state": "4", "wsrep_local_state_comment": "Synced",
      "wsrep_cluster_status": "non-Primary"}, 503),
    ({}, 503),
    (None, 503),
])
def test_health_responder_answers_by_state(status: dict[str, str] | None, code: int) -> None:
    # (a server whose config leaves available_when_donor unset, as for rsync transfers)
    import threading
    server = _fake_server(status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        for method in ("GET", "OPTIONS", "HEAD"):
            assert _http(url, method) == code
    finally:
        server.shutdown()
        server.server_close()


def test_a_donor_stays_in_rotation_only_when_its_transfers_do_not_block_it() -> None:
    donor = {"wsrep_local_state": "2", "wsrep_local_state_comment": "Donor/Desynced",
             "wsrep_cluster_status": "Primary"}
    assert galera_health.judge(donor, available_when_donor=True).healthy
    assert not galera_health.judge(donor, available_when_donor=False).healthy
    # A donor in a non-Primary component is never in rotation.
    assert not galera_health.judge({**donor, "wsrep_cluster_status": "non-Primary"},
                                   available_when_donor=True).healthy


def test_rendered_health_config_keeps_donors_for_mariabackup_only() -> None:
    plan = example_plan("demo")
    node = plan.nodes_running("mariadb-galera")[0]
    galera = plan.cloud.settings.galera
    assert galera.sst_method == "mariabackup"
    rsync = make_plan(plan.cloud.model_copy(update={"settings": plan.cloud.settings.model_copy(
        update={"galera": galera.model_copy(update={"sst_method": "rsync"})})}))
    for each, expected in ((plan, "true"), (rsync, "false")):
        files = render_cloud(each, complete({}, secret_specs(each)))
        text = file_of(files, node, galera_render.HEALTH_INI)
        assert f"available_when_donor = {expected}" in text


def test_health_responder_unreachable_socket_is_503() -> None:
    config = galera_health.Config("127.0.0.1", 0, "/nonexistent/mysqld.sock", "u", "p", 0.5)
    verdict = galera_health.check(config)
    assert not verdict.healthy and "unreachable" in verdict.reason


# --------------------------------------------------------------------------------------------
# Real programs


@pytest.mark.validator
@pytest.mark.parametrize("name", GALERA_EXAMPLES)
def test_mariadbd_accepts_every_rendered_my_cnf(name: str, tmp_path: Path) -> None:
    mariadbd = require_program("mariadbd")
    root = write_rendered(galera_files(render_example(name)), tmp_path)
    for cnf in sorted(root.glob(f"*/{galera_render.MY_CNF}")):
        result = subprocess.run([mariadbd, f"--defaults-file={cnf}", "--help", "--verbose"],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "wsrep-provider-options" in result.stdout


@pytest.mark.validator
def test_mariadbd_rejects_an_unknown_option(tmp_path: Path) -> None:
    """Proof that the check above is a check: the same file plus one bad option fails."""
    mariadbd = require_program("mariadbd")
    cnf = file_of(render_example("demo"), "ctl1", galera_render.MY_CNF)
    path = tmp_path / "my.cnf"
    path.write_text(cnf.replace("[galera]\n", "[galera]\nwsrep_bogus_option = 1\n"))
    result = subprocess.run([mariadbd, f"--defaults-file={path}", "--help", "--verbose"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "unknown variable 'wsrep_bogus_option=1'" in result.stderr


def _run_garbd(config: Path, seconds_alive: float,
               address: str = "198.18.9.30") -> tuple[int | None, str]:
    """garbd in a private network namespace holding only its own address (so it can listen,
    and fails only on its options): bad options make it exit at once; good ones leave it
    retrying its unreachable peers. Killed (with its namespace) afterwards."""
    garbd = require_program("garbd")
    log = config.with_suffix(".log")
    setup = (f"ip link set lo up && ip addr add {address}/32 dev lo && "
             f'exec "$0" --cfg "$1"')
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["unshare", "--net", "--pid", "--fork", "--kill-child", "sh", "-c", setup,
             garbd, str(config)],
            stdout=out, stderr=subprocess.STDOUT, cwd=config.parent, start_new_session=True)
    try:
        try:
            code: int | None = proc.wait(timeout=seconds_alive)
        except subprocess.TimeoutExpired:
            code = None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return code, log.read_text()


@pytest.mark.validator
def test_garbd_accepts_the_rendered_config_and_rejects_bad_timings(tmp_path: Path) -> None:
    files = render_text(ARBITRATED)
    conf = tmp_path / "garbd.conf"
    conf.write_text(file_of(files, "arb1", galera_render.GARBD_CONF))
    code, log = _run_garbd(conf, 2.0)
    assert code is None, log
    assert "ERROR" not in log and "Unrecognized" not in log, log
    # A keepalive Galera refuses (>= suspect/3) makes the same file fail at once.
    bad = tmp_path / "bad.conf"
    bad.write_text(re.sub(r"evs\.keepalive_period=PT[0-9.]+S", "evs.keepalive_period=PT1S",
                          conf.read_text()))
    # garbd checks the option in its gcomm thread as the group channel opens; about half the
    # runs (15 tried) its main thread loses a race with that thread's exit and reports only
    # "Failed to read thread schedparams ... Failed to open connection to group", which says
    # nothing of the option: try again, up to ten runs (each exits at once).
    for _ in range(10):
        code, log = _run_garbd(bad, 10.0)
        assert code not in (None, 0), log
        if "Failed to open connection to group" not in log or "out of range" in log:
            break
    assert "evs.keepalive_period" in log and "out of range" in log, log


# A real member, bootstrapped in private PID + network + mount namespaces that carry the node's
# address (on lo), a tmpfs /run and the test's datadir on /var/lib/mysql: the rendered my.cnf
# starts a Primary component, the bootstrap SQL runs (twice: idempotent), and the health
# responder answers 200 while Synced, while desynced (a donor) 200 when the cloud's state
# transfers do not block donors (mariabackup) and 503 otherwise, and 503 once mariadbd is gone.
_MEMBER_SCRIPT = textwrap.dedent("""
    import json, os, subprocess, sys, time, urllib.error, urllib.request
    import pymysql
    node_ip, cnf, sql, ini, datadir, out = sys.argv[1:7]
    password = sys.argv[7]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", node_ip + "/32", "dev", "lo"], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run"], check=True)
    subprocess.run(["mount", "--bind", datadir, "/var/lib/mysql"], check=True)
    os.makedirs("/run/mysqld")
    subprocess.run(["chown", "mysql:mysql", "/run/mysqld", "/var/lib/mysql"], check=True)
    subprocess.run(["mariadb-install-db", "--no-defaults", "--datadir=/var/lib/mysql",
                    "--user=mysql", "--skip-test-db"], check=True, capture_output=True)
    result = {}
    log = open(out + ".mariadbd.log", "w")
    db = subprocess.Popen(["mariadbd", "--defaults-file=" + cnf, "--wsrep-new-cluster"],
                          stdout=log, stderr=subprocess.STDOUT)
    def status(name):
        conn = pymysql.connect(unix_socket="/run/mysqld/mysqld.sock", user="root")
        try:
            with conn.cursor() as c:
                c.execute("SHOW GLOBAL STATUS LIKE %s", (name,))
                return c.fetchone()[1]
        finally:
            conn.close()
    deadline = time.time() + 60
    while True:
        try:
            if status("wsrep_local_state") == "4":
                break
        except pymysql.MySQLError:
            pass
        if db.poll() is not None or time.time() > deadline:
            raise SystemExit("mariadbd did not reach Synced")
        time.sleep(0.2)
    result["cluster_status"] = status("wsrep_cluster_status")
    for _ in range(2):
        with open(sql) as f:
            r = subprocess.run(["mariadb", "--defaults-file=" + cnf], stdin=f,
                               capture_output=True, text=True)
        result.setdefault("sql_rc", []).append(r.returncode)
        result.setdefault("sql_err", []).append(r.stderr[-500:])
    conn = pymysql.connect(unix_socket="/run/mysqld/mysqld.sock", user="root")
    with conn.cursor() as c:
        c.execute("SELECT COUNT(*) FROM mysql.user WHERE User = ''")
        result["anonymous"] = c.fetchone()[0]
        c.execute("SHOW DATABASES")
        result["databases"] = sorted(r[0] for r in c.fetchall())
    conn.close()
    try:
        pymysql.connect(host=node_ip, user="root", password="", connect_timeout=3).close()
        result["root_tcp_without_password"] = True
    except pymysql.MySQLError:
        result["root_tcp_without_password"] = False
    try:
        pymysql.connect(host=node_ip, user="keystone", password=password,
                        database="keystone", connect_timeout=3).close()
        result["keystone_tcp"] = True
    except pymysql.MySQLError as exc:
        result["keystone_tcp"] = repr(exc)
    agent = subprocess.Popen([sys.executable, "-m", "hastack.agents.galera_health",
                              "--config", ini], stderr=open(out + ".agent.log", "w"))
    def probe():
        try:
            with urllib.request.urlopen("http://%s:9200/" % node_ip, timeout=3) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return None
    deadline = time.time() + 10
    while probe() is None and time.time() < deadline:
        time.sleep(0.1)
    result["synced"] = probe()
    conn = pymysql.connect(unix_socket="/run/mysqld/mysqld.sock", user="root")
    with conn.cursor() as c:
        c.execute("SET GLOBAL wsrep_desync = ON")
    result["desynced_state"] = status("wsrep_local_state_comment")
    # The responder reuses a verdict for half a check interval: poll past that.
    deadline = time.time() + 5
    while probe() != 503 and time.time() < deadline:
        time.sleep(0.1)
    result["desynced"] = probe()
    with conn.cursor() as c:
        c.execute("SET GLOBAL wsrep_desync = OFF")
    conn.close()
    deadline = time.time() + 15
    while probe() != 200 and time.time() < deadline:
        time.sleep(0.2)
    result["resynced"] = probe()
    before = len(os.listdir("/proc/%d/fd" % agent.pid))
    for _ in range(50):
        probe()
    # The last request's socket may still be closing in its handler thread: let it settle.
    deadline = time.time() + 3
    while True:
        growth = len(os.listdir("/proc/%d/fd" % agent.pid)) - before
        if growth <= 0 or time.time() > deadline:
            break
        time.sleep(0.1)
    result["agent_fd_growth"] = growth
    db.kill()
    db.wait()
    # A cached "healthy" verdict may be served for half a check interval after the kill.
    deadline = time.time() + 5
    while probe() != 503 and time.time() < deadline:
        time.sleep(0.1)
    result["db_down"] = probe()
    agent.kill()
    with open(out, "w") as f:
        json.dump(result, f)
""")


@pytest.mark.validator
@pytest.mark.parametrize("name", GALERA_EXAMPLES)
def test_real_member_bootstraps_runs_init_sql_and_health_responder(
        name: str, tmp_path: Path) -> None:
    for program in ("mariadbd", "mariadb-install-db", "mariadb", "unshare"):
        require_program(program)
    plan = example_plan(name)
    secrets = complete({}, secret_specs(plan))
    files = galera_files(render_cloud(plan, secrets))
    root = write_rendered(files, tmp_path / "nodes")
    node = plan.nodes_running("mariadb-galera")[0]
    base = root / node
    datadir = tmp_path / "datadir"
    datadir.mkdir()
    out = tmp_path / "result.json"
    args = [str(plan.cloud.node(node).ip), str(base / galera_render.MY_CNF),
            str(base / galera_render.INIT_SQL), str(base / galera_render.HEALTH_INI),
            str(datadir), str(out), secrets["db_keystone"]]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--net", "--mount",
         "--propagation", "private", sys.executable, "-c", _MEMBER_SCRIPT, *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)     # the namespace's init dies: all of it
            proc.wait(timeout=10)
    logs = "".join(p.read_text()[-3000:] for p in tmp_path.glob("result.json.*.log"))
    assert proc.returncode == 0 and out.exists(), f"{output[-3000:]}\n{logs}"
    result = json.loads(out.read_text())
    assert result["cluster_status"] == "Primary"
    assert result["sql_rc"] == [0, 0], result["sql_err"]
    assert result["anonymous"] == 0
    assert {"keystone", "nova_api"} & set(result["databases"])
    assert "test" not in result["databases"]
    assert result["root_tcp_without_password"] is False
    assert result["keystone_tcp"] is True
    assert result["synced"] == 200
    assert result["desynced_state"] == "Donor/Desynced"
    donor_serves = plan.cloud.settings.galera.sst_method == "mariabackup"
    assert result["desynced"] == (200 if donor_serves else 503)
    assert result["resynced"] == 200
    assert result["agent_fd_growth"] <= 0, "the responder leaks connections"
    assert result["db_down"] == 503


def test_time_is_bounded() -> None:
    """The responder's database timeout comes from the budget (HAProxy's check interval)."""
    plan = example_plan("demo")
    files = render_example("demo")
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(file_of(files, "ctl1", galera_render.HEALTH_INI))
    assert float(ini["galera-health"]["timeout"]) == make_budget(plan.cloud).haproxy_inter_ms / 1000


def test_a_single_writer_cluster_does_not_pause_commits_for_a_rejoining_member() -> None:
    plan = example_plan("demo")
    assert plan.cloud.settings.galera.writers == 1
    files = render_cloud(plan, complete({}, secret_specs(plan)))
    for node in galera_render.galera_members(plan):
        options = provider_options(file_of(files, node, galera_render.MY_CNF))
        assert options["gcs.fc_single_primary"] == "yes"
        assert int(options["gcs.fc_limit"]) >= 100
