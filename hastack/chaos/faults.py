"""Where fault injection plugs in: a fault is a verb on a target with its reverse verb.

As in os-faults, faults come in reversible pairs (kill/start, freeze/unfreeze,
unplug/plug). The lab-specific actions (signals to a node's first process, `ip link set
down` on its veth, ...) live with the lab; this module only defines their shape and runs one
against the timeline, so every fault leaves a start and an end event whatever happens.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from hastack.chaos.timeline import TimelineWriter

log = logging.getLogger(__name__)


class FaultAction(Protocol):
    """One reversible fault on one target."""

    @property
    def verb(self) -> str:
        """kill | freeze | unplug | ..."""
        ...
    @property
    def reverse(self) -> str:
        """start | thaw | plug | ..."""
        ...
    @property
    def target(self) -> str:
        """A node, a process on a node, a link."""
        ...

    def inject(self) -> None: ...

    def revert(self) -> None: ...


def run_fault(writer: TimelineWriter, action: FaultAction, hold_s: float,
              stop: threading.Event | None = None) -> None:
    """Inject, hold for `hold_s` (or until `stop`), revert — always revert, also when the
    injection raised halfway or the run is being stopped, so a run never leaves a node
    frozen or unplugged behind it."""
    stop = stop or threading.Event()
    with writer.fault_window(action.verb, action.target, action.reverse):
        try:
            action.inject()
            stop.wait(hold_s)
        finally:
            try:
                action.revert()
            except Exception as exc:   # report it, but keep the original error if any
                log.error("%s %s: %s failed: %s", action.verb, action.target, action.reverse,
                          exc)
                writer.note("faults", f"{action.reverse} {action.target} failed: "
                                      f"{type(exc).__name__}: {exc}")
                raise
