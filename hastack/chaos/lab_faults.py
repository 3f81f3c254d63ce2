"""Fault actions on the lab: each a verb on one target with its reverse verb (`FaultAction`).

The verbs themselves (signals, nftables, links, supervisord) are the lab's
(`hastack.deploy.lab.faults.LabFaults`); this module pairs them into reversible actions and
names them, so `run_fault` can record start/end in the timeline and always revert. A table
(`VERBS`) maps each verb of a scenario row to its action class: a new fault is a new row.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hastack.chaos import ChaosError

# Programs stopped for a graceful restart, in this order: the VIP leaves first (keepalived
# sends priority 0 on stop), then the load balancer, then the services behind it.
GRACEFUL_STOP_ORDER = ("keepalived", "haproxy", "standin-api", "keystone", "memcached",
                       "redis-sentinel", "redis", "rabbitmq", "galera-health", "mariadb")


class LabControl(Protocol):
    """What fault actions need from the lab (`LabFaults` in the lab, a fake in tests)."""

    def crash_node(self, name: str) -> None: ...
    def restore(self) -> list[str]: ...
    def freeze_node(self, name: str) -> list[int]: ...
    def thaw_node(self, name: str, pids: Sequence[int] = ()) -> None: ...
    def partition(self, name: str, peers: Sequence[str] | None = None) -> None: ...
    def heal_partition(self, name: str) -> None: ...
    def unplug(self, name: str) -> None: ...
    def plug(self, name: str) -> None: ...
    def kill_program(self, node: str, program: str) -> int: ...
    def stop_program(self, node: str, program: str) -> None: ...
    def start_program(self, node: str, program: str) -> list[str]: ...
    def program_states(self, node: str) -> dict[str, str]: ...
    def node_names(self) -> list[str]: ...


@dataclass
class NodeCrash:
    """Power cut of a node; heal = the lab's repair path brings it back (`up` for it)."""

    control: LabControl
    node: str
    verb: str = "crash"
    reverse: str = "restore"

    @property
    def target(self) -> str:
        return self.node

    def inject(self) -> None:
        self.control.crash_node(self.node)

    def revert(self) -> None:
        self.control.restore()


@dataclass
class NodeFreeze:
    """SIGSTOP of every process of the node (a hung kernel, a long GC, a VM paused)."""

    control: LabControl
    node: str
    verb: str = "freeze"
    reverse: str = "thaw"
    pids: list[int] = field(default_factory=list)

    @property
    def target(self) -> str:
        return self.node

    def inject(self) -> None:
        self.pids = self.control.freeze_node(self.node)

    def revert(self) -> None:
        self.control.thaw_node(self.node, self.pids)


@dataclass
class NodePartition:
    """The node and its peers stop hearing each other, both ways; clients still reach it."""

    control: LabControl
    node: str
    verb: str = "partition"
    reverse: str = "heal"

    @property
    def target(self) -> str:
        return self.node

    def inject(self) -> None:
        self.control.partition(self.node)

    def revert(self) -> None:
        self.control.heal_partition(self.node)


@dataclass
class NodeUnplug:
    """Isolate the node from everything: its link goes down."""

    control: LabControl
    node: str
    verb: str = "unplug"
    reverse: str = "plug"

    @property
    def target(self) -> str:
        return self.node

    def inject(self) -> None:
        self.control.unplug(self.node)

    def revert(self) -> None:
        self.control.plug(self.node)


@dataclass
class ProgramKill:
    """SIGKILL of a program's pid; supervisord restarts it (or the lab's repair path)."""

    control: LabControl
    node: str
    program: str
    verb: str = "kill"
    reverse: str = "start"

    @property
    def target(self) -> str:
        return f"{self.node}:{self.program}"

    def inject(self) -> None:
        self.control.kill_program(self.node, self.program)

    def revert(self) -> None:
        self.control.start_program(self.node, self.program)


@dataclass
class ProgramStop:
    """supervisorctl stop: the program stays down until the heal starts it."""

    control: LabControl
    node: str
    program: str
    verb: str = "stop"
    reverse: str = "start"

    @property
    def target(self) -> str:
        return f"{self.node}:{self.program}"

    def inject(self) -> None:
        self.control.stop_program(self.node, self.program)

    def revert(self) -> None:
        self.control.start_program(self.node, self.program)


@dataclass
class NodeRestart:
    """A planned restart: every program of the node stopped gracefully (VIP first), then
    the lab's repair path starts them again (Galera rejoins with IST)."""

    control: LabControl
    node: str
    verb: str = "restart"
    reverse: str = "start"
    stopped: list[str] = field(default_factory=list)

    @property
    def target(self) -> str:
        return self.node

    def inject(self) -> None:
        states = self.control.program_states(self.node)
        order = [p for p in GRACEFUL_STOP_ORDER if p in states]
        order += [p for p in states if p not in order]
        for program in order:
            if states[program] == "RUNNING":
                self.control.stop_program(self.node, program)
                self.stopped.append(program)

    def revert(self) -> None:
        self.control.restore()


@dataclass
class PowerLoss:
    """Whole-cluster power cut: every cloud node's first process SIGKILLed, one right after
    the other (milliseconds apart); heal = the lab's repair path, which recovers Galera from
    the most advanced member's disk and restarts RabbitMQ in order (`hastack recover`'s
    decision, `hastack.deploy.recovery`)."""

    control: LabControl
    node: str
    verb: str = "power-loss"
    reverse: str = "recover"

    @property
    def target(self) -> str:
        return "every node"

    def inject(self) -> None:
        for name in self.control.node_names():
            self.control.crash_node(name)

    def revert(self) -> None:
        self.control.restore()


@dataclass
class StaleNodeTrap:
    """The target's mariadb stops cleanly (its grastate.dat gets a seqno that soon goes
    stale), writes go on for `stale_s`, then every node loses power. The recovery must
    bootstrap an advanced member, never the stale one; no acknowledged write may be lost."""

    control: LabControl
    node: str
    verb: str = "stale-node-trap"
    reverse: str = "recover"
    stale_s: float = 5.0

    @property
    def target(self) -> str:
        return f"{self.node}:mariadb, then every node"

    def inject(self) -> None:
        self.control.stop_program(self.node, "mariadb")
        time.sleep(self.stale_s)
        for name in self.control.node_names():
            self.control.crash_node(name)

    def revert(self) -> None:
        self.control.restore()


VERBS: dict[str, type[Any]] = {
    "crash": NodeCrash, "freeze": NodeFreeze, "partition": NodePartition,
    "isolate": NodeUnplug, "kill": ProgramKill, "stop": ProgramStop, "restart": NodeRestart,
    "power-loss": PowerLoss, "stale-node-trap": StaleNodeTrap,
}
PROGRAM_VERBS = ("kill", "stop")


def make_action(verb: str, control: LabControl, node: str, program: str | None = None) -> Any:
    """The FaultAction of a scenario row's verb on a resolved node."""
    cls = VERBS.get(verb)
    if cls is None:
        raise ChaosError(f"unknown fault verb {verb!r} (known: {', '.join(VERBS)})")
    if verb in PROGRAM_VERBS:
        if not program:
            raise ChaosError(f"fault verb {verb!r} needs a program")
        return cls(control, node, program)
    return cls(control, node)
