"""`hastack recover` on the lab: read every node's evidence, decide (pure), explain, then act.

Stage 5 (deploy), the lab's side of `hastack.deploy.recovery`. It powers the nodes on
(namespaces only: no daemon starts by itself), reads each Galera member's evidence through
`systems.galera` (`grastate.dat`, `gvwstate.dat`, `--wsrep-recover` where the seqno is -1)
and RabbitMQ's through `systems.rabbitmq`, records the evidence and the decision (JSON, plus a
copy of every grastate.dat) under `<state>/recovery/<time>/`, and only then runs the
orchestrator with Galera and RabbitMQ acting on those decisions. A cold `hastack up` decides
its Galera bootstrap with `recording_chooser`, the same decision.

The lab's nodes share one kernel: SIGKILL of a node drops no page-cache write, so a lab power
cut proves the recovery protocol, not fsync durability.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hastack.deploy import orchestrate
from hastack.deploy import recovery as decide
from hastack.deploy.base import wait_until
from hastack.deploy.health import Health, Kind, collect
from hastack.deploy.lab.lab import Lab
from hastack.deploy.lab.nodes import offline_disk
from hastack.deploy.lab.preflight import require_root
from hastack.deploy.progress import QuietReporter, Reporter, Steps, StepTime
from hastack.deploy.recovery import Action, Decision, GaleraNode, RabbitPlan
from hastack.deploy.site import Site, running
from hastack.deploy.systems import galera, rabbitmq
from hastack.errors import LabError
from hastack.model.cloud import Cloud

RECOVERY_DIR = "recovery"
HEALTHY_TIMEOUT_S = 90
QUEUES_TIMEOUT_S = 60
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
    status: Health | None = None
    steps: list[StepTime] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


# --- evidence ------------------------------------------------------------------------------


def galera_evidence(lab: Lab, site: Site, without: Sequence[str] = (),
                    dry_run: bool = False) -> tuple[list[GaleraNode], dict[str, str]]:
    """Every planned Galera member's evidence (and the --wsrep-recover logs by node)."""
    logs: dict[str, str] = {}

    def one(name: str) -> GaleraNode:
        if name in without:
            return GaleraNode(name, available=False, has_data=False)
        node = site.nodes.get(name)
        if node is None:
            # The node cannot start: its disk is still read (a disk read elsewhere), but it
            # cannot take part.
            return galera.disk_evidence(name, offline_disk(lab.dirs(name)), available=False)
        if running(node, galera.MARIADB):
            if galera.member_status(node).primary:
                return GaleraNode(name, running_primary=True)
            if dry_run:
                return GaleraNode(name, has_data=True, recover_error=(
                    "mariadbd runs in a non-Primary component; a real run stops it first"))
            with site.steps.timed(name, galera.MARIADB, "stop (non-Primary: writes its seqno)"):
                node.services.stop(galera.MARIADB)
        return galera.stopped_evidence(node, site, logs)

    members = list(site.plan.nodes_running(galera.PROCESS))
    with ThreadPoolExecutor(max_workers=len(members) or 1) as pool:
        return list(pool.map(one, members)), logs


def recording_chooser(lab: Lab, site: Site) -> galera.Chooser:
    """`up`'s choice of the member to bootstrap: `hastack recover`'s decision, recorded and
    explained like one; refusals stop `up` with their reasons."""
    def choose(evidence: Sequence[GaleraNode]) -> str:
        decision = decide.decide_galera(evidence)
        record_dir = record(lab, evidence, decision, None, {})
        for line in decide.explain(decision):
            site.steps.note(line)
        if decision.action is Action.REFUSE or decision.chosen is None:
            raise RecoveryRefused([*(f"Galera recovery refused: {r}" for r in decision.refusals),
                                   f"evidence and decision in {record_dir}",
                                   "fix the cause, or `hastack recover --force` to accept "
                                   "the loss"])
        return decision.chosen
    return choose


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
        if not node.available and not node.has_data:
            continue
        disk = offline_disk(lab.dirs(node.name))
        for path in (galera.GRASTATE, galera.GVWSTATE):
            content = disk.read(path)
            if content is not None:
                (directory / f"{node.name}-{Path(path).name}").write_bytes(content)
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


def _queues_ready(site: Site, nodes: Sequence[str]) -> dict[str, list[dict[str, Any]]] | None:
    """The queues once every replicated queue has a leader (None until then). A queue counts
    as replicated when it lists members (quorum and stream queues; a classic queue lists
    none): a quorum queue still recovering after a full restart may not say its type yet."""
    rows = rabbitmq.list_queues(site, nodes)
    if rows is not None and all(r.get("leader") for r in rows
                                if r.get("members") or r.get("type") == "quorum"):
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
    site = lab.site(steps)
    evidence, logs = galera_evidence(lab, site, without, dry_run)
    galera_plan = decide.decide_galera(evidence, force) if evidence else None
    rabbit_nodes = rabbitmq.evidence(site, without)
    rabbit_plan = decide.decide_rabbitmq(rabbit_nodes) if rabbit_nodes else None
    directory = record(lab, evidence, galera_plan, rabbit_plan, logs)
    explanation = decide.explain(galera_plan, rabbit_plan) if galera_plan else []
    explanation.append(f"evidence and decision recorded in {directory}")
    for line in explanation:
        steps.note(line)
    report = RecoveryReport(cloud.name, dry_run, galera_plan, rabbit_plan, str(directory),
                            explanation, left_out=list(without))
    if galera_plan is not None and galera_plan.action is Action.REFUSE:
        raise RecoveryRefused([*(f"Galera recovery refused: {r}" for r in galera_plan.refusals),
                               f"evidence and decision in {directory}"])
    if dry_run:
        report.steps = steps.done
        return report

    def act_galera(site: Site) -> list[str]:
        actions = galera.act_on_decision(site, galera_plan) if galera_plan else []
        # Anything else planned and stopped joins too, unless it was left out on purpose.
        return actions + ([] if without else galera.GaleraBringUp(
            galera.choose_most_advanced).others(site))

    def act_rabbitmq(site: Site) -> list[str]:
        actions = rabbitmq.act_on_plan(site, rabbit_plan) if rabbit_plan else []
        return actions + ([] if without else rabbitmq.bring_up(site))

    if without:
        steps.note(f"left out {', '.join(without)}: its database and broker start with "
                   "`hastack up` once it is back")
    # The stateful tier first, acting on the decisions; its clients (Keystone, the RPC
    # service) only once all of it is back: they reconnect once, not through its restart.
    decided = {"galera": act_galera, "galera-joiners": lambda site: [],
               "rabbitmq": act_rabbitmq}
    report.actions += orchestrate.bring_up(site, decided, only=orchestrate.STATEFUL)
    report.actions += orchestrate.bring_up(site, {n: (lambda site: []) for n in decided})
    rabbit_members = [n.name for n in rabbit_nodes if n.available]
    with steps.timed("-", "rabbitmq", "every quorum queue has a leader"):
        ready = wait_until(lambda: _queues_ready(site, rabbit_members), QUEUES_TIMEOUT_S, 1)
    report.queues = ready["queues"] if ready else rabbitmq.list_queues(site, rabbit_members) or []
    with steps.timed("-", "status", "all healthy"):
        status = wait_until(lambda: _green(lab, without), HEALTHY_TIMEOUT_S, 0.5)
    report.status = status or collect(lab.site(), lab.details())
    report.healthy = status is not None
    report.recovery_s = steps.elapsed() if report.healthy else None
    report.steps = steps.done
    _append_result(directory, report)
    return report


def _green(lab: Lab, without: Sequence[str]) -> Health | None:
    """The status once healthy, ignoring only what `without` left out on purpose (a left-out
    member's services, and the cluster sizes, checked against the size expected without it)."""
    lab.attach_running()
    status = collect(lab.site(), lab.details())
    if not without:
        return status if status.healthy else None
    left_out_services = {galera.MARIADB, galera.HEALTH, rabbitmq.SERVICE}
    kept = [a for a in status.anomalies
            if a.kind not in (Kind.GALERA_SIZE, Kind.RABBIT_MEMBERS)
            and not (a.node in without and (a.kind is Kind.GALERA_MEMBER or (
                a.kind is Kind.SERVICE and a.service in left_out_services)))]
    for process, view_size in ((galera.PROCESS, status.galera.size if status.galera else 0),
                               (rabbitmq.PROCESS, len(status.rabbitmq.running)
                                if status.rabbitmq else 0)):
        planned = lab.plan.nodes_running(process)
        if planned and view_size != len([n for n in planned if n not in without]):
            return None
    return status if not kept else None


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
