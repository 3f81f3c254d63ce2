"""One deployment as the systems see it: the plan, the reachable nodes, the rendered files.

Stage 5 (deploy). A deployer (the lab, or real hosts) builds a `Site` and hands it to
`orchestrate` and `health`; the modules of `deploy.systems` read everything they need from
it and act only through its `NodeExec`s. Nothing here knows what a node is.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hastack.deploy.base import NodeExec, ServiceState
from hastack.deploy.progress import Steps
from hastack.model.cloud import Cloud
from hastack.plan import Plan
from hastack.render import RenderedFile


class Gate:
    """Work that may run together (`shared`) but never beside one exclusive holder, which
    waits for the shared holders to finish and, while it waits, lets no new one in."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._exclusive and not self._waiting)
            self._shared += 1
        try:
            yield
        finally:
            with self._changed:
                self._shared -= 1
                self._changed.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._changed:
            self._waiting += 1
            self._changed.wait_for(lambda: not self._exclusive and not self._shared)
            self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._changed:
                self._exclusive = False
                self._changed.notify_all()


@dataclass
class Site:
    cloud: Cloud
    plan: Plan
    nodes: Mapping[str, NodeExec]              # the cloud's nodes that can be reached now
    files: dict[str, list[RenderedFile]]       # node -> its rendered files
    state: Path                                # this machine's state dir of the deployment
    steps: Steps
    client: NodeExec | None = None             # where clients of the cloud run
    # Services a node should run (its planned, runnable services), for status.
    planned_services: Callable[[str], Sequence[str]] = lambda node: ()
    # (process, nodes, reason) for planned processes this deployer does not run.
    skipped: Sequence[tuple[str, str, str]] = ()
    unreachable: Sequence[str] = ()            # planned nodes that are down
    # The CIB this deployer loads, from the rendered one (the lab adapts resource classes).
    pacemaker_cib: Callable[[str], str] = lambda cib: cib
    # Set by the orchestrator while it runs: what components wait for (see `reached`).
    milestones: dict[str, threading.Event] = field(default_factory=dict)
    gates: dict[str, Gate] = field(default_factory=dict)
    _gates_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- members -------------------------------------------------------------------------
    def members(self, process: str) -> list[NodeExec]:
        """The reachable nodes the plan runs `process` on, in the plan's order."""
        return [self.nodes[n] for n in self.plan.nodes_running(process) if n in self.nodes]

    def rendered(self, node: str, path: str) -> str | None:
        for f in self.files.get(node, []):
            if f.path == path.lstrip("/"):
                return f.content if isinstance(f.content, str) else f.content.decode()
        return None

    # --- things done once per deployment (the init SQL, Keystone's bootstrap) --------------
    def done(self, marker: str) -> bool:
        return (self.state / marker).exists()

    def mark_done(self, marker: str, what: str) -> None:
        (self.state / marker).write_text(f"{what}; delete to run it again\n")

    def gate(self, name: str) -> Gate:
        """The deployment's gate `name`, shared by every component of this run."""
        with self._gates_lock:
            return self.gates.setdefault(name, Gate())

    # --- milestones a component reaches before it is done (`orchestrate`) ------------------
    def reached(self, milestone: str) -> None:
        event = self.milestones.get(milestone)
        if event is not None:
            event.set()


def running(node: NodeExec, service: str) -> bool:
    return node.services.states().get(service) is ServiceState.RUNNING


def start(node: NodeExec, service: str, steps: Steps, action: str = "start") -> str:
    with steps.timed(node.name, service, action):
        node.services.start(service)
    return f"{node.name}: started {service}"
