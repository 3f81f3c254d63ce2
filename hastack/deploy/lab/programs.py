"""What the lab can run, as data: each planned process -> its supervised program(s).

A row says how the Debian package's daemon runs in the foreground under supervisord, reading
the rendered files at their real paths. Processes without a row are skipped (and listed as
such in the summary) — never faked.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from hastack.catalog.hosts import load_host_catalog
from hastack.deploy.lab.supervisor import Program
from hastack.deploy.systems import keystone, python_package_installed
from hastack.deploy.systems.caches import REDIS_CONF, SENTINEL_CONF
from hastack.deploy.systems.galera import START_ARGS as MARIADBD_ARGS
from hastack.errors import LabError
from hastack.plan import Plan
from hastack.render import wsgi

GALERA_HEALTH_MODULE = "hastack.agents.galera_health"
# Python packages a program needs (pip, in the project's venv): program -> module.
PYTHON_NEEDS = {"keystone": keystone.PYTHON_PACKAGE,
                "placement-api": "placement", "glance-api": "glance",
                "neutron-server": "neutron", "neutron-api": "neutron",
                "neutron-rpc-server": "neutron",
                **{p: "nova" for p in ("nova-api", "nova-metadata-api", "nova-conductor",
                                       "nova-scheduler", "nova-compute")},
                **{p: "heat" for p in ("heat-api", "heat-api-cfn", "heat-engine")},
                **{p: "ceilometer" for p in ("ceilometer-notification", "ceilometer-central")}}
# Files a wheel ships under <venv>/etc that its service reads from /etc (a Debian package
# would install them there): process -> (path under the venv, path in the node). The host
# catalog's, so that the lab and real hosts place the same ones.
PACKAGE_FILES = {process: tuple(spec.wheel_files.items())
                 for role in load_host_catalog().roles
                 for process, spec in role.processes.items() if spec.wheel_files}
# The lab's hypervisor: Nova's fake driver (this machine has no KVM); see Lab.render.
NOVA_COMPUTE_LAB_CONF = "etc/nova/nova-compute-lab.conf"


@dataclass(frozen=True)
class LabProcess:
    process: str                  # catalog name
    programs: tuple[Program, ...]


def _python() -> str:
    """This interpreter, quoted for supervisord's command line (a clone may lie at a path
    with spaces)."""
    return shlex.quote(sys.executable)


def _venv_bin(program: str) -> str:
    """A console script installed next to this interpreter (the project's venv), quoted."""
    return shlex.quote(str(Path(sys.executable).parent / program))


# The lab's nodes share this machine's two cores. An OpenStack service behind Keystone spends
# seconds of CPU importing itself at every start; niced, its start (a rolling restart boots
# nine of them per controller) does not starve the tier whose failover is being measured
# (HAProxy, Galera, RabbitMQ, memcached, Keystone, and the clients), as it would not on real
# controllers with cores of their own. Keystone is one of the measured services: not niced.
NICE = "nice -n 10"
UNNICED = ("keystone",)
# Ceilometer's agents only observe the other services: lowest priority, so that their imports
# and polls take the CPU the services leave idle (a power-loss recovery starts them all at
# once, and its time is what is measured).
OBSERVER_NICE = "nice -n 19"


def _gunicorn(program: str) -> Program:
    """An OpenStack API under gunicorn, its settings rendered (`render.wsgi`: bind, workers,
    control socket in the node's /run). Runs as root: the PyPI services have no users of
    their own here (no Debian package made them), and Keystone's key repositories are
    root-only."""
    app = wsgi.BY_PROGRAM[program]
    nice = "" if program in UNNICED else f"{NICE} "
    return Program(program, f"/bin/sh -c \"mkdir -p {Path(app.control_socket).parent} && "
                            f"exec {nice}{_venv_bin('gunicorn')} --config /{app.conf}\"",
                   autorestart="true", startsecs=2, stopwaitsecs=15)


def _oslo_service(program: str, *config_files: str, script: str | None = None,
                  args: str = "", nice: str = NICE) -> Program:
    """An OpenStack RPC service from the venv (its console script `script`, by default the
    program's name), reading the rendered files."""
    files = " ".join(f"--config-file /{f}" for f in config_files)
    command = " ".join(filter(None, (nice, _venv_bin(script or program), args, files)))
    return Program(program, command, autorestart="true", startsecs=2, stopwaitsecs=15)


NOVA_CONF = "etc/nova/nova.conf"
NEUTRON_CONF = "etc/neutron/neutron.conf"
ML2_CONF = "etc/neutron/plugins/ml2/ml2_conf.ini"
HEAT_CONF = "etc/heat/heat.conf"
CEILOMETER_CONF = "etc/ceilometer/ceilometer.conf"

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
        Program("redis", f"/usr/bin/redis-server {REDIS_CONF}", user="redis"),
    )),
    LabProcess("redis-sentinel", (
        Program("redis-sentinel", f"/usr/bin/redis-sentinel {SENTINEL_CONF}", user="redis"),
    )),
    LabProcess("corosync", (
        # -f: foreground. Its IPC is abstract unix sockets (one network namespace per node)
        # and shared-memory rings in the node's own /dev/shm.
        Program("corosync", "/usr/sbin/corosync -f", startsecs=1, stopwaitsecs=30),
    )),
    LabProcess("pacemaker", (
        # pacemakerd stays in the foreground and starts the cluster daemons itself.
        Program("pacemaker", "/usr/sbin/pacemakerd", startsecs=2, stopwaitsecs=120),
    )),
    LabProcess("keystone", (_gunicorn("keystone"),)),
    LabProcess("placement-api", (_gunicorn("placement-api"),)),
    LabProcess("glance-api", (_gunicorn("glance-api"),)),
    LabProcess("nova-api", (_gunicorn("nova-api"), _gunicorn("nova-metadata-api"))),
    # The API under gunicorn, and the RPC workers the agents talk to.
    LabProcess("neutron-server", (_gunicorn("neutron-api"),
                                  _oslo_service("neutron-rpc-server", NEUTRON_CONF, ML2_CONF))),
    LabProcess("nova-conductor", (_oslo_service("nova-conductor", NOVA_CONF),)),
    LabProcess("nova-scheduler", (_oslo_service("nova-scheduler", NOVA_CONF),)),
    LabProcess("nova-compute", (_oslo_service("nova-compute", NOVA_CONF,
                                              NOVA_COMPUTE_LAB_CONF),)),
    LabProcess("heat-api", (_gunicorn("heat-api"),)),
    LabProcess("heat-api-cfn", (_gunicorn("heat-api-cfn"),)),
    LabProcess("heat-engine", (_oslo_service("heat-engine", HEAT_CONF),)),
    LabProcess("ceilometer-notification", (
        _oslo_service("ceilometer-notification", CEILOMETER_CONF,
                      script="ceilometer-agent-notification", nice=OBSERVER_NICE),)),
    LabProcess("ceilometer-central", (
        _oslo_service("ceilometer-central", CEILOMETER_CONF, script="ceilometer-polling",
                      args="--polling-namespaces central", nice=OBSERVER_NICE),)),
)
BY_PROCESS = {p.process: p for p in LAB_PROCESSES}

# Why the lab does not run a planned process (the first matching rule wins).
NOT_RUN = {
    "mongodb": "no Debian 12 package",
    "ceilometer-compute": "polls libvirt's domains; the lab's nova-compute runs Nova's fake "
                          "driver (no KVM here)",
}
OPENSTACK = "this OpenStack process is not run by the lab yet"


def service_of(process: str) -> str:
    """The service that is a catalog process on a lab node (its first program)."""
    row = BY_PROCESS.get(process)
    if row is None:
        raise LabError(f"the lab does not run {process!r} (runs: {', '.join(BY_PROCESS)})")
    return row.programs[0].name


def lab_processes(plan: Plan) -> list[LabProcess]:
    return [BY_PROCESS[p.process] for p in plan.processes if p.process in BY_PROCESS]


def python_available(program: str) -> bool:
    """Whether the Python package a program needs is installed (always true for others)."""
    module = PYTHON_NEEDS.get(program)
    return module is None or python_package_installed(module)


def _not_installed(program: str) -> str:
    return (f"Python package {PYTHON_NEEDS[program]} is not installed in "
            f"{Path(sys.executable).parent.parent} (pip install -e .[test])")


def skipped(plan: Plan) -> list[tuple[str, str, str]]:
    """(process, nodes, reason) for every planned process the lab does not run."""
    rows = []
    for p in plan.processes:
        if p.process in BY_PROCESS:
            if p.process == "mariadb-galera" and not galera_health_available():
                rows.append(("galera-health", ",".join(p.nodes),
                             f"{GALERA_HEALTH_MODULE} is not installed"))
            if not python_available(p.process):
                rows.append((p.process, ",".join(p.nodes), _not_installed(p.process)))
            continue
        if p.retired:
            reason = f"retired upstream ({p.retired})"
        else:
            reason = NOT_RUN.get(p.process,
                                 OPENSTACK if p.service != "support" else "not supported")
        rows.append((p.process, ",".join(p.nodes), reason))
    return rows


def galera_health_available() -> bool:
    return python_package_installed(GALERA_HEALTH_MODULE)


def programs_on(plan: Plan, node: str) -> list[Program]:
    """Supervisor programs of one node, in the plan's order.

    A process that Pacemaker manages is started, monitored and restarted by Pacemaker (through
    the `ocf:hastack:supervised` agent): supervisord never restarts it behind Pacemaker's back,
    as a real host's unit under Pacemaker has no `Restart=` of its own."""
    programs: list[Program] = []
    for p in plan.nodes_of(node):
        row = BY_PROCESS.get(p.process)
        if row is None:
            continue
        for program in row.programs:
            if p.strategy == "pacemaker":
                program = replace(program, autorestart="false")
            if program.name == "galera-health" and not galera_health_available():
                continue
            if not python_available(program.name):
                continue
            programs.append(program)
    return programs
