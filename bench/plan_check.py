"""Benchmark: load + plan + check (and render, where available) of a 1,000-node cloud.

Targets (issue 2 and 3): check + plan under 2 s, render under 5 s on this 2-core machine.
Prints the median of several runs of each stage.

    .venv/bin/python bench/plan_check.py [NODES] [RUNS]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import cloud_yaml  # noqa: E402

from hastack.checks import run_checks  # noqa: E402
from hastack.model import parse_cloud  # noqa: E402
from hastack.plan import make_plan  # noqa: E402
from hastack.render import render_cloud, secret_specs  # noqa: E402
from hastack.render.secrets import complete  # noqa: E402


def timed(func: Callable[[], object], runs: int) -> tuple[float, object]:
    samples, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = func()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


def main() -> None:
    node_count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    text = cloud_yaml(node_count)

    def load_plan_check() -> object:
        plan = make_plan(parse_cloud(text, "big.yaml"))
        return plan, run_checks(plan)

    total, (plan, findings) = timed(load_plan_check, runs)  # type: ignore[misc]
    load_s, _ = timed(lambda: parse_cloud(text, "big.yaml"), runs)
    print(f"{node_count} nodes, {len(plan.processes)} processes, {len(findings)} findings")
    print(f"load            {load_s:6.3f} s (median of {runs})")
    print(f"load+plan+check {total:6.3f} s (median of {runs})  target < 2 s  "
          f"ratio {total / 2:.2f} of target")
    secrets = complete({}, secret_specs(plan))
    render_s, files = timed(lambda: render_cloud(plan, secrets), runs)
    print(f"render          {render_s:6.3f} s (median of {runs}, {len(files)} files)  "  # type: ignore[arg-type]
          f"target < 5 s  ratio {render_s / 5:.2f} of target")


if __name__ == "__main__":
    main()
