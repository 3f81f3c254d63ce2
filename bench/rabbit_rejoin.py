"""A crashed RabbitMQ node rejoins its cluster: how long, and how often it does, in N runs.

    sudo .venv/bin/python bench/rabbit_rejoin.py [--runs 10] [--cloud CLOUD] [--limit 30]

Each run powers off a RabbitMQ member that holds neither the VIP nor the Galera writer (the
lab's `crash`), powers it on again through the lab's repair path (`restore`, what `hastack up`
does), and times crash -> the member listed as running by every member's cluster_status.
Prints per-run times, the median and spread, and how many runs rejoined within the limit.
The figure is set by the node's boot (namespaces, files), RabbitMQ's own start and its Mnesia
table sync with the running peers, and the repair path's await_startup retries.

Uses a fresh temporary state dir (HASTACK_STATE_DIR); the lab is torn down at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from hastack.chaos.scenarios import lab_view
from hastack.chaos.targets import resolve
from hastack.deploy import lab
from hastack.deploy.health import collect
from hastack.deploy.lab.power import LabControl
from hastack.errors import HastackError
from hastack.model import load_cloud


def rejoined(control: LabControl, node: str) -> bool:
    status = collect(control.lab.site(), control.lab.details())
    return status.rabbitmq is not None and node in status.rabbitmq.running \
        and not status.rabbitmq.partitions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cloud", type=Path, default=lab.DEFAULT_CLOUD)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--limit", type=float, default=30.0, help="seconds (the target)")
    args = parser.parse_args()
    console = Console(highlight=False)
    root = tempfile.mkdtemp(prefix="hastack-bench-rabbit-")
    os.environ["HASTACK_STATE_DIR"] = root
    cloud = load_cloud(args.cloud)
    times: list[float | None] = []
    try:
        summary = lab.up(cloud, str(args.cloud))
        if not summary.healthy:
            console.print(f"lab not healthy: {summary.status.anomalies}")
            return 1
        control = LabControl(cloud, str(args.cloud))
        for run in range(1, args.runs + 1):
            node = resolve("rabbit-any", lab_view(control))
            crashed = time.monotonic()
            control.crash_node(node)
            try:
                control.restore()
            except HastackError as exc:
                console.print(f"run {run}: {node}: repair failed: {exc}")
            deadline = crashed + args.limit * 3
            took = None
            while time.monotonic() < deadline:
                control.refresh()
                if rejoined(control, node):
                    took = round(time.monotonic() - crashed, 1)
                    break
                time.sleep(0.5)
            times.append(took)
            console.print(f"run {run}: {node} " + (f"rejoined {took:.1f} s after the crash"
                                                  if took is not None else "did NOT rejoin"))
            if took is None and not control.wait_healthy(120).healthy:
                console.print("the lab stays unhealthy: stopping")
                break
    finally:
        lab.down(cloud.name, purge=True)
        shutil.rmtree(root, ignore_errors=True)
    done = [t for t in times if t is not None]
    within = sum(1 for t in done if t <= args.limit)
    if done:
        console.print(f"crash -> rejoined: median {statistics.median(done):.1f} s, "
                      f"min {min(done):.1f}, max {max(done):.1f}; "
                      f"{within} of {len(times)} runs within {args.limit:g} s")
    return 0 if times and within == len(times) else 1


if __name__ == "__main__":
    sys.exit(main())
