"""The lab power controller's files in the lab's state directory: its socket, its log of
power actions (the fencing evidence), and the fence devices broken on purpose.

Stage 5 (deploy), lab only; plain files, shared by the controller (`powerd`), the lab that
starts it and the chaos verbs that read and break it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SOCKET_NAME = "power.sock"
EVENTS_NAME = "power.jsonl"
# Nodes whose fence device is broken (chaos's fence-failure): their BMC does not answer.
BROKEN_NAME = "fence-broken.json"


class DeviceDown(Exception):
    """The node's fence device does not answer (a dead BMC)."""


def broken_devices(state: Path) -> set[str]:
    try:
        return set(json.loads((state / BROKEN_NAME).read_text()))
    except (FileNotFoundError, ValueError):
        return set()


def set_broken(state: Path, node: str, broken: bool) -> None:
    """Break or repair a node's fence device (atomically: the controller reads the file on
    every request)."""
    nodes = broken_devices(state)
    nodes = nodes | {node} if broken else nodes - {node}
    tmp = state / (BROKEN_NAME + ".tmp")
    tmp.write_text(json.dumps(sorted(nodes)))
    os.replace(tmp, state / BROKEN_NAME)


def read_events(state: Path) -> list[tuple[float, str, str]]:
    """(wall time, action, node) of every power action the controller took, oldest first."""
    try:
        lines = (state / EVENTS_NAME).read_text().splitlines()
    except FileNotFoundError:
        return []
    events = []
    for line in lines:
        try:
            event = json.loads(line)
            events.append((float(event["t"]), str(event["action"]), str(event["plug"])))
        except (ValueError, KeyError, TypeError):
            continue      # a line cut short by a crash of the controller
    return events
