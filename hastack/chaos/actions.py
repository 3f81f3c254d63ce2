"""Fault actions: each a verb on one target with its reverse verb, over a typed `Control`.

Stage 6 (chaos). The verbs themselves (signals, nftables, links, the service manager) are
the deployer's (`hastack.deploy.lab.power.LabControl` in the lab); this module pairs them
into reversible actions and names them, so `run_fault` can record start/end in the timeline
and always revert. A table (`VERBS`) maps each verb of a scenario row to its action class: a
new fault is a new row. Service verbs name catalog processes (`mariadb-galera`); the control
says which service is that process on a node.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from hastack.chaos import ChaosError

if TYPE_CHECKING:
    from hastack.deploy.base import ServiceState
    from hastack.deploy.health import Health
    from hastack.model.cloud import Cloud
    from hastack.plan import Plan


class Control(Protocol):
    """Everything chaos needs of a running deployment (`LabControl`; a fake in tests)."""

    cloud: Cloud

    @property
    def plan(self) -> Plan: ...
    @property
    def state(self) -> Path: ...
    def secrets(self) -> dict[str, str]: ...
    def client_argv(self, argv: Sequence[str]) -> list[str]: ...
    # observations
    def node_names(self) -> list[str]: ...
    def members(self, process: str) -> list[str]: ...
    def vip_holders(self) -> dict[str, list[str]]: ...
    def galera_writer(self) -> str | None: ...
    # tooz group -> its live members (None: unreadable); {} when no agent keeps a group
    def tooz_groups(self) -> dict[str, list[str] | None]: ...
    def status(self) -> Health: ...
    def wait_healthy(self, timeout: float) -> Health: ...
    def service_states(self, node: str) -> dict[str, ServiceState]: ...
    def service_of(self, process: str) -> str: ...
    def leftovers(self) -> list[str]: ...
    # what fence devices did: (wall time, "off"|"on", node), since a wall time
    def power_events(self, since: float) -> list[tuple[float, str, str]]: ...
    def break_fencing(self, name: str) -> None: ...
    def repair_fencing(self, name: str) -> None: ...
    # node verbs
    def crash_node(self, name: str) -> None: ...
    def restore(self) -> list[str]: ...
    def freeze_node(self, name: str) -> list[int]: ...
    def thaw_node(self, name: str, pids: Sequence[int] = ()) -> None: ...
    def partition(self, name: str, peers: Sequence[str] | None = None,
                  direction: str = "both") -> None: ...
    def heal_partition(self, name: str) -> None: ...
    def blackhole(self, name: str, process: str) -> None: ...
    def unplug(self, name: str) -> None: ...
    def plug(self, name: str) -> None: ...
    # service verbs
    def kill_service(self, node: str, service: str) -> int: ...
    def stop_service(self, node: str, service: str) -> None: ...
    def start_service(self, node: str, service: str) -> list[str]: ...
    def graceful_stop(self, node: str) -> list[str]: ...

    def graceful_start(self, node: str) -> list[str]: ...
    # the API stand-in, while the real Keystone cannot run
    def standin_needed(self) -> bool: ...
    def ensure_standin_api(self) -> list[str]: ...


@dataclass
class NodeAction:
    """A fault on one node; each subclass names its verb and reverse verb."""

    control: Control
    node: str
    verb: ClassVar[str]
    reverse: ClassVar[str]

    @property
    def target(self) -> str:
        return self.node


@dataclass
class ServiceAction(NodeAction):
    """A fault on one catalog process of a node (the control says which service it is)."""

    process: str

    @property
    def target(self) -> str:
        return f"{self.node}:{self.process}"

    @property
    def service(self) -> str:
        return self.control.service_of(self.process)


@dataclass
class NodeCrash(NodeAction):
    """Power cut of a node; heal = the lab's repair path brings it back (`up` for it)."""

    verb = "crash"
    reverse = "restore"

    def inject(self) -> None:
        self.control.crash_node(self.node)

    def revert(self) -> None:
        self.control.restore()


@dataclass
class UnfenceableCrash(NodeAction):
    """The node's fence device fails, then the node loses power. The cluster cannot prove
    the node is off, so it must not start the node's resources elsewhere (safety before
    availability). Heal: the device answers again, the cluster's next fencing attempt
    succeeds (waited for), then the node is powered on."""

    verb = "crash-unfenceable"
    reverse = "repair-fencing"
    fence_timeout_s: ClassVar[float] = 120.0

    def inject(self) -> None:
        self.control.break_fencing(self.node)
        self.control.crash_node(self.node)

    def revert(self) -> None:
        since = time.time()
        self.control.repair_fencing(self.node)
        deadline = time.monotonic() + self.fence_timeout_s
        while not any(n == self.node and a == "off"
                      for _, a, n in self.control.power_events(since)):
            if time.monotonic() > deadline:
                raise ChaosError(f"{self.node} not fenced {self.fence_timeout_s:g} s after "
                                 "its fence device answered again")
            time.sleep(0.5)
        self.control.restore()


@dataclass
class NodeFreeze(NodeAction):
    """SIGSTOP of every process of the node (a hung kernel, a long GC, a VM paused)."""

    verb = "freeze"
    reverse = "thaw"
    pids: list[int] = field(default_factory=list)

    def inject(self) -> None:
        self.pids = self.control.freeze_node(self.node)

    def revert(self) -> None:
        self.control.thaw_node(self.node, self.pids)


@dataclass
class NodePartition(NodeAction):
    """The node and its peers stop hearing each other, both ways; clients still reach it."""

    verb = "partition"
    reverse = "heal"

    def inject(self) -> None:
        self.control.partition(self.node)

    def revert(self) -> None:
        self.control.heal_partition(self.node)


@dataclass
class NodeOneWayPartition(NodeAction):
    """Only the node's packets to its peers are lost: they stop hearing it, it still hears
    them (a half-broken link, a one-way firewall rule)."""

    verb = "partition-oneway"
    reverse = "heal"

    def inject(self) -> None:
        self.control.partition(self.node, direction="out")

    def revert(self) -> None:
        self.control.heal_partition(self.node)


@dataclass
class ServiceBlackhole(ServiceAction):
    """Every packet to a process's port on the node is dropped, not refused: its clients
    see a server that hangs, and must time out by themselves."""

    verb = "blackhole"
    reverse = "heal"

    def inject(self) -> None:
        self.control.blackhole(self.node, self.process)

    def revert(self) -> None:
        self.control.heal_partition(self.node)


@dataclass
class NodeUnplug(NodeAction):
    """Isolate the node from everything: its link goes down."""

    verb = "unplug"
    reverse = "plug"

    def inject(self) -> None:
        self.control.unplug(self.node)

    def revert(self) -> None:
        self.control.plug(self.node)


@dataclass
class ServiceKill(ServiceAction):
    """SIGKILL of a process's main pid; its manager restarts it (or the repair path)."""

    verb = "kill"
    reverse = "start"

    def inject(self) -> None:
        self.control.kill_service(self.node, self.service)

    def revert(self) -> None:
        self.control.start_service(self.node, self.service)


@dataclass
class ServiceStop(ServiceAction):
    """A clean stop of a process's service: it stays down until the heal starts it."""

    verb = "stop"
    reverse = "start"

    def inject(self) -> None:
        self.control.stop_service(self.node, self.service)

    def revert(self) -> None:
        self.control.start_service(self.node, self.service)


@dataclass
class NodeRestart(NodeAction):
    """A planned restart: the node taken out of service (load balancers drained, RabbitMQ in
    maintenance mode), every program stopped gracefully (VIP first), then started again by
    the repair path (Galera rejoins with IST) and put back into service."""

    verb = "restart"
    reverse = "start"
    stopped: list[str] = field(default_factory=list)

    def inject(self) -> None:
        self.stopped = self.control.graceful_stop(self.node)

    def revert(self) -> None:
        self.control.graceful_start(self.node)


@dataclass
class PowerLoss(NodeAction):
    """Whole-cluster power cut: every cloud node's first process SIGKILLed, one right after
    the other (milliseconds apart); heal = the lab's repair path, which recovers Galera from
    the most advanced member's disk and restarts RabbitMQ in order (`hastack recover`'s
    decision, `hastack.deploy.recovery`)."""

    verb = "power-loss"
    reverse = "recover"

    @property
    def target(self) -> str:
        return "every node"

    def inject(self) -> None:
        for name in self.control.node_names():
            self.control.crash_node(name)

    def revert(self) -> None:
        self.control.restore()


@dataclass
class StaleNodeTrap(NodeAction):
    """The target's mariadb stops cleanly (its grastate.dat gets a seqno that soon goes
    stale), writes go on for `stale_s`, then every node loses power. The recovery must
    bootstrap an advanced member, never the stale one; no acknowledged write may be lost."""

    verb = "stale-node-trap"
    reverse = "recover"
    stale_s: float = 5.0

    @property
    def target(self) -> str:
        return f"{self.node}:mariadb-galera, then every node"

    def inject(self) -> None:
        self.control.stop_service(self.node, self.control.service_of("mariadb-galera"))
        time.sleep(self.stale_s)
        for name in self.control.node_names():
            self.control.crash_node(name)

    def revert(self) -> None:
        self.control.restore()


VERBS: dict[str, type[Any]] = {
    "crash": NodeCrash, "freeze": NodeFreeze, "partition": NodePartition,
    "partition-oneway": NodeOneWayPartition, "blackhole": ServiceBlackhole,
    "isolate": NodeUnplug, "kill": ServiceKill, "stop": ServiceStop, "restart": NodeRestart,
    "power-loss": PowerLoss, "stale-node-trap": StaleNodeTrap,
    "crash-unfenceable": UnfenceableCrash,
}
SERVICE_VERBS = ("kill", "stop", "blackhole")


def make_action(verb: str, control: Control, node: str, process: str | None = None) -> Any:
    """The FaultAction of a scenario row's verb on a resolved node."""
    cls = VERBS.get(verb)
    if cls is None:
        raise ChaosError(f"unknown fault verb {verb!r} (known: {', '.join(VERBS)})")
    if verb in SERVICE_VERBS:
        if not process:
            raise ChaosError(f"fault verb {verb!r} needs a process")
        return cls(control, node, process)
    return cls(control, node)
