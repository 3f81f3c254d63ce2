"""Bring-up of what runs in the nodes, in protocol order and otherwise in parallel.

Four independent chains run at once: load balancing (HAProxy, then keepalived, until each VIP
has exactly one holder), Galera (datadirs, bootstrap or recovery, init SQL once, joiners,
health responders), RabbitMQ (a seed, then the others join), and caches (memcached, Redis,
Sentinel). Each chain looks at what already runs and starts only what is missing, so the same
code brings a lab up from nothing, repairs it, or — on a healthy lab — does nothing.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hastack.deploy.lab import network, openstack
from hastack.deploy.lab.lab import Lab, LabNode, listening_ports, wait_until
from hastack.deploy.lab.nodes import install_file, node_path
from hastack.deploy.lab.programs import MARIADBD_ARGS, SENTINEL_CONF
from hastack.deploy.lab.report import Steps
from hastack.deploy.lab.run import nsenter, run
from hastack.errors import LabError

GALERA_START_TIMEOUT_S = 90
JOIN_ATTEMPTS = 3
RABBIT_START_TIMEOUT_S = 90
INIT_SQL = "etc/mysql/hastack-init.sql"
INIT_DONE = "galera-init.done"   # marker in the state dir: the init SQL ran once
RECOVERED = re.compile(r"WSREP: Recovered position:\s*([0-9a-f-]{36}):(-?\d+)")


def bring_up(lab: Lab, steps: Steps) -> list[str]:
    """Start whatever is planned and not running; returns what was done."""
    chains: list[Callable[[Lab, Steps], list[str]]] = [
        _load_balancing, _galera, _rabbitmq, _caches]
    pool = ThreadPoolExecutor(max_workers=len(chains) + 2)
    futures = [pool.submit(chain, lab, steps) for chain in chains]
    galera, rabbitmq = futures[1], futures[2]

    def database_ready() -> bool:
        # Keystone's database and account exist once the init SQL ran; a failed Galera
        # chain ends the wait (its error is reported once, by that chain).
        if galera.done() and galera.exception() is not None:
            raise LabError("Keystone: not started, Galera did not come up")
        # After a power cycle the init SQL ran long ago: wait for a Primary member too.
        return (lab.state / INIT_DONE).exists() and (galera.done() or any(
            wsrep_status(m).get("wsrep_cluster_status") == "Primary"
            for m in _members(lab, "mariadb-galera") if _running(m, "mariadb")))

    # OpenStack services start as soon as what they need is there, next to the other chains.
    futures.append(pool.submit(openstack.keystone, lab, steps, database_ready))
    futures.append(pool.submit(openstack.rpc_service, lab, steps, rabbitmq))
    actions: list[str] = []
    errors: list[str] = []
    try:
        for future in futures:
            try:
                actions += future.result()
            except LabError as exc:
                errors.append(str(exc))
    finally:
        # On Ctrl-C, do not wait for the chains: the caller tears the nodes down, which makes
        # whatever they still wait for fail at once.
        pool.shutdown(wait=False, cancel_futures=True)
    if errors:
        raise LabError("; ".join(errors))
    return actions


# --- helpers -----------------------------------------------------------------------------


def _members(lab: Lab, process: str) -> list[LabNode]:
    return [lab.nodes[n] for n in lab.plan.nodes_running(process)]


def _running(node: LabNode, program: str) -> bool:
    return node.supervisor.states().get(program) == "RUNNING"


def _start(node: LabNode, program: str, steps: Steps, action: str = "start") -> str:
    with steps.timed(node.name, program, action):
        node.supervisor.start(program)
    return f"{node.name}: started {program}"


def _parallel(func: Callable[[LabNode], list[str]], nodes: list[LabNode]) -> list[str]:
    if not nodes:
        return []
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        return [a for result in pool.map(func, nodes) for a in result]


def _wait_port(node: LabNode, program: str, port: int, timeout: float) -> None:
    def ready() -> bool:
        state = node.supervisor.states().get(program)
        if state in ("FATAL", "EXITED", "BACKOFF", "STOPPED"):
            raise LabError(f"{node.name}: {program} is {state}: "
                           f"{node.supervisor.log_tail(program)}")
        return port in listening_ports(node.pid)
    if not wait_until(ready, timeout, 0.1):
        raise LabError(f"{node.name}: {program} not listening on :{port} after {timeout:g} s: "
                       f"{node.supervisor.log_tail(program)}")


# --- HAProxy + keepalived ------------------------------------------------------------------


def _load_balancing(lab: Lab, steps: Steps) -> list[str]:
    actions = []
    for process in ("haproxy", "keepalived"):
        todo = [n for n in _members(lab, process) if not _running(n, process)]
        actions += _parallel(lambda n, p=process: [_start(n, p, steps)], todo)  # type: ignore[misc]
    if lab.plan.runs("keepalived"):
        with steps.timed("-", "keepalived", "each VIP held by exactly one node"):
            holders = wait_until(lambda: _single_holders(lab), 10, 0.1)
        if not holders:
            raise LabError(f"VIPs not held by exactly one node after 10 s: {vip_holders(lab)}")
    return actions


def vip_holders(lab: Lab) -> dict[str, list[str]]:
    candidates = {v.name: list(v.candidates) for v in lab.plan.vips}
    held: dict[str, list[str]] = {name: [] for name in candidates}
    addresses = {str(address): name for name, address in lab.cloud.vips.items()}
    for node in lab.nodes.values():
        for address in network.addresses(node.pid):
            if address in addresses:
                held[addresses[address]].append(node.name)
    return held


def _single_holders(lab: Lab) -> bool:
    return all(len(h) == 1 for h in vip_holders(lab).values())


# --- Galera --------------------------------------------------------------------------------


def mysql(node: LabNode, sql: str, timeout: float = 10,
          check: bool = True) -> list[list[str]]:
    """Rows of a query run as root over the node's socket (unix_socket authentication)."""
    result = run(nsenter(node.pid, ["mariadb", "--defaults-file=/etc/mysql/my.cnf", "-uroot",
                                    "-N", "-B", "-e", sql]), timeout=timeout, check=check)
    return [line.split("\t") for line in result.stdout.splitlines()] if result.returncode == 0 \
        else []


def wsrep_status(node: LabNode) -> dict[str, str]:
    rows = mysql(node, "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_size',"
                       "'wsrep_cluster_status','wsrep_local_state_comment','wsrep_ready')",
                 timeout=5, check=False)
    return {row[0]: row[1] for row in rows if len(row) == 2}


def _synced(node: LabNode) -> dict[str, str] | None:
    state = node.supervisor.states().get("mariadb")
    if state in ("FATAL", "EXITED", "STOPPED"):
        raise LabError(f"{node.name}: mariadbd exited: {_mariadb_log(node)}")
    status = wsrep_status(node)
    if (status.get("wsrep_local_state_comment") == "Synced"
            and status.get("wsrep_cluster_status") == "Primary"):
        return status
    return None


def _mariadb_log(node: LabNode) -> str:
    lines = [line for line in node.supervisor.log_tail("mariadb", 4000).split(" | ")
             if "ERROR" in line or "rror" in line]
    return " | ".join(lines[-3:]) or node.supervisor.log_tail("mariadb")


def _wait_synced(node: LabNode, timeout: float = GALERA_START_TIMEOUT_S) -> None:
    if not wait_until(lambda: _synced(node), timeout, 0.25):
        raise LabError(f"{node.name}: Galera member not Synced/Primary after {timeout:g} s: "
                       f"{wsrep_status(node) or _mariadb_log(node)}")


def _datadir_installed(node: LabNode) -> bool:
    return (node.dirs.data("mysql") / "mysql").is_dir()


def _install_datadir(node: LabNode, steps: Steps) -> None:
    with steps.timed(node.name, "mariadb", "mariadb-install-db"):
        run(nsenter(node.pid, ["mariadb-install-db", "--defaults-file=/etc/mysql/my.cnf",
                               "--user=mysql", "--skip-test-db",
                               "--auth-root-authentication-method=socket"]), timeout=120)


def _recover_position(node: LabNode, steps: Steps) -> tuple[str, int] | None:
    """`mariadbd --wsrep-recover`: the last committed position of a stopped member."""
    log = "/tmp/wsrep-recover.log"
    with steps.timed(node.name, "mariadb", "--wsrep-recover"):
        run(nsenter(node.pid, ["mariadbd", "--defaults-file=/etc/mysql/my.cnf", "--user=mysql",
                               "--wsrep-recover", f"--log-error={log}"]),
            timeout=120, check=False)
    text = node_path(node.pid, log).read_text(errors="replace") \
        if node_path(node.pid, log).exists() else ""
    found = RECOVERED.findall(text)
    if not found:
        return None
    uuid, seqno = found[-1]
    return uuid, int(seqno)


def _set_start_args(node: LabNode, args: list[str]) -> None:
    install_file(node.pid, MARIADBD_ARGS, (" ".join(args) + "\n").encode(), 0o644, "root")


def _set_safe_to_bootstrap(node: LabNode) -> None:
    grastate = node.dirs.data("mysql") / "grastate.dat"
    if grastate.exists():
        text = re.sub(r"safe_to_bootstrap:\s*\d", "safe_to_bootstrap: 1", grastate.read_text())
        grastate.write_text(text)


def _galera(lab: Lab, steps: Steps) -> list[str]:
    members = _members(lab, "mariadb-galera")
    if not members:
        return []
    actions: list[str] = []
    running = [m for m in members if _running(m, "mariadb")]
    joiners = [m for m in members if m not in running]
    positions: dict[str, tuple[str, int] | None] = {}

    fresh = not running and not any(_datadir_installed(m) for m in members)

    def prepare(node: LabNode) -> list[str]:
        if not _datadir_installed(node):
            positions[node.name] = None
            if fresh and node is not members[0]:
                # A new joiner's datadir is replaced by its state transfer anyway.
                return []
            _install_datadir(node, steps)
            return [f"{node.name}: installed the Galera datadir"]
        positions[node.name] = _recover_position(node, steps)
        return []

    actions += _parallel(prepare, joiners)
    if not running:
        # No member runs: bootstrap a new primary component from the most advanced member,
        # decided like `hastack recover` (positions, last primary views; refusals stop here).
        from hastack.deploy.lab import recovery  # recovery builds on this module
        first = members[0] if fresh else recovery.most_advanced(lab, members, positions, steps)
        args = ["--wsrep-new-cluster"]
        position = positions.get(first.name)
        if position:
            _set_safe_to_bootstrap(first)
            args.append(f"--wsrep-start-position={position[0]}:{position[1]}")
        _set_start_args(first, args)
        actions.append(_start(first, "mariadb", steps, "start --wsrep-new-cluster"))
        with steps.timed(first.name, "mariadb", "bootstrap: Primary, Synced"):
            _wait_synced(first)
        _set_start_args(first, [])
        actions += _init_sql_once(lab, first, steps)
        actions += _start_health(first, steps)
        joiners.remove(first)
        running.append(first)

    def join(node: LabNode) -> list[str]:
        position = positions.get(node.name)
        return join_member(node, f"{position[0]}:{position[1]}" if position else None, steps)

    # Joiners one at a time: a donor serves one state transfer at a time anyway, and two
    # joiners entering the group together on a loaded 2-core host hit gcs connect timeouts.
    for node in joiners:
        actions += join(node)
    return actions + _parallel(lambda m: _start_health(m, steps), members)


def join_member(node: LabNode, start_position: str | None, steps: Steps) -> list[str]:
    """Start one Galera joiner (from its recovered position: IST when the donor still has it)
    and wait until it is Synced, restarting it when it could not reach the group."""
    _set_start_args(node, [f"--wsrep-start-position={start_position}"] if start_position else [])
    action = _start(node, "mariadb", steps, "start (joins: SST/IST)")
    for attempt in range(1, JOIN_ATTEMPTS + 1):
        try:
            with steps.timed(node.name, "mariadb", "joined: Synced"):
                _wait_synced(node)
            break
        except LabError as exc:
            # A joiner that could not reach the group (gcs connect timeout on a loaded
            # host) exits; start it again, as a service manager's on-failure restart would.
            if attempt == JOIN_ATTEMPTS or _running(node, "mariadb"):
                raise
            steps.note(f"{node.name}: Galera join failed, retrying: {exc}")
            _start(node, "mariadb", steps, "start again (joins)")
    _set_start_args(node, [])
    return [action, *_start_health(node, steps)]


def _start_health(node: LabNode, steps: Steps) -> list[str]:
    """The HTTP responder HAProxy checks (200 only when Synced and Primary)."""
    states = node.supervisor.states()
    if "galera-health" not in states or states["galera-health"] == "RUNNING":
        return []
    return [_start(node, "galera-health", steps)]


def _init_sql_once(lab: Lab, node: LabNode, steps: Steps) -> list[str]:
    marker = lab.state / INIT_DONE
    sql = lab.rendered(node.name, INIT_SQL)
    if marker.exists() or sql is None:
        return []
    with steps.timed(node.name, "mariadb", "init SQL (accounts, databases)"):
        run(nsenter(node.pid, ["mariadb", "--defaults-file=/etc/mysql/my.cnf", "-uroot"]),
            input=sql, timeout=60)
    marker.write_text("the bootstrap SQL ran once; delete to run it again\n")
    return [f"{node.name}: ran the Galera init SQL"]


# --- RabbitMQ ------------------------------------------------------------------------------


def rabbit_nodename(lab: Lab, node: str) -> str:
    env = lab.rendered(node, "etc/rabbitmq/rabbitmq-env.conf") or ""
    match = re.search(r"^\s*(?:RABBITMQ_)?NODENAME=['\"]?([^'\"\s]+)", env, re.M)
    name = match.group(1) if match else "rabbit@$HOSTNAME"
    return name.replace("$HOSTNAME", node).replace("${HOSTNAME}", node)


def rabbitmqctl(node: LabNode, args: list[str], timeout: float = 60,
                check: bool = True) -> str:
    return run(nsenter(node.pid, ["rabbitmqctl", *args]), timeout=timeout, check=check).stdout


def rabbit_cluster_status(node: LabNode) -> dict[str, Any] | None:
    out = run(nsenter(node.pid, ["rabbitmqctl", "cluster_status", "--formatter", "json"]),
              timeout=30, check=False)
    if out.returncode != 0:
        return None
    try:
        data: dict[str, Any] = json.loads(out.stdout)
    except ValueError:
        return None
    return data


def _wait_rabbit(node: LabNode) -> None:
    _wait_port(node, "rabbitmq", 5672, RABBIT_START_TIMEOUT_S)
    # await_startup fails at once before the node registers with epmd: retry.
    for _ in range(20):
        result = run(nsenter(node.pid, ["rabbitmqctl", "await_startup", "--timeout", "60"]),
                     timeout=90, check=False)
        if result.returncode == 0:
            return
    raise LabError(f"{node.name}: rabbitmqctl await_startup keeps failing")


def _rabbitmq(lab: Lab, steps: Steps) -> list[str]:
    members = _members(lab, "rabbitmq")
    if not members:
        return []
    for node in members:
        _own_cookie(node)
    actions: list[str] = []
    running = [m for m in members if _running(m, "rabbitmq")]
    with_data = [m for m in members if _rabbit_has_data(lab, m)]
    if not running and not with_data:
        # A new cluster: one seed first; nodes booting together from empty data may form
        # separate clusters.
        seed = members[0]
        actions.append(_start(seed, "rabbitmq", steps))
        with steps.timed(seed.name, "rabbitmq", "booted (await_startup)"):
            _wait_rabbit(seed)
        running = [seed]
    # Members with data (a cluster that was stopped or crashed) start together: each waits
    # for its peers' tables, so starting them one by one would stall.
    todo = [m for m in members if m not in running]

    def start(node: LabNode) -> list[str]:
        action = _start(node, "rabbitmq", steps)
        with steps.timed(node.name, "rabbitmq", "booted (await_startup)"):
            _wait_rabbit(node)
        return [action]

    actions += _parallel(start, todo)
    seed = running[0] if running else members[0]
    status = rabbit_cluster_status(seed) or {}
    in_cluster = set(status.get("running_nodes", []))
    strays = [m for m in members if rabbit_nodename(lab, m.name) not in in_cluster]

    def join(node: LabNode) -> list[str]:
        # Peer discovery did not cluster it (or no peer discovery): join explicitly.
        with steps.timed(node.name, "rabbitmq", f"join_cluster {rabbit_nodename(lab, seed.name)}"):
            rabbitmqctl(node, ["stop_app"])
            rabbitmqctl(node, ["reset"])
            rabbitmqctl(node, ["join_cluster", rabbit_nodename(lab, seed.name)])
            rabbitmqctl(node, ["start_app"])
        return [f"{node.name}: joined RabbitMQ cluster"]

    actions += _parallel(join, strays)
    return actions


def _rabbit_has_data(lab: Lab, node: LabNode) -> bool:
    return (node.dirs.data("rabbitmq") / "mnesia" / rabbit_nodename(lab, node.name)).is_dir()


def _own_cookie(node: LabNode) -> None:
    """The rendered cookie is 0400; make sure rabbitmq owns its HOME and the cookie."""
    home = node.dirs.data("rabbitmq")
    shutil.chown(home, "rabbitmq", "rabbitmq")
    cookie = Path(home / ".erlang.cookie")
    if cookie.exists():
        shutil.chown(cookie, "rabbitmq", "rabbitmq")


# --- memcached, Redis, Sentinel --------------------------------------------------------------


def _caches(lab: Lab, steps: Steps) -> list[str]:
    actions = []
    for process, port in (("memcached", 11211), ("redis", 6379), ("redis-sentinel", 26379)):
        todo = [n for n in _members(lab, process) if not _running(n, process)]

        def start(node: LabNode, process: str = process, port: int = port) -> list[str]:
            if process == "redis-sentinel":
                _sentinel_copy(lab, node)
            action = _start(node, process, steps)
            _wait_port(node, process, port, 30)
            return [action]

        actions += _parallel(start, todo)
    return actions


def _sentinel_copy(lab: Lab, node: LabNode) -> None:
    """Sentinel rewrites its config: it runs on a writable copy, made once per data dir."""
    copy = node_path(node.pid, SENTINEL_CONF)
    rendered = lab.rendered(node.name, "etc/redis/sentinel.conf")
    if rendered is not None and not copy.exists():
        install_file(node.pid, SENTINEL_CONF, rendered.encode(), 0o640, "redis")
