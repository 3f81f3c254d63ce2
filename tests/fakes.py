"""Fakes of external systems for unit tests (no @patch stacks): they record what was asked."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


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

    def power_events(self, since: float) -> list[tuple[float, str, str]]:
        return []

    def break_fencing(self, name: str) -> None:
        from hastack.errors import LabError

        raise LabError("no fence devices in the fake lab")

    def repair_fencing(self, name: str) -> None:
        pass

    def galera_writer(self) -> str | None:
        return "ctl1"

    def tooz_groups(self) -> dict[str, list[str] | None]:
        return {}

    def members(self, process: str) -> list[str]:
        return list(self.programs)

    def secrets(self) -> dict[str, str]:
        return {}

    def client_argv(self, argv: Sequence[str]) -> list[str]:
        return list(argv)

    def leftovers(self) -> list[str]:
        return []


@dataclass
class FakePlaybook:
    """An ansible-playbook that prints what a real one prints (default callback) for a given
    set of hosts: per host, changed tasks, or a failure line (unreachable, sudo, a task)."""

    changed: dict[str, int] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    failed: dict[str, tuple[str, str]] = field(default_factory=dict)   # host -> (task, msg)
    calls: list[list[str]] = field(default_factory=list)
    envs: list[dict[str, str]] = field(default_factory=list)

    def __call__(self, argv: Sequence[str], env: Mapping[str, str],
                 on_line: Callable[[str], None]) -> Any:
        import json as _json

        from hastack.deploy.ansible.driver import RunResult

        self.calls.append(list(argv))
        self.envs.append(dict(env))
        lines = ["", "PLAY [Prepare every host] ***",
                 "", "TASK [common : Check that this host can be reached and sudo works] ****"]
        hosts = sorted({*self.changed, *self.unreachable, *self.failed})
        for host in hosts:
            if host in self.unreachable:
                body = {"changed": False, "msg": self.unreachable[host], "unreachable": True}
                lines.append(f"fatal: [{host}]: UNREACHABLE! => {_json.dumps(body)}")
            elif host in self.failed and self.failed[host][0].startswith("common : Check"):
                body = {"changed": False, "msg": self.failed[host][1]}
                lines.append(f"fatal: [{host}]: FAILED! => {_json.dumps(body)}")
            else:
                lines.append(f"ok: [{host}]")
        for host, (task, message) in self.failed.items():
            if task.startswith("common : Check"):
                continue
            lines += ["", f"TASK [{task}] " + "*" * 20,
                      f"fatal: [{host}]: FAILED! => "
                      f"{_json.dumps({'changed': False, 'msg': message})}"]
        lines += ["", "PLAY RECAP " + "*" * 60]
        for host in hosts:
            unreachable = int(host in self.unreachable)
            failed = int(host in self.failed)
            lines.append(f"{host:<26} : ok={5 + self.changed.get(host, 0)}    "
                         f"changed={self.changed.get(host, 0)}    unreachable={unreachable}    "
                         f"failed={failed}    skipped=3    rescued=0    ignored=0   ")
        for line in lines:
            on_line(line)
        code = 4 if self.unreachable else 2 if self.failed else 0
        return RunResult(code, "\n".join(lines) + "\n")


@dataclass
class FakeSsh:
    """The OpenSSH client as `SshExec` uses it, without a network: the remote command runs
    here through `sh -c` (as sshd would run it), so its quoting is really tested. `systemctl`
    answers from `units` (unit -> (ActiveState, SubState)) and records start/stop."""

    reachable: bool = True
    sudo_needs_password: bool = False
    units: dict[str, tuple[str, str]] = field(default_factory=dict)
    calls: list[list[str]] = field(default_factory=list)
    systemctl: list[list[str]] = field(default_factory=list)

    def __call__(self, argv: Sequence[str], data: bytes | None, timeout: float) -> Any:
        import shlex
        import subprocess

        self.calls.append(list(argv))
        done = subprocess.CompletedProcess
        if not self.reachable:
            return done(list(argv), 255, b"",
                        b"ssh: connect to host 198.18.0.11 port 22: Connection refused\r\n")
        remote = shlex.split(argv[-1])
        if remote[:3] == ["sudo", "-n", "--"]:
            if self.sudo_needs_password:
                return done(list(argv), 1, b"", b"sudo: a password is required\n")
            remote = remote[3:]
        if remote[0] == "systemctl":
            return done(list(argv), 0, self._systemctl(remote).encode(), b"")
        result = subprocess.run(["sh", "-c", argv[-1].replace("sudo -n -- ", "", 1)],
                                input=data, capture_output=True, timeout=timeout, check=False)
        return done(list(argv), result.returncode, result.stdout, result.stderr)

    def _systemctl(self, argv: list[str]) -> str:
        self.systemctl.append(argv)
        verb = argv[1]
        if verb == "show" and "--property=MainPID" in argv:
            active = self.units.get(argv[-1].removesuffix(".service"), ("inactive", "dead"))
            return "4242\n" if active[0] == "active" else "0\n"
        if verb == "show":
            blocks = []
            for unit in argv[3:]:
                active, sub = self.units.get(unit.removesuffix(".service"), ("inactive", "dead"))
                blocks.append(f"Id={unit}\nActiveState={active}\nSubState={sub}\n")
            return "\n".join(blocks)
        if verb in ("start", "stop"):
            unit = argv[2].removesuffix(".service")
            self.units[unit] = ("active", "running") if verb == "start" else ("inactive", "dead")
        if verb == "is-system-running":
            return "degraded\n"
        return ""
