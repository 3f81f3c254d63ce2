"""Fakes of external systems for unit tests (no @patch stacks): they record what was asked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class FakeControl:
    """A chaos `Control` for fault actions: a dict of nodes and their services; records
    verbs. Service states are strings here; the real ordering of a graceful stop is used."""

    programs: dict[str, dict[str, str]]
    calls: list[tuple[str, ...]] = field(default_factory=list)
    crashed: set[str] = field(default_factory=set)
    frozen: set[str] = field(default_factory=set)

    def crash_node(self, name: str) -> None:
        self.calls.append(("crash", name))
        self.crashed.add(name)

    def restore(self) -> list[str]:
        self.calls.append(("restore",))
        back = sorted(self.crashed)
        self.crashed.clear()
        for states in self.programs.values():
            for program in states:
                states[program] = "RUNNING"
        return [f"recreated node {n}" for n in back]

    def freeze_node(self, name: str) -> list[int]:
        self.calls.append(("freeze", name))
        self.frozen.add(name)
        return [101, 102]

    def thaw_node(self, name: str, pids: Sequence[int] = ()) -> None:
        self.calls.append(("thaw", name, *map(str, pids)))
        self.frozen.discard(name)

    def partition(self, name: str, peers: Sequence[str] | None = None,
                  direction: str = "both") -> None:
        self.calls.append(("partition", name) if direction == "both"
                          else ("partition", name, direction))

    def blackhole(self, name: str, process: str) -> None:
        self.calls.append(("blackhole", name, process))

    def heal_partition(self, name: str) -> None:
        self.calls.append(("heal", name))

    def unplug(self, name: str) -> None:
        self.calls.append(("unplug", name))

    def plug(self, name: str) -> None:
        self.calls.append(("plug", name))

    def kill_service(self, node: str, service: str) -> int:
        self.calls.append(("kill", node, service))
        self.programs[node][service] = "STARTING"
        return 4242

    def stop_service(self, node: str, service: str) -> None:
        self.calls.append(("stop", node, service))
        self.programs[node][service] = "STOPPED"

    def start_service(self, node: str, service: str) -> list[str]:
        self.calls.append(("start", node, service))
        self.programs[node][service] = "RUNNING"
        return []

    def service_states(self, node: str) -> dict[str, str]:
        return dict(self.programs[node])

    def service_of(self, process: str) -> str:
        return {"mariadb-galera": "mariadb"}.get(process, process)

    def graceful_stop(self, node: str) -> list[str]:
        from hastack.deploy.orchestrate import graceful_stop_order

        running = [s for s, state in self.programs[node].items() if state == "RUNNING"]
        order = graceful_stop_order(running)
        for service in order:
            self.stop_service(node, service)
        return order

    def graceful_start(self, node: str) -> list[str]:
        self.calls.append(("graceful_start", node))
        return self.restore()

    def node_names(self) -> list[str]:
        return list(self.programs)


@dataclass
class FakeHealth:
    healthy: bool = True
    anomalies: tuple[str, ...] = ()


class NoWorkloadPlan:
    """A plan that runs nothing a workload could target: the runner starts no client."""

    frontends: tuple[object, ...] = ()

    def runs(self, process: str) -> bool:
        return False

    def nodes_running(self, process: str) -> list[str]:
        return []


@dataclass
class FakeCloud:
    vips: dict[str, str] = field(default_factory=lambda: {"internal": "198.18.0.100"})
    nodes: tuple[object, ...] = ()


@dataclass
class RunnerControl(FakeControl):
    """FakeControl with what `run_scenario` asks of a deployment besides the fault verbs;
    `fail_heal` makes every restore raise, as a lab that cannot repair a node would."""

    state: object = None
    fail_heal: str | None = None
    plan: NoWorkloadPlan = field(default_factory=NoWorkloadPlan)
    cloud: FakeCloud = field(default_factory=FakeCloud)

    def restore(self) -> list[str]:
        if self.fail_heal:
            from hastack.errors import LabError

            self.calls.append(("restore-failed",))
            raise LabError(self.fail_heal)
        return super().restore()

    def wait_healthy(self, timeout: float) -> FakeHealth:
        return FakeHealth()

    def ensure_standin_api(self) -> list[str]:
        return []

    def standin_needed(self) -> bool:
        return False

    def vip_holders(self) -> dict[str, list[str]]:
        return {"internal": ["ctl1"]}

    def galera_writer(self) -> str | None:
        return "ctl1"

    def members(self, process: str) -> list[str]:
        return list(self.programs)

    def secrets(self) -> dict[str, str]:
        return {}

    def client_argv(self, argv: Sequence[str]) -> list[str]:
        return list(argv)

    def leftovers(self) -> list[str]:
        return []
