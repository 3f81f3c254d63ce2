"""Benchmark: load + plan + check of big clouds, and how the time grows with the cloud.

Targets (issues 2, 3 and 16), on this 2-core machine:
  - a 10,000-node cloud of 3 regions and 20 Nova cells: load + plan + check <= 2 s;
  - a 1,000-node single-region cloud: load + plan + check < 2 s, render < 5 s.
Then the same multi-region cloud at 1,000, 10,000 and 50,000 nodes, to show how it scales.

Every figure is the median of RUNS runs with its spread (min-max), wall clock, and also as a
multiple of a fixed reference workload timed in the same run ("x ref"): on a shared machine
the seconds move with the neighbours' load, the ratio much less. Each row names the stage
that sets the figure (the largest share of it).

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


def measure(text: str, runs: int, reference: Samples) -> tuple[dict[str, Samples], object]:
    """Per-stage samples of load, plan and check; a reference run before each."""
    stages = {name: Samples() for name in (*STAGES, "total")}
    result: object = None
    for _ in range(runs):
        reference.values.append(timed(reference_workload)[0])
        load_s, cloud = timed(parse_cloud, text, "big.yaml")
        plan_s, plan = timed(make_plan, cloud)
        check_s, findings = timed(run_checks, plan)
        for name, value in zip(STAGES, (load_s, plan_s, check_s), strict=True):
            stages[name].values.append(value)
        stages["total"].values.append(load_s + plan_s + check_s)
        result = (plan, findings)
    return stages, result


def dominant(stages: dict[str, Samples]) -> str:
    total = stages["total"].median()
    name = max(STAGES, key=lambda s: stages[s].median())
    return f"{name} {stages[name].median() / total:.0%}"


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    sizes = [int(s) for s in sys.argv[2].split(",")] if len(sys.argv) > 2 else \
        [1_000, 10_000, 50_000]
    reference = Samples()
    for _ in range(3):     # warm up imports, caches and the CPU's clock
        reference_workload()

    print(f"{TARGET_NODES:,} nodes, {TARGET_REGIONS} regions, {TARGET_CELLS} cells "
          f"(median of {runs}, spread min-max)")
    text = cloud_yaml(TARGET_NODES, TARGET_REGIONS, TARGET_CELLS)
    stages, (plan, findings) = measure(text, runs, reference)  # type: ignore[misc]
    ref = reference.median()
    for name in (*STAGES, "total"):
        print(f"  {name:<6} {stages[name].median():6.3f} s  ({stages[name].spread()})  "
              f"{stages[name].median() / ref:5.1f} x ref")
    total = stages["total"].median()
    verdict = "meets" if total <= TARGET_S else "MISSES"
    print(f"  load+plan+check {total:.3f} s: {verdict} the {TARGET_S:g} s target "
          f"({total / TARGET_S:.2f} of it); set by {dominant(stages)}; "
          f"{len(plan.control_planes)} control planes, "
          f"{sum(len(p.cells) for p in plan.control_planes)} cells, {len(findings)} findings")
    print(f"  reference workload {ref:.3f} s ({reference.spread()})")

    print(f"\nscaling, {TARGET_REGIONS} regions and {TARGET_CELLS} cells "
          f"(median of {runs})")
    print(f"  {'nodes':>7} {'total s':>8} {'spread':>13} {'x ref':>6} {'us/node':>8} "
          f"{'vs first':>8}  set by")
    first: tuple[int, float] | None = None
    for size in sizes:
        stages, _ = measure(cloud_yaml(size, TARGET_REGIONS, TARGET_CELLS), runs, reference)
        total = stages["total"].median()
        first = first or (size, total)
        growth = f"{total / first[1]:.1f}x/{size / first[0]:.0f}x"
        print(f"  {size:>7,} {total:8.3f} {stages['total'].spread():>13} "
              f"{total / reference.median():6.1f} {total / size * 1e6:8.1f} {growth:>8}  "
              f"{dominant(stages)}")
    print("  (vs first: time ratio / node ratio to the smallest cloud; equal numbers are "
          "linear growth)")

    print("\n1,000 nodes, one region (issues 2 and 3)")
    single = cloud_yaml(1000)
    stages, (plan, _) = measure(single, runs, reference)  # type: ignore[misc]
    print(f"  load+plan+check {stages['total'].median():6.3f} s "
          f"({stages['total'].spread()})  target < 2 s")
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
