"""Chaos scenarios: the built-in table, and the runner that plays one on the running lab.

A scenario is data (a row of `SCENARIOS`): the fault verb and its default target, how long
the fault is held, and what the architecture promises (`Expectations`). The runner is the
same for every row:

    healthy? ─▶ workloads start (client node) ─▶ warm-up baseline ─▶ fault ─▶ hold ─▶ heal
      ─▶ wait for `status` healthy (bounded: recovery time) ─▶ tail ─▶ workloads stop
      ─▶ checks (lost writes, lost messages) ─▶ timeline merged ─▶ summary + plot

Workloads are real clients on the deployment's client (in the lab: the client node's
network namespace, the venv's python), each writing its own JSONL into the results
directory; faults and samplers (VIP holders ten times a second, the Galera writer) write
`faults.jsonl` from this process. Every run is bounded in time, and heals and cleans up in
`finally`, also on Ctrl-C. The run returns what it measured (`ScenarioRun`); the report stage
writes it down.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hastack.chaos import ChaosError
from hastack.chaos.actions import Control, make_action
from hastack.chaos.faults import run_fault
from hastack.chaos.measure import TOOZ_GROUPS, Expectations, RunSummary, summarise
from hastack.chaos.targets import LabView, resolve
from hastack.chaos.timeline import (
    Event,
    PeriodicSampler,
    TimelineWriter,
    Transition,
    read_timeline,
)
from hastack.chaos.workloads import WORKLOADS, new_run_id, workload_argv
from hastack.errors import HastackError
from hastack.render.budget import make_budget
from hastack.render.openstack import CACHE_RETRY_ATTEMPTS, client_timings
from hastack.render.redis import TOOZ_MEMBERSHIP_TIMEOUT_S
from hastack.render.tls import ca_certificate

log = logging.getLogger(__name__)

SQL_USER = "keystone"            # a service account the lab creates, allowed from the client
SQL_DATABASE = "keystone"
AMQP_SECRET = "rabbitmq_openstack"
AMQP_USER = "openstack"
RATES = {"sql": 10.0, "amqp": 10.0, "api": 10.0, "cache": 10.0}
WORKLOAD_BOUND_S = 900           # workloads are stopped by us; this only bounds a lost run
CHECK_TIMEOUT_S = 60
START_TIMEOUT_S = 45             # every workload has recorded a success
# A silent tooz member expires 5-10 s after its last heartbeat (tooz beats every half of
# render.redis.TOOZ_MEMBERSHIP_TIMEOUT_S): sampled twice a second, its departure is known to
# half a second.
TOOZ_SAMPLE_INTERVAL_S = 0.5


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    verb: str                    # crash | kill | stop | freeze | partition | isolate | restart
    target: str                  # default target (node name or role, see chaos.targets)
    expectations: Expectations
    process: str | None = None   # for kill / stop: a catalog process
    hold_s: float = 5.0
    rolling: bool = False        # the verb is applied to every node of `target`'s kind in turn
    warmup_s: float = 5.0
    tail_s: float = 3.0
    recovery_timeout_s: float = 150.0
    demo: bool = False           # part of `hastack demo`'s suite
    notes: tuple[str, ...] = field(default=())


def _expect(**downtime: float) -> Expectations:
    return Expectations(max_downtime_s=downtime)


POWER_LOSS_NOTES = (
    "recovery_s of a power loss = lab.heal_s (the repair path restarts every service from "
    "disk) + lab.recovery_s (until status is healthy); target <= 120 s",
    "the decision and evidence are kept in <state>/recovery/<time>/decision.json",
    "the lab's nodes share one kernel: SIGKILL drops no page-cache write, so this proves the "
    "recovery protocol, not fsync durability",
)

# Limits: the targets where a scenario measures one (API ≤ 1 s on a VIP-holder
# crash, SQL ≤ 2 s on a writer crash, queue ≤ 5 s on a RabbitMQ node crash, nothing
# acknowledged lost); elsewhere what the timing budget implies for collateral workloads.
SCENARIOS: tuple[Scenario, ...] = (
    Scenario("vip-holder-crash", "power cut of the node holding the internal VIP",
             "crash", "vip-holder", _expect(api=1.0, sql=6.0, amqp=10.0, cache=3.0),
             hold_s=5.0, demo=True),
    Scenario("galera-writer-crash", "SIGKILL of mariadbd on the Galera writer",
             "kill", "galera-writer", _expect(sql=2.0, api=1.0, amqp=1.0, cache=1.0),
             process="mariadb-galera", hold_s=3.0, demo=True),
    Scenario("rabbit-node-crash", "power cut of a RabbitMQ node (not the VIP holder)",
             "crash", "rabbit-any", _expect(amqp=5.0, sql=5.0, api=1.0, cache=3.0),
             hold_s=5.0, demo=True),
    Scenario("memcached-node-loss", "memcached stopped on one node, kept down 10 s",
             "stop", "memcached-any", _expect(cache=3.0, sql=0.5, api=0.5, amqp=0.5),
             process="memcached", hold_s=10.0, demo=True),
    Scenario("controller-freeze", "every process of the VIP holder SIGSTOPped for 8 s",
             "freeze", "vip-holder",
             replace(_expect(api=3.0, sql=12.0, amqp=15.0, cache=3.0), max_dual_vip_s=1.0),
             hold_s=8.0, demo=True),
    Scenario("controller-partition", "a controller cut from its peers both ways for 10 s",
             "partition", "controller-any", _expect(),
             hold_s=10.0, demo=True,
             notes=("keepalived has no quorum: a partitioned node claims the VIP too "
                    "(linter rule vrrp-split-brain); the run reports for how long",)),
    Scenario("vip-holder-oneway-partition", "the VIP holder's packets to its peers are lost "
             "for 10 s; it still hears them", "partition-oneway", "vip-holder", _expect(),
             hold_s=10.0,
             notes=("an asymmetric partition: the peers stop hearing the holder's VRRP "
                    "adverts and elect a master while the holder, hearing a lower priority, "
                    "keeps the VIP; the run reports for how long both hold it",)),
    Scenario("memcached-blackhole", "memcached on one node black-holed for 10 s: packets "
             "dropped, not refused", "blackhole", "memcached-any",
             _expect(cache=3.0, sql=0.5, api=1.0, amqp=0.5), process="memcached",
             hold_s=10.0),
    Scenario("vip-holder-isolate", "the VIP holder's link goes down for 5 s",
             "isolate", "vip-holder", _expect(api=1.0, sql=6.0, amqp=10.0, cache=3.0),
             hold_s=5.0),
    Scenario("haproxy-kill", "SIGKILL of HAProxy on the VIP holder (track_script moves the VIP)",
             "kill", "vip-holder", _expect(api=2.0, sql=4.0, amqp=1.0, cache=1.0),
             process="haproxy", hold_s=3.0),
    Scenario("fence-failure", "the VIP holder's fence device stops answering, then the "
             "holder loses power; the device is repaired after 15 s",
             "crash-unfenceable", "vip-holder",
             replace(_expect(), vips_wait_for_fencing=True, max_dual_vip_s=0.0),
             hold_s=15.0, recovery_timeout_s=240.0,
             notes=("Pacemaker architecture only (fencing: lab): a node that cannot be "
                    "fenced might still hold its VIP, so the cluster leaves the VIPs "
                    "stopped — safety before availability; the API downtime is the fence "
                    "device's outage plus the next fencing attempt, not a failover time",)),
    Scenario("ceilometer-central-loss", "power cut of a controller running a Ceilometer "
             "central agent (not the VIP holder, not the writer), kept off 20 s",
             "crash", "controller-any",
             replace(_expect(amqp=5.0, sql=5.0, api=1.0, cache=3.0),
                     max_takeover_s=TOOZ_MEMBERSHIP_TIMEOUT_S + 2 * TOOZ_SAMPLE_INTERVAL_S),
             hold_s=20.0,
             notes=("the lost agent leaves the central agents' tooz group when its heartbeat "
                    f"expires (membership timeout {TOOZ_MEMBERSHIP_TIMEOUT_S} s); the "
                    "survivors poll its share of the resources from their next poll on",
                    "when the cut node was the Redis master, Sentinel's failover comes first: "
                    "until then neither the agents nor the sampler reach the group")),
    Scenario("rolling-restart", "each controller restarted gracefully in turn",
             "restart", "controller-any", _expect(api=0.0, sql=0.0, amqp=0.0, cache=0.0),
             hold_s=0.0, rolling=True, recovery_timeout_s=240.0),
    Scenario("power-loss", "whole-cluster power cut, then recovery from disk (Galera "
             "bootstrap from the most advanced member, RabbitMQ in order)",
             "power-loss", "controller-any",
             _expect(sql=125.0, api=125.0, amqp=125.0, cache=125.0),
             hold_s=1.0, recovery_timeout_s=240.0, notes=POWER_LOSS_NOTES),
    Scenario("stale-node-trap", "one Galera member stops cleanly, writes go on, then the "
             "whole cluster loses power: recovery must not bootstrap the stale member",
             "stale-node-trap", "controller-any",
             _expect(sql=130.0, api=130.0, amqp=130.0, cache=130.0),
             hold_s=1.0, recovery_timeout_s=240.0, notes=POWER_LOSS_NOTES),
)
BY_NAME = {s.name: s for s in SCENARIOS}


def scenario(name: str) -> Scenario:
    found = BY_NAME.get(name)
    if found is None:
        raise ChaosError(f"unknown scenario {name!r} (known: {', '.join(BY_NAME)}); "
                         "see `hastack chaos --list`")
    return found


def demo_suite() -> list[Scenario]:
    return [s for s in SCENARIOS if s.demo]


# --- workloads as processes in the client node ----------------------------------------------


@dataclass
class WorkloadProcs:
    """The four clients, each its own process in the client node's network namespace."""

    results: Path
    argv_of: Callable[[str, dict[str, Any], bool], list[str]]
    options: dict[str, dict[str, Any]]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        return self.results / f"{name}.jsonl"

    def start(self) -> None:
        for name, opts in self.options.items():
            log_file = open(self.results / f"{name}.log", "ab")  # noqa: SIM115 - child's
            try:
                self.procs[name] = subprocess.Popen(
                    self.argv_of(name, {**opts, "out": self.path(name),
                                        "duration": WORKLOAD_BOUND_S,
                                        "rate": RATES[name]}, False),
                    stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
            finally:
                log_file.close()

    def dead(self) -> dict[str, int]:
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def stop(self, timeout: float = 15) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def check(self, name: str) -> None:
        opts = self.options.get(name)
        if opts is None:
            return
        argv = self.argv_of(name, {**opts, "out": self.path(name),
                                   "check_timeout": CHECK_TIMEOUT_S}, True)
        with open(self.results / f"{name}.log", "ab") as log_file:
            try:
                subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log_file,
                               stderr=log_file, timeout=CHECK_TIMEOUT_S + 30, check=False)
            except subprocess.TimeoutExpired:
                log.warning("%s check did not finish", name)


def workload_options(control: Control, run_id: str) -> dict[str, dict[str, Any]]:
    """Targets and credentials of each workload, from the deployment's plan and secrets."""
    secrets = control.secrets()
    plan = control.plan
    vips = dict(control.cloud.vips.items())
    vip = str(vips.get("internal", next(iter(vips.values()))))
    address = {n.name: str(n.ip) for n in control.cloud.nodes}
    password_file = control.state / "chaos-sql.password"
    password_file.touch(mode=0o600)
    password_file.write_text(str(secrets.get(f"db_{SQL_USER}", "")) + "\n")
    options: dict[str, dict[str, Any]] = {}
    if plan.runs("mariadb-galera"):
        options["sql"] = {"target": f"{vip}:{plan.port('mariadb-galera', 'mysql')}",
                          "user": SQL_USER,
                          "password_file": password_file, "database": SQL_DATABASE,
                          "run_id": run_id}
    if plan.runs("rabbitmq"):
        secret = secrets.get(AMQP_SECRET, "")
        amqp = plan.port("rabbitmq", "amqp")
        options["amqp"] = {"url": [f"amqp://{AMQP_USER}:{secret}@{address[n]}:{amqp}/%2F"
                                   for n in plan.nodes_running("rabbitmq")],
                           "run_id": run_id}
    api = next((f for f in plan.frontends if f.process == "keystone"), None)
    if api is not None:
        service = "standin-api" if control.standin_needed() else "keystone"
        options["api"] = {"target": f"http://{vip}:{api.port}/v3", "service": service,
                          "run_id": run_id}
        ca = ca_certificate(plan, secrets)
        if ca is not None and "public" in api.vips:
            # As a user would: https on the public VIP, trusting the cloud's CA.
            ca_file = control.state / "chaos-ca.pem"
            ca_file.write_text(ca)
            options["api"].update(target=f"https://{vips['public']}:{api.port}/v3",
                                  cacert=ca_file)
    if plan.runs("memcached"):
        port = plan.port("memcached")
        # The services' own client settings ([cache] as rendered), not the workload's.
        timings = client_timings(make_budget(control.cloud))
        options["cache"] = {"server": [f"{address[n]}:{port}"
                                       for n in plan.nodes_running("memcached")],
                            "socket_timeout": timings.cache_socket_timeout_s,
                            "dead_timeout": timings.memcache_dead_retry_s,
                            "retry_attempts": CACHE_RETRY_ATTEMPTS,
                            "run_id": run_id}
    return {name: options[name] for name in WORKLOADS if name in options}


# --- the runner --------------------------------------------------------------------------------


def rolling_pause_s(control: Control) -> float:
    """How long after a node's services stopped the next node may go: until memcached
    clients use the first node's server again (`ClientTimings.memcache_back_in_ring_s`).
    Restarting the next node sooner takes a second server out of the ring while the first is
    still shunned; then a single slow answer from the last one leaves clients with "all
    servers down" (seen in the lab with 16 s restarts and dead_retry 40 s). Load balancers
    and RabbitMQ readmit a node at once and need no pause."""
    if not control.plan.runs("memcached"):
        return 0.0
    return client_timings(make_budget(control.cloud)).memcache_back_in_ring_s


def _pace_rolling(control: Control, stopped_at: float, say: Say) -> None:
    wait = stopped_at + rolling_pause_s(control) - time.monotonic()
    if wait > 0:
        say(f"  waiting {wait:.0f} s before the next node: memcached clients take a "
            "restarted server back within 2 x dead_retry")
        time.sleep(wait)


def lab_view(control: Control) -> LabView:
    processes = ("rabbitmq", "memcached", "haproxy", "mariadb-galera")
    return LabView(nodes=tuple(control.node_names()),
                   vip_holders=control.vip_holders(), galera_writer=control.galera_writer(),
                   members={p: control.members(p) for p in processes})


def rolling_targets(view: LabView, spec: str) -> list[str]:
    """Every node of the kind `spec` names, the VIP holder last (one VIP move, not three)."""
    process = {"controller-any": "haproxy", "rabbit-any": "rabbitmq",
               "memcached-any": "memcached"}.get(spec)
    nodes = list(view.members.get(process, ())) if process else [resolve(spec, view)]
    holder = view.vip_holder()
    return sorted(nodes, key=lambda n: n == holder)


def results_dir_for(base: Path | None, name: str) -> Path:
    # Absolute: workloads and checks are child processes that must find it whatever cwd.
    if base is not None:
        return base.resolve()
    return (Path("results") / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}").resolve()


Say = Callable[[str], None]


@dataclass
class ScenarioRun:
    """What one scenario run measured: its summary (with the run's facts and the verdict),
    and the timeline it was derived from."""

    results: Path
    data: dict[str, Any]
    summary: RunSummary
    events: list[Event]


def run_scenario(sc: Scenario, control: Control, results: Path, target: str | None = None,
                 say: Say = print, hold_s: float | None = None) -> ScenarioRun:
    """Play one scenario on the running deployment."""
    results.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    report = control.wait_healthy(60)
    if not report.healthy:
        raise ChaosError(f"the lab is not healthy, not starting {sc.name}: "
                         + "; ".join(map(str, report.anomalies)))
    control.ensure_standin_api()
    view = lab_view(control)
    spec = target or sc.target
    nodes = rolling_targets(view, spec) if sc.rolling else [resolve(spec, view)]
    hold = sc.hold_s if hold_s is None else hold_s
    say(f"{sc.name}: {sc.description}; target {spec} = {', '.join(nodes)}; hold {hold:g} s")

    run_id = new_run_id()

    def argv_of(name: str, opts: dict[str, Any], check: bool) -> list[str]:
        return control.client_argv(workload_argv(name, opts, python=sys.executable,
                                                 check=check))

    procs = WorkloadProcs(results, argv_of, workload_options(control, run_id))
    writer = TimelineWriter(results / "faults.jsonl")
    run_wall_start = writer.now()
    writer.note("scenario", f"{sc.name} target {spec}={','.join(nodes)} hold {hold:g}")
    samplers = [PeriodicSampler(writer, "vip_holders", control.vip_holders, 0.1),
                PeriodicSampler(writer, "galera_writer", _writer_probe(control, writer), 0.5)]
    if sc.expectations.max_takeover_s is not None and control.tooz_groups():
        # Who the agents partitioning their work count as alive (Ceilometer's central agents):
        # sampled only where it is judged, each sample costs two processes in a node.
        samplers.append(PeriodicSampler(writer, TOOZ_GROUPS, control.tooz_groups,
                                        TOOZ_SAMPLE_INTERVAL_S))
    lab_result: dict[str, Any] = {"healthy_after": False, "recovery_s": None, "heal_s": None}
    try:
        for s in samplers:
            s.start()
        procs.start()
        _warm_up(procs, sc.warmup_s)
        for node in nodes:
            action = make_action(sc.verb, control, node, sc.process)
            fault_start = time.monotonic()
            say(f"  {action.verb} {action.target} ...")
            try:
                run_fault(writer, action, hold)
            except HastackError as exc:
                # A fault or heal that fails is the run's verdict, not a lost measurement:
                # the workloads, the checks and the summary still run.
                lab_result["fault_error"] = f"{action.verb}/{action.reverse} {action.target}: {exc}"
                writer.note("faults", lab_result["fault_error"])
                say(f"  {action.verb}/{action.reverse} {action.target} FAILED: {exc}")
            healed = time.monotonic()
            lab_result["heal_s"] = round(healed - fault_start - hold, 2)
            report = control.wait_healthy(sc.recovery_timeout_s)
            lab_result["recovery_s"] = round(time.monotonic() - healed, 2)
            lab_result["mttr_s"] = round(time.monotonic() - fault_start, 2)
            lab_result["healthy_after"] = report.healthy
            lab_result["anomalies"] = [str(a) for a in report.anomalies]
            say(f"  {action.reverse} done in {lab_result['heal_s']:.1f} s; "
                f"lab {'healthy' if report.healthy else 'NOT healthy'} "
                f"{lab_result['recovery_s']:.1f} s later")
            if not report.healthy or "fault_error" in lab_result:
                break
            if sc.rolling and node != nodes[-1]:
                _pace_rolling(control, fault_start, say)
        _await_clients(procs, client_return_s(control), say)
        time.sleep(sc.tail_s)
    finally:
        procs.stop()
        for s in samplers:
            s.stop()
        leftovers = _clean_up(control, nodes)
    # Fencing is the cluster's own act, not the scenario's: it goes in the timeline at the
    # moment the fence device acted.
    for t, action, node in control.power_events(run_wall_start):
        writer.write(Transition(t, f"power {node}", "off" if action == "on" else "on",
                                action, source="fence"))
    for name in ("sql", "amqp"):
        procs.check(name)
    writer.close()
    paths = [results / "faults.jsonl", *(procs.path(n) for n in procs.options)]
    events = read_timeline([p for p in paths if p.exists()])
    summary = summarise(events, sc.name, sc.expectations, str(results))
    data = summary.as_dict()
    lab_result["leftovers"] = leftovers
    data.update(target=spec, nodes=nodes, hold_s=hold, lab=lab_result,
                workload_exit=procs.dead(), notes=list(sc.notes),
                elapsed_s=round(time.monotonic() - started, 1))
    reasons = list(data["reasons"])
    if "fault_error" in lab_result:
        reasons.append(f"fault failed: {lab_result['fault_error']}")
    if not lab_result["healthy_after"]:
        reasons.append(f"lab not healthy {sc.recovery_timeout_s:g} s after the heal: "
                       + "; ".join(lab_result.get("anomalies", [])))
    if leftovers:
        reasons.append("left behind: " + "; ".join(leftovers))
    data["reasons"], data["verdict"] = reasons, "fail" if reasons else "pass"
    return ScenarioRun(results, data, summary, events)


def client_return_s(control: Control) -> float:
    """How long after a heal a healthy lab may still be shunned by a client: memcached
    clients retry a server they marked dead only every dead_retry, so after a long outage
    (a power loss outlasts dead_retry) they come back up to 2 x dead_retry later. Other
    clients reconnect at once."""
    return rolling_pause_s(control)


def _failing(procs: WorkloadProcs) -> set[str]:
    """Workloads whose latest request failed."""
    from hastack.chaos.timeline import Request, read_events

    failing = set()
    for name in procs.options:
        path = procs.path(name)
        with contextlib.suppress(ChaosError):
            requests = [e for e in read_events(path) if isinstance(e, Request)] \
                if path.exists() else []
            if requests and not max(requests, key=lambda r: r.end).ok:
                failing.add(name)
    return failing


def _await_clients(procs: WorkloadProcs, bound_s: float, say: Say) -> None:
    """After the heal, keep the workloads running until none is still failing (bounded):
    a client that takes its time to come back is measured, not cut off; one that never does
    is reported as such by the summary."""
    deadline = time.monotonic() + bound_s
    failing = _failing(procs)
    if failing:
        say(f"  waiting up to {bound_s:.0f} s for {', '.join(sorted(failing))} to succeed again")
    while failing and time.monotonic() < deadline and not procs.dead():
        time.sleep(0.5)
        failing = _failing(procs)


def _warm_up(procs: WorkloadProcs, warmup_s: float) -> None:
    """Baseline: every workload has recorded a success, then `warmup_s` more."""
    from hastack.chaos.timeline import Request, read_events

    deadline = time.monotonic() + START_TIMEOUT_S
    waiting = set(procs.options)
    while waiting:
        dead = procs.dead()
        if dead:
            name = next(iter(dead))
            raise ChaosError(f"workload {name} exited ({dead[name]}): see "
                             f"{procs.results / (name + '.log')}")
        for name in list(waiting):
            path = procs.path(name)
            with contextlib.suppress(ChaosError):
                if path.exists() and any(isinstance(e, Request) and e.ok
                                         for e in read_events(path)):
                    waiting.discard(name)
        if time.monotonic() > deadline:
            raise ChaosError(f"workloads without a successful request after "
                             f"{START_TIMEOUT_S} s: {', '.join(sorted(waiting))}")
        time.sleep(0.3)
    time.sleep(warmup_s)


def _writer_probe(control: Control, writer: TimelineWriter) -> Callable[[], str | None]:
    last: list[str | None] = []

    def probe() -> str | None:
        current = control.galera_writer()
        if last and current != last[0]:
            writer.transition("writer", last[0], current, source="haproxy")
        last[:] = [current]
        return current
    return probe


def _clean_up(control: Control, nodes: Sequence[str]) -> list[str]:
    """Whatever happened, nothing stays partitioned, frozen, unplugged or stopped: heal every
    verb on every target (each is a no-op when not applied), repair, then look."""
    for node in nodes:
        for undo in (lambda n=node: control.repair_fencing(n),
                     lambda n=node: control.heal_partition(n),
                     lambda n=node: control.thaw_node(n),
                     lambda n=node: control.plug(n)):
            try:
                undo()
            except Exception as exc:  # keep healing the rest
                log.warning("clean-up of %s: %s", node, exc)
    try:
        found = control.leftovers()
        if found:
            control.restore()
            found = control.leftovers()
    except Exception as exc:
        return [f"clean-up check failed: {exc}"]
    return found


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends a chaos run like Ctrl-C: through the `finally` that heals."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def is_root() -> bool:
    return os.geteuid() == 0
