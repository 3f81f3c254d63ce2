"""Results directories as `hastack chaos` and `hastack demo` write them, from synthetic
timelines (tests/test_report.py's `synthetic_run`): for the report's tests, without a lab."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hastack.chaos.measure import Expectations, aggregate, summarise
from hastack.chaos.timeline import Event, to_json
from hastack.report import save_cloud_copy, write_json, write_run_report
from tests.test_report import synthetic_run

EXAMPLES = Path(__file__).resolve().parent.parent / "hastack" / "examples"
DEMO_CLOUD = EXAMPLES / "demo.yaml"


def _rename_holders(events: Sequence[Event]) -> list[Event]:
    """The synthetic run's VIP samples name the VIP `public`; the demo has internal too."""
    from dataclasses import replace

    from hastack.chaos.timeline import Sample

    out: list[Event] = []
    for e in events:
        if isinstance(e, Sample) and e.what == "vip_holders":
            held = e.value.get("public", [])
            out.append(replace(e, value={"internal": held, "public": held}))
        else:
            out.append(e)
    return out


def write_run(directory: Path, name: str, seed: int = 1, plot: bool = True) -> dict[str, Any]:
    """One run: its timeline as JSONL, summary.json and (unless `plot` is false: it costs a
    second of CPU) timeline.png."""
    events = _rename_holders(synthetic_run(seed))
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "faults.jsonl", "w") as out:
        for e in events:
            out.write(json.dumps(to_json(e)) + "\n")
    summary = summarise(events, name, Expectations(max_dual_vip_s=1.0), str(directory))
    if plot:
        write_run_report(directory, events, summary)
    data = summary.as_dict()
    write_json(directory / "summary.json", data)
    return data


def write_demo(base: Path, scenarios: Sequence[str] = ("vip-holder-crash",
                                                      "galera-writer-crash"),
               cloud_file: Path = DEMO_CLOUD, plot: bool = True) -> Path:
    """A demo's results: suite.json, one directory per scenario, the cloud file's copy."""
    save_cloud_copy(base, cloud_file)
    summaries = [write_run(base / name, name, seed=i + 1, plot=plot)
                 for i, name in enumerate(scenarios)]
    write_json(base / "suite.json", summaries)
    return base


def write_repeat(base: Path, name: str = "galera-writer-crash", runs: int = 3,
                 cloud_file: Path = DEMO_CLOUD) -> Path:
    """`hastack chaos NAME --repeat N`: run-1 … run-N and aggregate.json."""
    save_cloud_copy(base, cloud_file)
    summaries = [write_run(base / f"run-{i + 1}", name, seed=i + 1, plot=i == 0)
                 for i in range(runs)]
    folded = aggregate(summaries)
    folded["results_dir"] = str(base)
    write_json(base / "aggregate.json", folded)
    return base


def write_bench(base: Path, name: str = "vip-holder-crash", repeat: int = 2) -> Path:
    """bench/failover.py's layout: <profile>/<scenario>-<i>/ and bench.json."""
    save_cloud_copy(base, DEMO_CLOUD)
    runs: dict[str, list[dict[str, Any]]] = {}
    for p, profile in enumerate(("budget", "kolla-ansible")):
        save_cloud_copy(base / profile, DEMO_CLOUD)
        runs[profile] = [write_run(base / profile / f"{name}-{i + 1}", name, seed=10 * p + i,
                                   plot=False) for i in range(repeat)]
    figures = [{"figure": "API downtime, VIP-holder crash", "target": 1.0, "budget": 0.8,
                "kolla-ansible": 3.4, "values": {}}]
    write_json(base / "bench.json", {"figures": figures, "runs": runs})
    return base
