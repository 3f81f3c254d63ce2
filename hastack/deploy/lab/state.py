"""Where a lab keeps its state, and the record of the processes it started.

The record (`lab.json`) is written as soon as each node's first process is known, with the
process start time from /proc/<pid>/stat: `down` kills a recorded pid only while its start time
still matches, so a pid recycled by an unrelated process is never touched.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hastack.errors import LabError

DEFAULT_ROOT = Path("/var/lib/hastack")
RECORD = "lab.json"


def state_dir(cloud_name: str) -> Path:
    """/var/lib/hastack/<cloud>, or $HASTACK_STATE_DIR/<cloud> when that is set."""
    root = os.environ.get("HASTACK_STATE_DIR")
    return (Path(root) if root else DEFAULT_ROOT) / cloud_name


def proc_start_time(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot; None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[19])


@dataclass
class ProcessRef:
    pid: int
    start_time: int

    def alive(self) -> bool:
        """True while this exact process (same pid, same start time) exists."""
        return proc_start_time(self.pid) == self.start_time

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        start = proc_start_time(pid)
        if start is None:
            raise LabError(f"process {pid} vanished right after it started")
        return cls(pid, start)


@dataclass
class NodeRecord:
    name: str
    launcher: ProcessRef            # the `unshare` process on the host
    init: ProcessRef | None = None  # PID 1 of the node's namespaces (supervisord)


@dataclass
class LabRecord:
    cloud: str
    cloud_file: str
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    power: ProcessRef | None = None   # the power controller of a Pacemaker lab (powerd)

    def processes(self) -> list[ProcessRef]:
        refs: list[ProcessRef] = [self.power] if self.power else []
        for node in self.nodes.values():
            refs.append(node.launcher)
            if node.init is not None:
                refs.append(node.init)
        return refs


class RecordStore:
    """The lab record on disk, rewritten atomically on every change (threads share it)."""

    def __init__(self, directory: Path):
        self.path = directory / RECORD
        self._lock = threading.Lock()

    def load(self) -> LabRecord | None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LabError(f"{self.path}: unreadable lab record: {exc}") from None
        nodes = {}
        for name, node in data.get("nodes", {}).items():
            init = node.get("init")
            nodes[name] = NodeRecord(name, ProcessRef(**node["launcher"]),
                                     ProcessRef(**init) if init else None)
        power = data.get("power")
        return LabRecord(data["cloud"], data.get("cloud_file", ""), nodes,
                         ProcessRef(**power) if power else None)

    def save(self, record: LabRecord) -> None:
        with self._lock:
            self._write(record)

    def update(self, fallback: LabRecord, change: Callable[[LabRecord], None]) -> LabRecord:
        """Read, change and write the record under a lock on the file, and return it.

        Several processes write the record (hastack, the lab's power controller booting a
        fenced node): each change starts from what is on disk, so none overwrites a node
        another process recorded meanwhile."""
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path.with_suffix(".lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                record = self.load() or fallback
                change(record)
                self._write(record)
                return record

    def _write(self, record: LabRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp.{os.getpid()}")
        tmp.write_text(json.dumps(asdict(record), indent=2) + "\n")
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.path.with_suffix(".lock").unlink(missing_ok=True)
