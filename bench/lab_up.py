"""Bring the lab up from nothing, print every step's time and the total, tear it down.

    sudo .venv/bin/python bench/lab_up.py [--cloud hastack/examples/demo.yaml] [--keep]

Uses a fresh temporary state dir (HASTACK_STATE_DIR) so it measures a cold bring-up.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hastack.deploy import lab
from hastack.deploy.lab.power import namespace_members
from hastack.deploy.lab.state import RecordStore, state_dir
from hastack.deploy.progress import RichReporter
from hastack.errors import HastackError
from hastack.model import load_cloud


def _proc_kib(pid: int, file: str, field: str) -> int:
    """One kB figure of /proc/<pid>/<file> (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _print_memory(cloud_name: str, console: Console) -> None:
    """Resident memory of every process of every node (PID namespace members), per node:
    RSS (shared pages counted in every process) and PSS (counted once)."""
    record = RecordStore(state_dir(cloud_name)).load()
    if record is None:
        return
    table = Table("node", "processes", "RSS (MiB)", "PSS (MiB)")
    rss_total = pss_total = 0
    for name, node in record.nodes.items():
        if node.init is None:
            continue
        members = namespace_members(node.init.pid)
        rss = sum(_proc_kib(pid, "status", "VmRSS") for pid in members)
        # PSS counts each shared page once across the processes sharing it (the Python
        # libraries every OpenStack worker maps), so its sum is the memory used.
        pss = sum(_proc_kib(pid, "smaps_rollup", "Pss") for pid in members)
        rss_total, pss_total = rss_total + rss, pss_total + pss
        table.add_row(name, str(len(members)), f"{rss / 1024:.0f}", f"{pss / 1024:.0f}")
    console.print(table)
    console.print(f"lab total RSS {rss_total / 1024:.0f} MiB, PSS {pss_total / 1024:.0f} MiB "
                  "(target: 8 GiB)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cloud", type=Path, default=lab.DEFAULT_CLOUD)
    parser.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    args = parser.parse_args()
    console = Console(highlight=False)
    cloud = load_cloud(args.cloud)
    root = tempfile.mkdtemp(prefix="hastack-bench-")
    os.environ["HASTACK_STATE_DIR"] = root
    try:
        summary = lab.up(cloud, str(args.cloud), RichReporter(console))
    except HastackError as exc:
        console.print(f"[red]bring-up failed:[/red] {exc}")
        lab.down(cloud.name, purge=True)
        return 2
    table = Table("at (s)", "node", "component", "step", "took (s)")
    for step in sorted(summary.steps, key=lambda s: s.started_at + s.seconds):
        table.add_row(f"{step.started_at + step.seconds:.1f}", step.node, step.component,
                      step.action, f"{step.seconds:.2f}")
    console.print(table)
    console.print(f"total {summary.total_s:.1f} s, healthy: {summary.healthy}")
    _print_memory(cloud.name, console)
    if not args.keep:
        lab.down(cloud.name, purge=True)
        if os.path.isdir(root) and not os.listdir(root):
            os.rmdir(root)
    return 0 if summary.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
