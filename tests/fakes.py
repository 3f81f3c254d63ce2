"""Fakes of external systems for unit tests (no @patch stacks): they record what was asked."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class FakeRunner:
    """Stands in for `hastack.deploy.lab.run.run`: records argv and input, answers with
    canned stdout by the first matching argv fragment."""

    answers: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[list[str], str | None]] = field(default_factory=list)

    def __call__(self, argv: Sequence[str], *, check: bool = True, timeout: float = 60,
                 input: str | None = None) -> subprocess.CompletedProcess[str]:
        self.calls.append((list(argv), input))
        joined = " ".join(argv)
        out = next((text for key, text in self.answers.items() if key in joined), "")
        return subprocess.CompletedProcess(list(argv), 0, out, "")


@dataclass
class FakeLab:
    """A `LabControl` for fault actions: a dict of nodes and their programs; records verbs."""

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

    def partition(self, name: str, peers: Sequence[str] | None = None) -> None:
        self.calls.append(("partition", name))

    def heal_partition(self, name: str) -> None:
        self.calls.append(("heal", name))

    def unplug(self, name: str) -> None:
        self.calls.append(("unplug", name))

    def plug(self, name: str) -> None:
        self.calls.append(("plug", name))

    def kill_program(self, node: str, program: str) -> int:
        self.calls.append(("kill", node, program))
        self.programs[node][program] = "STARTING"
        return 4242

    def stop_program(self, node: str, program: str) -> None:
        self.calls.append(("stop", node, program))
        self.programs[node][program] = "STOPPED"

    def start_program(self, node: str, program: str) -> list[str]:
        self.calls.append(("start", node, program))
        self.programs[node][program] = "RUNNING"
        return []

    def program_states(self, node: str) -> dict[str, str]:
        return dict(self.programs[node])

    def node_names(self) -> list[str]:
        return list(self.programs)
