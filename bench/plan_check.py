"""Benchmark: load + plan + check of big clouds, and how the time grows with the cloud.

Targets (issues 2, 3 and 16), on this 2-core machine:
  - a 10,000-node cloud of 3 regions and 20 Nova cells: load + plan + check <= 2 s;
  - a 1,000-node single-region cloud: load + plan + check < 2 s, render < 5 s.
Then the same multi-region cloud at 1,000, 10,000 and 50,000 nodes, to show how it scales.

Every figure is the median of RUNS runs with its spread (min-max), in wall-clock seconds, in
CPU seconds of this process, and as a multiple of a fixed reference workload timed just before
each run ("x ref"): on a shared machine the wall clock moves with the neighbours' load, the
CPU time and the ratio much less. Each row names the stage that sets the figure (the largest
share of it).

    .venv/bin/python bench/plan_check.py [RUNS] [SIZES]
    .venv/bin/python bench/plan_check.py 5 1000,10000,50000
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import cloud_yaml  # noqa: E402

from hastack.checks import run_checks  # noqa: E402
from hastack.model import parse_cloud  # noqa: E402
from hastack.plan import make_plan  # noqa: E402
from hastack.render import render_cloud, secret_specs  # noqa: E402
from hastack.render.secrets import complete  # noqa: E402

TARGET_NODES, TARGET_REGIONS, TARGET_CELLS = 10_000, 3, 20
TARGET_S = 2.0
STAGES = ("load", "plan", "check")


def reference_workload() -> None:
    """A fixed mix of what the pipeline does (hashing, dicts, small objects): ~0.1 s."""
    table: dict[str, int] = {}
    for i in range(60_000):
        key = hashlib.sha256(str(i).encode()).hexdigest()[:12]
        table[key] = len(key) + i % 7
    sorted(table.items())


class Samples:
    def __init__(self) -> None:
        self.values: list[float] = []

    def median(self) -> float:
        return statistics.median(self.values)

    def spread(self) -> str:
        return f"{min(self.values):.3f}-{max(self.values):.3f}"


def timed(func: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = func(*args)
    return time.perf_counter() - start, result


class Measured:
    """Per-stage wall-clock samples of load, plan and check, the CPU time of the three, and
    the total as a multiple of the reference workload timed just before it."""

    def __init__(self) -> None:
        self.stages = {name: Samples() for name in (*STAGES, "total")}
        self.cpu = Samples()
        self.vs_reference = Samples()
        self.result: Any = None

    def dominant(self) -> str:
        name = max(STAGES, key=lambda s: self.stages[s].median())
        return f"{name} {self.stages[name].median() / self.stages['total'].median():.0%}"


def measure(text: str, runs: int, reference: Samples) -> Measured:
    measured = Measured()
    for _ in range(runs):
        ref_s = timed(reference_workload)[0]
        reference.values.append(ref_s)
        cpu_start = time.process_time()
        load_s, cloud = timed(parse_cloud, text, "big.yaml")
        plan_s, plan = timed(make_plan, cloud)
        check_s, findings = timed(run_checks, plan)
        measured.cpu.values.append(time.process_time() - cpu_start)
        for name, value in zip(STAGES, (load_s, plan_s, check_s), strict=True):
            measured.stages[name].values.append(value)
        total = load_s + plan_s + check_s
        measured.stages["total"].values.append(total)
        measured.vs_reference.values.append(total / ref_s)
        measured.result = (plan, findings)
    return measured


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    sizes = [int(s) for s in sys.argv[2].split(",")] if len(sys.argv) > 2 else \
        [1_000, 10_000, 50_000]
    reference = Samples()
    for _ in range(3):     # warm up imports, caches and the CPU's clock
        reference_workload()

    print(f"{TARGET_NODES:,} nodes, {TARGET_REGIONS} regions, {TARGET_CELLS} cells "
          f"(median of {runs}, spread min-max, wall clock)")
    text = cloud_yaml(TARGET_NODES, TARGET_REGIONS, TARGET_CELLS)
    m = measure(text, runs, reference)
    plan, findings = m.result
    for name in (*STAGES, "total"):
        print(f"  {name:<6} {m.stages[name].median():6.3f} s  ({m.stages[name].spread()})")
    total, cpu = m.stages["total"].median(), m.cpu.median()
    # The verdict reads the CPU time: the wall clock of a shared machine measures the
    # neighbours too (the two agree when the machine is idle).
    verdict = "meets" if cpu <= TARGET_S else "MISSES"
    print(f"  load+plan+check {cpu:.3f} s CPU ({cpu / TARGET_S:.2f} of the {TARGET_S:g} s "
          f"target: {verdict} it), {total:.3f} s wall, {m.vs_reference.median():.1f} x the "
          f"reference; set by {m.dominant()}")
    print(f"  {len(plan.control_planes)} control planes, "
          f"{sum(len(p.cells) for p in plan.control_planes)} cells, {len(findings)} findings; "
          f"reference workload {statistics.median(reference.values):.3f} s "
          f"({reference.spread()}): its spread is the machine's")

    print(f"\nscaling, {TARGET_REGIONS} regions and {TARGET_CELLS} cells "
          f"(median of {runs})")
    print(f"  {'nodes':>7} {'wall s':>7} {'spread':>13} {'CPU s':>6} {'x ref':>6} "
          f"{'us/node':>7} {'growth':>9}  set by")
    first: tuple[int, float] | None = None
    for size in sizes:
        m = measure(cloud_yaml(size, TARGET_REGIONS, TARGET_CELLS), runs, reference)
        ratio = m.vs_reference.median()
        first = first or (size, ratio)
        growth = f"{ratio / first[1]:.1f}/{size / first[0]:.0f}"
        print(f"  {size:>7,} {m.stages['total'].median():7.3f} "
              f"{m.stages['total'].spread():>13} {m.cpu.median():6.3f} {ratio:6.1f} "
              f"{m.cpu.median() / size * 1e6:7.1f} {growth:>9}  {m.dominant()}")
    print("  (x ref: time over the reference workload run just before, median; growth: that "
          "ratio\n  over the smallest cloud's / the node count over its: equal is linear; "
          "us/node: CPU)")

    print("\n1,000 nodes, one region (issues 2 and 3)")
    single = cloud_yaml(1000)
    m = measure(single, runs, reference)
    plan = m.result[0]
    print(f"  load+plan+check {m.stages['total'].median():6.3f} s "
          f"({m.stages['total'].spread()})  target < 2 s")
    secrets = complete({}, secret_specs(plan))
    render = Samples()
    files: object = None
    for _ in range(runs):
        elapsed, files = timed(render_cloud, plan, secrets)
        render.values.append(elapsed)
    print(f"  render          {render.median():6.3f} s ({render.spread()}, "
          f"{len(files)} files)  target < 5 s")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
