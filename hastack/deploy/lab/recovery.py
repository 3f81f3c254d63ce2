"""`hastack recover` on the lab: read every node's evidence, decide (pure), explain, then act.

Stage 5 (deploy), the side-effect half of `hastack.deploy.recovery`. It powers the nodes on
(namespaces only: no daemon starts by itself), reads `grastate.dat` / `gvwstate.dat` from each
node's data dir, runs `mariadbd --wsrep-recover` inside a node where the seqno is -1, reads
RabbitMQ's `nodes_running_at_shutdown`, records the evidence and the decision (JSON, plus a
snapshot of every grastate.dat) under `<state>/recovery/<time>/`, and only then starts Galera
(bootstrap the chosen member, the others join one at a time), RabbitMQ (in the planned order,
`force_boot` when the last to stop is gone), load balancing and the caches, and waits for the
lab to be healthy. A cold `hastack up` uses `most_advanced()` for its Galera bootstrap.

The lab's nodes share one kernel: SIGKILL of a node drops no page-cache write, so a lab power
cut proves the recovery protocol, not fsync durability.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hastack.deploy import recovery as decide
from hastack.deploy.lab import components
from hastack.deploy.lab.components import (
    _datadir_installed,
    _init_sql_once,
    _running,
    _set_safe_to_bootstrap,
    _set_start_args,
    _start,
    _start_health,
    _wait_rabbit,
    _wait_synced,
    rabbit_nodename,
    wsrep_status,
)
from hastack.deploy.lab.lab import Lab, LabNode, wait_until
from hastack.deploy.lab.nodes import NodeDirs, node_path
from hastack.deploy.lab.preflight import require_root
from hastack.deploy.lab.report import QuietReporter, Reporter, Steps, StepTime
from hastack.deploy.lab.run import nsenter, run
from hastack.deploy.lab.status import collect as collect_status
from hastack.deploy.recovery import (
    Action,
    Decision,
    GaleraNode,
    Position,
    RabbitNode,
    RabbitPlan,
    decide_galera,
    decide_rabbitmq,
    parse_grastate,
    parse_gvwstate,
    parse_running_at_shutdown,
    parse_wsrep_recover,
)
from hastack.errors import LabError
from hastack.model.cloud import Cloud

RECOVER_LOG = "/tmp/wsrep-recover.log"
RECOVERY_DIR = "recovery"
HEALTHY_TIMEOUT_S = 90
SHARED_KERNEL_NOTE = ("the lab's nodes share one kernel: a SIGKILL power cut drops no "
                      "page-cache write, so this proves the recovery protocol, not fsync "
                      "durability")


class RecoveryRefused(LabError):
    """Recovery would risk data: the decision's refusals, one per line."""

    def __init__(self, lines: list[str]):
        super().__init__("; ".join(lines))
        self._lines = lines

    def lines(self) -> list[str]:
        return self._lines


@dataclass
class RecoveryReport:
    cloud: str
    dry_run: bool
    galera: Decision | None
    rabbitmq: RabbitPlan | None
    record_dir: str
    explanation: list[str]
    actions: list[str] = field(default_factory=list)
    healthy: bool = False
    recovery_s: float | None = None       # from the start of `recover` to all green
    queues: list[dict[str, Any]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    steps: list[StepTime] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


# --- evidence ------------------------------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError):
        return None


def _disk_evidence(name: str, dirs: NodeDirs, available: bool) -> decide.GaleraNode:
    mysql = dirs.data("mysql")
    grastate = _read(mysql / "grastate.dat")
    gvwstate = _read(mysql / "gvwstate.dat")
    return GaleraNode(name, available=available, has_data=(mysql / "mysql").is_dir(),
                      grastate=parse_grastate(grastate) if grastate is not None else None,
                      gvwstate=parse_gvwstate(gvwstate) if gvwstate is not None else None)


def wsrep_recover(node: LabNode, steps: Steps) -> str:
    """The log of `mariadbd --wsrep-recover` (InnoDB recovery, then the last committed
    position); the node's mariadbd must not run."""
    path = node_path(node.pid, RECOVER_LOG)
    path.unlink(missing_ok=True)
    with steps.timed(node.name, "mariadb", "--wsrep-recover"):
        run(nsenter(node.pid, ["mariadbd", "--defaults-file=/etc/mysql/my.cnf", "--user=mysql",
                               "--wsrep-recover", f"--log-error={RECOVER_LOG}"]),
            timeout=180, check=False)
    return _read(path) or ""


def galera_evidence(lab: Lab, steps: Steps, without: Sequence[str] = (),
                    dry_run: bool = False) -> tuple[list[GaleraNode], dict[str, str]]:
    """Every planned Galera member's evidence (and the --wsrep-recover logs by node)."""
    logs: dict[str, str] = {}

    def one(name: str) -> GaleraNode:
        if name in without:
            return GaleraNode(name, available=False, has_data=False)
        node = lab.nodes.get(name)
        if node is None:
            # The node cannot start: its disk is still read (a disk read elsewhere), but it
            # cannot take part.
            return _disk_evidence(name, lab._dirs(name), available=False)
        if _running(node, "mariadb"):
            status = wsrep_status(node)
            if status.get("wsrep_cluster_status") == "Primary":
                return GaleraNode(name, running_primary=True)
            if dry_run:
                return GaleraNode(name, has_data=True, recover_error=(
                    "mariadbd runs in a non-Primary component; a real run stops it first"))
            with steps.timed(name, "mariadb", "stop (non-Primary: writes its seqno)"):
                node.supervisor.stop("mariadb")
        evidence = _disk_evidence(name, node.dirs, available=True)
        grastate = evidence.grastate
        if evidence.has_data and (grastate is None or grastate.seqno < 0):
            log = wsrep_recover(node, steps)
            logs[name] = log
            recovered = parse_wsrep_recover(log)
            error = "" if recovered else _log_errors(log)
            return GaleraNode(name, has_data=True, grastate=grastate,
                              gvwstate=evidence.gvwstate, recovered=recovered,
                              recover_error=error)
        return evidence

    members = list(lab.plan.nodes_running("mariadb-galera"))
    with ThreadPoolExecutor(max_workers=len(members) or 1) as pool:
        return list(pool.map(one, members)), logs


def _log_errors(log: str) -> str:
    lines = [line.split("] ", 1)[-1] for line in log.splitlines() if "[ERROR]" in line]
    return "; ".join(lines[-2:]) or ("--wsrep-recover wrote no log" if not log.strip()
                                     else "--wsrep-recover found no position")


def rabbit_evidence(lab: Lab, without: Sequence[str] = ()) -> list[RabbitNode]:
    nodes = []
    for name in lab.plan.nodes_running("rabbitmq"):
        nodename = rabbit_nodename(lab, name)
        mnesia = lab._dirs(name).data("rabbitmq") / "mnesia" / nodename
        node = lab.nodes.get(name)
        if name in without or node is None:
            nodes.append(RabbitNode(name, nodename, available=False))
            continue
        text = _read(mnesia / "nodes_running_at_shutdown")
        nodes.append(RabbitNode(
            name, nodename, running=_running(node, "rabbitmq"), has_data=mnesia.is_dir(),
            running_at_shutdown=parse_running_at_shutdown(text) if text else ()))
    return nodes


# --- the decision for `hastack up` -------------------------------------------------------------


def most_advanced(lab: Lab, members: list[LabNode], positions: dict[str, tuple[str, int] | None],
                  steps: Steps) -> LabNode:
    """The Galera member `up` bootstraps when no member runs: the same decision as `recover`
    (positions decide; refusals stop `up` with their reasons)."""
    evidence = []
    for node in members:
        disk = _disk_evidence(node.name, node.dirs, available=True)
        position = positions.get(node.name)
        recovered = Position(*position) if position else None
        evidence.append(GaleraNode(node.name, has_data=disk.has_data, grastate=disk.grastate,
                                   gvwstate=disk.gvwstate, recovered=recovered))
    decision = decide_galera(evidence)
    record_dir = record(lab, evidence, decision, None, {})
    for line in decide.explain(decision):
        steps.note(line)
    if decision.action is Action.REFUSE or decision.chosen is None:
        raise RecoveryRefused([*(f"Galera recovery refused: {r}" for r in decision.refusals),
                               f"evidence and decision in {record_dir}",
                               "fix the cause, or `hastack recover --force` to accept the loss"])
    return lab.nodes[decision.chosen]


# --- the record ------------------------------------------------------------------------------


def record(lab: Lab, evidence: Sequence[GaleraNode], decision: Decision | None,
           rabbit: RabbitPlan | None, logs: dict[str, str]) -> Path:
    """<state>/recovery/<time>/: decision.json, and each member's grastate.dat, gvwstate.dat
    and --wsrep-recover log as they were before anything was started."""
    directory = lab.state / RECOVERY_DIR / time.strftime("%Y%m%d-%H%M%S")
    suffix = 1
    while directory.exists():
        directory = directory.with_name(f"{directory.name.split('.')[0]}.{suffix}")
        suffix += 1
    directory.mkdir(parents=True)
    for node in evidence:
        mysql = lab._dirs(node.name).data("mysql")
        if not node.available and not node.has_data:
            continue
        for name in ("grastate.dat", "gvwstate.dat"):
            if (mysql / name).exists():
                shutil.copy(mysql / name, directory / f"{node.name}-{name}")
        if node.name in logs:
            (directory / f"{node.name}-wsrep-recover.log").write_text(logs[node.name])
    data = {
        "cloud": lab.cloud.name, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "galera": decision.to_json() if decision else None,
        "rabbitmq": rabbit.to_json() if rabbit else None,
        "evidence": [_evidence_json(n) for n in evidence],
        "note": SHARED_KERNEL_NOTE,
    }
    (directory / "decision.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    return directory


def _evidence_json(node: GaleraNode) -> dict[str, Any]:
    return {
        "name": node.name, "available": node.available, "has_data": node.has_data,
        "running_primary": node.running_primary,
        "grastate": vars(node.grastate) if node.grastate else None,
        "gvwstate": ({"my_uuid": node.gvwstate.my_uuid, "view_seq": node.gvwstate.view_seq,
                      "members": list(node.gvwstate.members)} if node.gvwstate else None),
        "recovered": str(node.recovered) if node.recovered else None,
        "recover_error": node.recover_error,
    }


# --- acting ------------------------------------------------------------------------------------


def act_galera(lab: Lab, decision: Decision, steps: Steps) -> list[str]:
    actions: list[str] = []
    if decision.action is Action.NEW_CLUSTER:
        return components._galera(lab, steps)
    if decision.action is Action.BOOTSTRAP:
        assert decision.chosen is not None and decision.position is not None
        first = lab.nodes[decision.chosen]
        _set_safe_to_bootstrap(first)
        _set_start_args(first, ["--wsrep-new-cluster",
                                f"--wsrep-start-position={decision.position}"])
        actions.append(_start(first, "mariadb", steps, "start --wsrep-new-cluster"))
        with steps.timed(first.name, "mariadb", "bootstrap: Primary, Synced"):
            _wait_synced(first)
        _set_start_args(first, [])
        actions += [f"{first.name}: bootstrapped Galera at {decision.position}"]
        actions += _init_sql_once(lab, first, steps) + _start_health(first, steps)
    # Joiners one at a time: one donor, one state transfer at a time (see components).
    for name in decision.joiners:
        node = lab.nodes[name]
        if not _running(node, "mariadb"):
            actions += components.join_member(node, decision.start_positions.get(name), steps)
    for name in lab.plan.nodes_running("mariadb-galera"):
        if name in lab.nodes and _datadir_installed(lab.nodes[name]) \
                and _running(lab.nodes[name], "mariadb"):
            actions += _start_health(lab.nodes[name], steps)
    return actions


def act_rabbitmq(lab: Lab, plan: RabbitPlan, steps: Steps) -> list[str]:
    actions: list[str] = []
    if plan.force_boot:
        node = lab.nodes[plan.force_boot]
        with steps.timed(node.name, "rabbitmq", "force_boot (last to stop is gone)"):
            run(nsenter(node.pid, ["rabbitmqctl", "force_boot"]), timeout=60)
        actions.append(f"{node.name}: rabbitmqctl force_boot")

    def start(name: str) -> list[str]:
        node = lab.nodes[name]
        components._own_cookie(node)
        action = _start(node, "rabbitmq", steps)
        with steps.timed(name, "rabbitmq", "booted (await_startup)"):
            _wait_rabbit(node)
        return [action]

    for group in (plan.first, plan.then):
        todo = [n for n in group if not _running(lab.nodes[n], "rabbitmq")]
        if todo:
            with ThreadPoolExecutor(max_workers=len(todo)) as pool:
                actions += [a for result in pool.map(start, todo) for a in result]
    return actions


def list_queues(lab: Lab, nodes: Sequence[str]) -> list[dict[str, Any]] | None:
    """Every queue with its type, messages and leader, from the first member that answers
    (None when none does)."""
    for name in nodes:
        node = lab.nodes.get(name)
        if node is None or not _running(node, "rabbitmq"):
            continue
        result = run(nsenter(node.pid, ["rabbitmqctl", "list_queues", "--formatter", "json",
                                        "name", "type", "messages", "leader", "members",
                                        "online"]), timeout=60, check=False)
        if result.returncode == 0:
            try:
                rows: list[dict[str, Any]] = json.loads(result.stdout)
            except ValueError:
                continue
            return rows
    return None


def _queues_ready(lab: Lab, nodes: Sequence[str]) -> dict[str, list[dict[str, Any]]] | None:
    """The queues once every quorum queue has a leader (None until then)."""
    rows = list_queues(lab, nodes)
    if rows is not None and all(r.get("leader") for r in rows if r.get("type") == "quorum"):
        return {"queues": rows}
    return None


# --- the command ------------------------------------------------------------------------------


def recover(cloud: Cloud, cloud_file: str = "", reporter: Reporter | None = None, *,
            dry_run: bool = False, force: bool = False,
            without: Sequence[str] = ()) -> RecoveryReport:
    """Inspect every node, decide, explain; unless `dry_run`, restart every service in a safe
    order and wait until the lab is healthy (members in `without` are left out)."""
    require_root()
    steps = Steps(reporter or QuietReporter())
    lab = Lab(cloud, cloud_file)
    unknown = [n for n in without if n not in lab.node_names()]
    if unknown:
        raise LabError(f"--without {', '.join(unknown)}: no such node "
                       f"(nodes: {', '.join(n.name for n in cloud.nodes)})")
    with steps.timed("-", "render", "plan, secrets, rendered tree"):
        lab.render()
    if not lab.record.nodes and not lab.state.joinpath("nodes").is_dir():
        raise LabError(f"lab {cloud.name} has no state in {lab.state}: nothing to recover "
                       "(`hastack up` builds it)")
    # Power the machines on: namespaces, mounts and init only; no daemon starts by itself.
    created = lab.ensure_nodes(steps)
    with steps.timed("-", "files", "rendered files into the nodes"):
        lab.install_files(lab.node_names(), steps, new=created)
    evidence, logs = galera_evidence(lab, steps, without, dry_run)
    galera = decide_galera(evidence, force) if evidence else None
    rabbit_nodes = rabbit_evidence(lab, without)
    rabbit = decide_rabbitmq(rabbit_nodes) if rabbit_nodes else None
    directory = record(lab, evidence, galera, rabbit, logs)
    explanation = decide.explain(galera, rabbit) if galera else []
    explanation.append(f"evidence and decision recorded in {directory}")
    for line in explanation:
        steps.note(line)
    report = RecoveryReport(cloud.name, dry_run, galera, rabbit, str(directory), explanation,
                            left_out=list(without))
    if galera is not None and galera.action is Action.REFUSE:
        raise RecoveryRefused([*(f"Galera recovery refused: {r}" for r in galera.refusals),
                               f"evidence and decision in {directory}"])
    if dry_run:
        report.steps = steps.done
        return report

    chains: list[Callable[[], list[str]]] = [
        lambda: act_galera(lab, galera, steps) if galera else [],
        lambda: act_rabbitmq(lab, rabbit, steps) if rabbit else [],
        lambda: components._load_balancing(lab, steps),
        lambda: components._caches(lab, steps),
    ]
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=len(chains)) as pool:
        for future in [pool.submit(chain) for chain in chains]:
            try:
                report.actions += future.result()
            except LabError as exc:
                errors.append(str(exc))
    if errors:
        raise LabError("; ".join(errors))
    if not without:
        # Everything else `up` runs (OpenStack services...), now that the databases and the
        # broker are back; what already runs is left alone.
        report.actions += components.bring_up(lab, steps)
    else:
        steps.note(f"left out {', '.join(without)}: its database and broker start with "
                   "`hastack up` once it is back")
        report.actions += _services_after_databases(lab, steps)
    rabbit_members = [n.name for n in rabbit_nodes if n.available]
    with steps.timed("-", "rabbitmq", "every quorum queue has a leader"):
        ready = wait_until(lambda: _queues_ready(lab, rabbit_members), 60, 1)
    report.queues = ready["queues"] if ready else list_queues(lab, rabbit_members) or []
    with steps.timed("-", "status", "all healthy"):
        status = wait_until(lambda: _green(lab, without), HEALTHY_TIMEOUT_S, 0.5)
    report.status = status or collect_status(lab)
    report.healthy = status is not None
    report.recovery_s = steps.elapsed() if report.healthy else None
    report.steps = steps.done
    _append_result(directory, report)
    return report


def _services_after_databases(lab: Lab, steps: Steps) -> list[str]:
    """The OpenStack chains of `components.bring_up`, without its Galera and RabbitMQ chains
    (those would start the left-out members): the databases and the broker are back."""
    from hastack.deploy.lab import openstack

    broker: Future[list[str]] = Future()
    broker.set_result([])
    return (openstack.keystone(lab, steps, lambda: True)
            + openstack.rpc_service(lab, steps, broker))


def _green(lab: Lab, without: Sequence[str]) -> dict[str, Any] | None:
    """The status once healthy, ignoring only what `without` left out on purpose."""
    report = collect_status(lab)
    anomalies = [a for a in report["anomalies"] if not _about_left_out(a, without)]
    if without and report["galera"] is not None:
        expected = len(lab.plan.nodes_running("mariadb-galera")) - len(
            [n for n in without if n in lab.plan.nodes_running("mariadb-galera")])
        if report["galera"]["size"] != expected:
            anomalies.append(f"Galera: cluster size {report['galera']['size']}, "
                             f"{expected} expected")
    report["anomalies_ignored"] = [a for a in report["anomalies"] if a not in anomalies]
    return report if not anomalies else None


def _about_left_out(anomaly: str, without: Sequence[str]) -> bool:
    if not without:
        return False
    if anomaly.startswith("Galera: cluster size") or (
            anomaly.startswith("RabbitMQ: ") and "members running" in anomaly):
        return True   # checked against the expected size instead
    return any(anomaly.startswith((f"{n}: mariadb", f"{n}: galera-health", f"{n}: rabbitmq",
                                   f"Galera: {n} ")) for n in without)


def _append_result(directory: Path, report: RecoveryReport) -> None:
    path = directory / "decision.json"
    data = json.loads(path.read_text())
    data["result"] = {"healthy": report.healthy, "recovery_s": report.recovery_s,
                      "actions": report.actions,
                      "steps": [f"{st.started_at + st.seconds:6.1f} {st.node:<6} "
                                f"{st.component:<14} {st.action} ({st.seconds:.1f} s)"
                                for st in report.steps],
                      "queues": [{k: q.get(k) for k in ("name", "type", "messages", "leader")}
                                 for q in report.queues]}
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
