"""The lab's record when several processes write it, and finding a node the record lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hastack.deploy.lab.nodes import LAB_MARKER, marked_processes
from hastack.deploy.lab.state import LabRecord, NodeRecord, ProcessRef, RecordStore


def test_two_writers_of_the_record_never_lose_each_others_nodes(tmp_path: Path) -> None:
    """hastack and the power controller each hold a record read earlier; each change starts
    from the disk, so a node the other recorded meanwhile stays."""
    me = ProcessRef.of(os.getpid())
    ours, theirs = RecordStore(tmp_path), RecordStore(tmp_path)
    stale = LabRecord("lab", "cloud.yaml")
    ours.update(stale, lambda r: r.nodes.__setitem__("ctl1", NodeRecord("ctl1", me, me)))
    theirs.update(stale, lambda r: r.nodes.__setitem__("ctl3", NodeRecord("ctl3", me, me)))
    ours.update(stale, lambda r: setattr(r, "power", me))
    record = RecordStore(tmp_path).load()
    assert record is not None
    assert sorted(record.nodes) == ["ctl1", "ctl3"] and record.power == me


def test_processes_tagged_with_the_lab_are_found_and_no_others(tmp_path: Path) -> None:
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    tagged = subprocess.Popen(sleep, env={**os.environ, LAB_MARKER: str(tmp_path)})
    other = subprocess.Popen(sleep, env={**os.environ, LAB_MARKER: str(tmp_path / "other")})
    try:
        pids = {r.pid for r in marked_processes(tmp_path)}
        assert tagged.pid in pids and other.pid not in pids
    finally:
        for child in (tagged, other):
            child.kill()
            child.wait()
