"""MariaDB Galera: datadirs, bootstrap from the most advanced member, joiners, init SQL once.

Stage 5 (deploy), one system, written only against `NodeExec`. The bring-up is two steps of
`orchestrate`: `bring_up_primary` (a Primary component exists: bootstrap one when no member
runs — from the most advanced member, decided like `hastack recover` — then the init SQL,
once per deployment) and `join_others` (every other member, one at a time). The evidence
recovery decides on (`grastate.dat`, `gvwstate.dat`, `mariadbd --wsrep-recover`) is read here
too: one `wsrep_recover` for every caller.
"""

from __future__ import annotations

import configparser
import contextlib
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from hastack.deploy.base import FileReader, NodeExec, ServiceState, read_text, wait_until
from hastack.deploy.recovery import (
    Action,
    Decision,
    GaleraNode,
    Position,
    decide_galera,
    parse_grastate,
    parse_gvwstate,
    parse_wsrep_recover,
)
from hastack.deploy.site import Site, running, start
from hastack.deploy.systems import parallel
from hastack.errors import LabError

PROCESS = "mariadb-galera"
MARIADB = "mariadb"                 # the service
HEALTH = "galera-health"            # the HTTP responder HAProxy checks
MY_CNF = "/etc/mysql/my.cnf"
DATADIR = "/var/lib/mysql"
GRASTATE = f"{DATADIR}/grastate.dat"
GVWSTATE = f"{DATADIR}/gvwstate.dat"
START_ARGS = "/run/hastack/mariadbd.args"   # extra flags for the next start (bootstrap...)
RECOVER_LOG = "/tmp/wsrep-recover.log"
INIT_SQL = "etc/mysql/hastack-init.sql"
INIT_DONE = "galera-init.done"      # marker in the state dir: the init SQL ran once
PRIMARY = "galera-primary"          # the milestone: a Primary component with the init SQL run
START_TIMEOUT_S = 90
JOIN_ATTEMPTS = 3
_SAFE = re.compile(r"safe_to_bootstrap:\s*\d")

# Decides which member bootstraps when none runs; `hastack recover` passes one that also
# records the evidence. Returns the chosen member's name, or raises with the refusals.
Chooser = Callable[[Sequence[GaleraNode]], str]


# --- observations ------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberStatus:
    """A member's wsrep status variables (all None when it does not answer)."""

    state: str | None = None            # wsrep_local_state_comment: Synced, Donor/Desynced...
    cluster_status: str | None = None   # Primary, non-Primary, Disconnected
    size: int = 0

    @property
    def primary(self) -> bool:
        return self.cluster_status == "Primary"

    @property
    def synced_primary(self) -> bool:
        return self.primary and self.state == "Synced"


def mysql(node: NodeExec, sql: str, timeout: float = 10, check: bool = True) -> list[list[str]]:
    """Rows of a query run as root over the node's socket (unix_socket authentication)."""
    result = node.run(["mariadb", f"--defaults-file={MY_CNF}", "-uroot", "-N", "-B", "-e", sql],
                      timeout=timeout, check=check)
    if result.returncode != 0:
        return []
    return [line.split("\t") for line in result.stdout.splitlines()]


def direct_database(site: Site, node: NodeExec, override: str,
                    ini: configparser.ConfigParser, sections: Sequence[str]) -> NodeExec:
    """Write an oslo.config override into `node` that points `sections`' connection URLs (from
    the rendered file `ini`) at one Primary Galera member directly, and return that member.

    During a cold bring-up the joiners' state transfers run while the services' schemas are
    made; HAProxy's Galera check takes the donor out of rotation and cuts its sessions, which
    can leave a migration half done. A member keeps serving its own connections while it
    donates, so one-time schema work talks to it directly; the services keep the VIP."""
    for member in site.members(PROCESS):
        status = member_status(member)
        if status.primary and status.state in ("Synced", "Donor/Desynced"):
            break
    else:
        raise LabError("no Primary Galera member to create the schema on")
    lines = [f"# hastack: one-time schema work on {member.name} directly"]
    for section in sections:
        parts = urlsplit(ini[section]["connection"])
        netloc = parts.netloc.replace(f"@{parts.hostname}:", f"@{member.address.ip}:")
        lines += [f"[{section}]", f"connection = {urlunsplit(parts._replace(netloc=netloc))}"]
    node.write(override, ("\n".join(lines) + "\n").encode(), 0o600, "root")
    return member


def member_status(node: NodeExec) -> MemberStatus:
    rows = mysql(node, "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_size',"
                       "'wsrep_cluster_status','wsrep_local_state_comment')",
                 timeout=5, check=False)
    values = {row[0]: row[1] for row in rows if len(row) == 2}
    return MemberStatus(values.get("wsrep_local_state_comment"),
                        values.get("wsrep_cluster_status"),
                        int(values.get("wsrep_cluster_size", 0) or 0))


def _synced(node: NodeExec) -> MemberStatus | None:
    state = node.services.states().get(MARIADB)
    if state in (ServiceState.FATAL, ServiceState.EXITED, ServiceState.STOPPED):
        raise LabError(f"{node.name}: mariadbd exited: {_errors_in_log(node)}")
    status = member_status(node)
    return status if status.synced_primary else None


def _errors_in_log(node: NodeExec) -> str:
    lines = [line for line in node.services.log_tail(MARIADB, 4000).split(" | ")
             if "rror" in line]
    return " | ".join(lines[-3:]) or node.services.log_tail(MARIADB)


def wait_synced(node: NodeExec, timeout: float = START_TIMEOUT_S) -> None:
    if not wait_until(lambda: _synced(node), timeout, 0.25):
        raise LabError(f"{node.name}: Galera member not Synced/Primary after {timeout:g} s: "
                       f"{member_status(node)} {_errors_in_log(node)}")


def has_datadir(disk: FileReader) -> bool:
    return disk.exists(f"{DATADIR}/mysql")


# --- evidence ----------------------------------------------------------------------------


def disk_evidence(name: str, disk: FileReader, available: bool) -> GaleraNode:
    """What a member's disk says: its datadir, grastate.dat and gvwstate.dat."""
    grastate = read_text(disk, GRASTATE)
    gvwstate = read_text(disk, GVWSTATE)
    return GaleraNode(name, available=available, has_data=has_datadir(disk),
                      grastate=parse_grastate(grastate) if grastate is not None else None,
                      gvwstate=parse_gvwstate(gvwstate) if gvwstate is not None else None)


def wsrep_recover(node: NodeExec, site: Site) -> str:
    """The log of `mariadbd --wsrep-recover` (InnoDB recovery, then the last committed
    position); mariadbd must not run. The old log goes first: an earlier run's position
    appended to it must never be read as this one's."""
    node.remove(RECOVER_LOG)
    with site.steps.timed(node.name, MARIADB, "--wsrep-recover"):
        node.run(["mariadbd", f"--defaults-file={MY_CNF}", "--user=mysql", "--wsrep-recover",
                  f"--log-error={RECOVER_LOG}"], timeout=180, check=False)
    return read_text(node, RECOVER_LOG) or ""


def recover_errors(log: str) -> str:
    lines = [line.split("] ", 1)[-1] for line in log.splitlines() if "[ERROR]" in line]
    return "; ".join(lines[-2:]) or ("--wsrep-recover wrote no log" if not log.strip()
                                     else "--wsrep-recover found no position")


def stopped_evidence(node: NodeExec, site: Site,
                     logs: dict[str, str] | None = None) -> GaleraNode:
    """A stopped member's evidence, with its recovered position when grastate.dat has none
    (a crash leaves seqno -1)."""
    evidence = disk_evidence(node.name, node, available=True)
    grastate = evidence.grastate
    if not evidence.has_data or (grastate is not None and grastate.seqno >= 0):
        return evidence
    log = wsrep_recover(node, site)
    if logs is not None:
        logs[node.name] = log
    recovered = parse_wsrep_recover(log)
    return GaleraNode(node.name, has_data=True, grastate=grastate, gvwstate=evidence.gvwstate,
                      recovered=recovered, recover_error="" if recovered else recover_errors(log))


# --- acting ------------------------------------------------------------------------------


def set_start_args(node: NodeExec, args: Sequence[str]) -> None:
    node.write(START_ARGS, (" ".join(args) + "\n").encode())


def set_safe_to_bootstrap(node: NodeExec) -> None:
    text = read_text(node, GRASTATE)
    if text is not None:
        node.write(GRASTATE, _SAFE.sub("safe_to_bootstrap: 1", text).encode(), 0o660, "mysql")


def install_datadir(node: NodeExec, site: Site) -> None:
    with site.steps.timed(node.name, MARIADB, "mariadb-install-db"):
        node.run(["mariadb-install-db", f"--defaults-file={MY_CNF}", "--user=mysql",
                  "--skip-test-db", "--auth-root-authentication-method=socket"], timeout=120)


def bootstrap(node: NodeExec, site: Site, position: Position | None) -> list[str]:
    """Start a new primary component on `node` (from its position), then the init SQL once
    and its health responder."""
    args = ["--wsrep-new-cluster"]
    if position is not None:
        set_safe_to_bootstrap(node)
        args.append(f"--wsrep-start-position={position}")
    set_start_args(node, args)
    actions = [start(node, MARIADB, site.steps, "start --wsrep-new-cluster")]
    with site.steps.timed(node.name, MARIADB, "bootstrap: Primary, Synced"):
        wait_synced(node)
    set_start_args(node, [])
    if position is not None:
        actions.append(f"{node.name}: bootstrapped Galera at {position}")
    return actions + init_sql_once(site, node) + start_health(node, site)


# A state transfer and a schema change never run at once: MariaDB 10.11's mariabackup SST,
# taken while a DDL statement runs, can miss a table the snapshot's position says it holds;
# the joiner then meets a later DDL on that table and leaves the cluster Inconsistent (seen
# in the lab: `Table 'glance.images' doesn't exist` on `CREATE INDEX`, while glance-manage
# made its schema). Schema changes share the gate; each joiner holds it alone.
SCHEMA_GATE = "galera-schema"


def schema_change(site: Site) -> contextlib.AbstractContextManager[None]:
    """Around DDL (a service's db sync): waits while a member joins."""
    return site.gate(SCHEMA_GATE).shared()


def join(node: NodeExec, site: Site, position: Position | str | None) -> list[str]:
    """Start one joiner (from its recovered position: IST when the donor still has it) and
    wait until it is Synced, starting it again when it could not reach the group; never
    while a schema change runs (`SCHEMA_GATE`)."""
    with site.gate(SCHEMA_GATE).exclusive():
        return _join(node, site, position)


def _join(node: NodeExec, site: Site, position: Position | str | None) -> list[str]:
    set_start_args(node, [f"--wsrep-start-position={position}"] if position else [])
    action = start(node, MARIADB, site.steps, "start (joins: SST/IST)")
    for attempt in range(1, JOIN_ATTEMPTS + 1):
        try:
            with site.steps.timed(node.name, MARIADB, "joined: Synced"):
                wait_synced(node)
            break
        except LabError as exc:
            # A joiner that could not reach the group (gcs connect timeout on a loaded
            # host) exits; start it again, as a service manager's on-failure restart would.
            if attempt == JOIN_ATTEMPTS or running(node, MARIADB):
                raise
            site.steps.note(f"{node.name}: Galera join failed, retrying: {exc}")
            start(node, MARIADB, site.steps, "start again (joins)")
    set_start_args(node, [])
    return [action, *start_health(node, site)]


def start_health(node: NodeExec, site: Site) -> list[str]:
    states = node.services.states()
    if HEALTH not in states or states[HEALTH] is ServiceState.RUNNING:
        return []
    return [start(node, HEALTH, site.steps)]


def init_sql_once(site: Site, node: NodeExec) -> list[str]:
    """The rendered accounts and databases, run on the Primary `node` once per version of the
    file (it is idempotent): a service added to the cloud gets its database and account on
    the next `up` (the file is rendered for one member; any member may run it)."""
    sql = next((text for name in site.plan.nodes_running(PROCESS)
                if (text := site.rendered(name, INIT_SQL)) is not None), None)
    if sql is None:
        return []
    digest = hashlib.sha256(sql.encode()).hexdigest()
    marker = site.state / INIT_DONE
    if marker.exists() and digest in marker.read_text():
        return []
    with site.steps.timed(node.name, MARIADB, "init SQL (accounts, databases)"):
        node.run(["mariadb", f"--defaults-file={MY_CNF}", "-uroot"], input=sql, timeout=60)
    site.mark_done(INIT_DONE, f"the init SQL ran (sha256 {digest})")
    return [f"{node.name}: ran the Galera init SQL"]


# --- bring-up ------------------------------------------------------------------------------


@dataclass
class GaleraBringUp:
    """One bring-up of the Galera cluster: the positions found for stopped members are what
    the joiners start from."""

    choose: Chooser
    positions: dict[str, Position | None] = field(default_factory=dict)

    def primary(self, site: Site) -> list[str]:
        members = site.members(PROCESS)
        if not members:
            site.reached(PRIMARY)
            return []
        stopped = [m for m in members if not running(m, MARIADB)]
        fresh = len(stopped) == len(members) and not any(has_datadir(m) for m in members)
        evidence: dict[str, GaleraNode] = {}

        def prepare(node: NodeExec) -> list[str]:
            if not has_datadir(node):
                self.positions[node.name] = None
                evidence[node.name] = GaleraNode(node.name, has_data=False)
                if fresh and node is not members[0]:
                    return []      # a new joiner's datadir is replaced by its state transfer
                install_datadir(node, site)
                return [f"{node.name}: installed the Galera datadir"]
            found = stopped_evidence(node, site)
            evidence[node.name] = found
            self.positions[node.name] = found.position()
            return []

        actions = parallel(prepare, stopped)
        if len(stopped) == len(members):
            first = members[0].name if fresh else self.choose(
                [evidence[m.name] for m in members])
            actions += bootstrap(site.nodes[first], site, self.positions.get(first))
        else:
            live = [m for m in members if m not in stopped]
            primary = wait_until(lambda: next(
                (m for m in live if member_status(m).primary), None), START_TIMEOUT_S, 0.5)
            if primary is None:
                raise LabError("Galera: members run but none is in a Primary component "
                               "(`hastack recover` decides which one bootstraps)")
            actions += init_sql_once(site, primary)
        site.reached(PRIMARY)
        return actions

    def others(self, site: Site) -> list[str]:
        """Joiners one at a time: a donor serves one state transfer at a time anyway, and two
        joiners entering the group together on a loaded 2-core host hit gcs timeouts."""
        members = site.members(PROCESS)
        actions: list[str] = []
        for node in members:
            if not running(node, MARIADB):
                actions += join(node, site, self.positions.get(node.name))
        return actions + parallel(lambda m: start_health(m, site), members)


def choose_most_advanced(nodes: Sequence[GaleraNode]) -> str:
    """The member `up` bootstraps when none runs: `hastack recover`'s decision (positions
    decide; refusals stop `up` with their reasons)."""
    decision = decide_galera(nodes)
    if decision.action is Action.REFUSE or decision.chosen is None:
        raise LabError("; ".join([*(f"Galera recovery refused: {r}"
                                    for r in decision.refusals),
                                  "fix the cause, or `hastack recover --force` to accept "
                                  "the loss"]))
    return decision.chosen


def act_on_decision(site: Site, decision: Decision) -> list[str]:
    """`hastack recover`'s Galera half: bootstrap the chosen member at its position, then
    the decision's joiners, one at a time."""
    if decision.action is Action.NEW_CLUSTER:
        bring = GaleraBringUp(choose_most_advanced)
        return bring.primary(site) + bring.others(site)
    actions: list[str] = []
    if decision.action is Action.BOOTSTRAP:
        assert decision.chosen is not None and decision.position is not None
        actions += bootstrap(site.nodes[decision.chosen], site, decision.position)
    site.reached(PRIMARY)
    for name in decision.joiners:
        node = site.nodes[name]
        if not running(node, MARIADB):
            actions += join(node, site, decision.start_positions.get(name))
    return actions + parallel(lambda m: start_health(m, site) if has_datadir(m) and running(
        m, MARIADB) else [], site.members(PROCESS))


def statuses(site: Site) -> Mapping[str, MemberStatus]:
    """Every reachable member's status, asked at once."""
    members = site.members(PROCESS)
    with ThreadPoolExecutor(max_workers=len(members) or 1) as pool:
        return dict(zip([m.name for m in members], pool.map(member_status, members),
                        strict=True))
