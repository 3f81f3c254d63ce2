"""What the lab can run, as data: each planned process -> its supervised program(s).

A row says how the Debian package's daemon runs in the foreground under supervisord, reading
the rendered files at their real paths. Processes without a row are skipped (and listed as
such in the summary) — never faked.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass

from hastack.deploy.lab.supervisor import Program
from hastack.plan import Plan

MARIADBD_ARGS = "/run/hastack/mariadbd.args"   # extra flags for the next start (bootstrap...)
SENTINEL_CONF = "/var/lib/redis/sentinel.conf"  # Sentinel rewrites its file: a writable copy
GALERA_HEALTH_MODULE = "hastack.agents.galera_health"


@dataclass(frozen=True)
class LabProcess:
    process: str                  # catalog name
    programs: tuple[Program, ...]


def _python() -> str:
    return sys.executable


LAB_PROCESSES: tuple[LabProcess, ...] = (
    LabProcess("haproxy", (
        # -db: stay in the foreground (the rendered master-worker mode logs to stdout).
        Program("haproxy", "/usr/sbin/haproxy -db -f /etc/haproxy/haproxy.cfg"),
    )),
    LabProcess("keepalived", (
        Program("keepalived", "/usr/sbin/keepalived --dont-fork --log-console --log-detail "
                              "--use-file /etc/keepalived/keepalived.conf"),
    )),
    LabProcess("mariadb-galera", (
        # Never restarted blindly: a Galera member comes back through --wsrep-recover (the lab
        # does that), else every restart is a full state transfer.
        Program("mariadb", "/bin/sh -c \"exec /usr/sbin/mariadbd --defaults-file=/etc/mysql/my.cnf"
                           f" --user=mysql $(cat {MARIADBD_ARGS} 2>/dev/null)\"",
                autorestart="false", startsecs=0, stopwaitsecs=60),
        Program("galera-health", f"{_python()} -m {GALERA_HEALTH_MODULE} "
                                 "--config /etc/hastack/galera-health.ini", autorestart="true"),
    )),
    LabProcess("garbd", (
        Program("garbd", "/usr/bin/garbd --cfg /etc/garbd.conf", user="nobody"),
    )),
    LabProcess("rabbitmq", (
        # The Erlang script itself (not Debian's su wrapper); it sources the rendered
        # /etc/rabbitmq/rabbitmq-env.conf, and the cookie lives in HOME.
        Program("rabbitmq", "/usr/lib/rabbitmq/bin/rabbitmq-server", user="rabbitmq",
                directory="/var/lib/rabbitmq", startsecs=0, stopwaitsecs=60,
                environment=(("HOME", "/var/lib/rabbitmq"),)),
    )),
    LabProcess("memcached", (
        # Debian's own parser of the option-per-line /etc/memcached.conf, in the foreground.
        Program("memcached", "/usr/share/memcached/scripts/systemd-memcached-wrapper "
                             "/etc/memcached.conf"),
    )),
    LabProcess("redis", (
        Program("redis", "/usr/bin/redis-server /etc/redis/redis.conf", user="redis"),
    )),
    LabProcess("redis-sentinel", (
        Program("redis-sentinel", f"/usr/bin/redis-sentinel {SENTINEL_CONF}", user="redis"),
    )),
)
BY_PROCESS = {p.process: p for p in LAB_PROCESSES}

# Why the lab does not run a planned process (the first matching rule wins).
NOT_RUN = {
    "mongodb": "no Debian 12 package",
    "corosync": "Pacemaker architecture is not in the lab yet",
    "pacemaker": "Pacemaker architecture is not in the lab yet",
}
OPENSTACK = "OpenStack services come in a later issue"


def lab_processes(plan: Plan) -> list[LabProcess]:
    return [BY_PROCESS[p.process] for p in plan.processes if p.process in BY_PROCESS]


def skipped(plan: Plan) -> list[tuple[str, str, str]]:
    """(process, nodes, reason) for every planned process the lab does not run."""
    rows = []
    for p in plan.processes:
        if p.process in BY_PROCESS:
            if p.process == "mariadb-galera" and not galera_health_available():
                rows.append(("galera-health", ",".join(p.nodes),
                             f"{GALERA_HEALTH_MODULE} is not installed"))
            continue
        reason = NOT_RUN.get(p.process, OPENSTACK if p.service != "support" else "not supported")
        rows.append((p.process, ",".join(p.nodes), reason))
    return rows


def galera_health_available() -> bool:
    try:
        return importlib.util.find_spec(GALERA_HEALTH_MODULE) is not None
    except ModuleNotFoundError:
        return False


def programs_on(plan: Plan, node: str) -> list[Program]:
    """Supervisor programs of one node, in the plan's order."""
    programs: list[Program] = []
    for p in plan.nodes_of(node):
        row = BY_PROCESS.get(p.process)
        if row is None:
            continue
        for program in row.programs:
            if program.name == "galera-health" and not galera_health_available():
                continue
            programs.append(program)
    return programs
