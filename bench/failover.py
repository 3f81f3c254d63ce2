"""Failover under hastack's budget vs. Kolla-Ansible's default timings, side by side.

    sudo .venv/bin/python bench/failover.py [--repeat 3] [--scenarios vip-holder-crash,...]

Two labs from copies of the demo cloud, one after the other (two at once would share two
CPU cores): `settings.failover.profile: budget` and `kolla-ansible`, each under its own name
and subnet in a temporary state root. Each plays the same scenarios `--repeat` times; the
table gives medians for both, the ratio, the issue's target, and which mechanism of the
timing budget set each figure (with its settings in each profile). Results (timelines,
plots, bench.json) go to ./results/<timestamp>-failover-bench/; `hastack report` on that
directory adds the measured comparison to the report's timing budget section.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hastack.chaos.scenarios import run_scenario, scenario
from hastack.deploy import lab
from hastack.deploy.lab.power import LabControl
from hastack.errors import HastackError
from hastack.model import Cloud, load_cloud
from hastack.render.budget import make_budget
from hastack.report import save_cloud_copy, write_scenario_report

PROFILES = {"budget": ("fobudget", "198.18.70."), "kolla-ansible": ("fokolla", "198.18.71.")}


@dataclass(frozen=True)
class Figure:
    """One number the issue sets a target for, and the budget mechanism that decides it."""

    label: str
    scenario: str
    workload: str
    key: str                 # downtime_s | max_gap_s | lost
    target: float
    mechanisms: tuple[str, ...]


FIGURES = (
    Figure("API downtime, VIP-holder crash", "vip-holder-crash", "api", "downtime_s", 1.0,
           ("keepalived VRRP",)),
    Figure("SQL write gap, Galera writer crash", "galera-writer-crash", "sql", "max_gap_s", 2.0,
           ("HAProxy checks",)),
    Figure("queue gap, RabbitMQ node crash", "rabbit-node-crash", "amqp", "max_gap_s", 5.0,
           ("RabbitMQ net_ticktime", "oslo.messaging heartbeat")),
    Figure("lost acked writes (all runs)", "*", "sql", "lost", 0, ()),
    Figure("lost confirmed messages (all runs)", "*", "amqp", "lost", 0, ()),
)


def profile_cloud(profile: str, root: Path) -> Path:
    name, subnet = PROFILES[profile]
    text = (Path(lab.DEFAULT_CLOUD).read_text().replace("name: demo", f"name: {name}")
            .replace("198.18.0.", subnet))
    text += f"  failover: {{profile: {profile}}}\n"
    path = root / f"{name}.yaml"
    path.write_text(text)
    return path


def play_profile(profile: str, names: list[str], repeat: int, root: Path, results: Path,
                 console: Console) -> list[dict[str, Any]]:
    cloud_file = profile_cloud(profile, root)
    cloud = load_cloud(cloud_file)
    # `hastack report RESULTS` draws and lints the budget profile's cloud (the architecture
    # is the same in both; the timing budget section compares their timings).
    save_cloud_copy(results / profile, cloud_file)
    if profile == "budget":
        save_cloud_copy(results, cloud_file)
    console.rule(f"{profile}: lab {cloud.name}")
    runs: list[dict[str, Any]] = []
    try:
        started = time.monotonic()
        summary = lab.up(cloud, str(cloud_file))
        console.print(f"up in {time.monotonic() - started:.0f} s, "
                      f"{'healthy' if summary.healthy else 'NOT healthy'}")
        control = LabControl(cloud, str(cloud_file))
        for name in names:
            for i in range(repeat):
                data = write_scenario_report(run_scenario(
                    scenario(name), control, results / profile / f"{name}-{i + 1}",
                    say=lambda text: console.print(f"[dim]{text}[/dim]")))
                data["profile"] = profile
                runs.append(data)
                w = data["workloads"]
                console.print(f"{profile} {name} #{i + 1}: {data['verdict']}; " + ", ".join(
                    f"{k} down {v['downtime_s']:.2f} s gap {v['max_gap_s']:.2f} s"
                    for k, v in w.items()))
    finally:
        lab.down(cloud.name, purge=True)
    return runs


def figure_values(runs: list[dict[str, Any]], fig: Figure) -> list[float]:
    values = []
    for run in runs:
        if fig.scenario != "*" and run["scenario"] != fig.scenario:
            continue
        value = run.get("workloads", {}).get(fig.workload, {}).get(fig.key)
        if isinstance(value, int | float):
            values.append(float(value))
    return values


def mechanism_text(cloud: Cloud, fig: Figure) -> str:
    timings = {t.mechanism: t for t in make_budget(cloud).timings()}
    parts = [f"{m}: {timings[m].settings} ({timings[m].detection_s:g} s)"
             for m in fig.mechanisms if m in timings]
    return "; ".join(parts) or "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scenarios", default="vip-holder-crash,galera-writer-crash",
                        help="comma list (add rabbit-node-crash for the queue figure)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/failover.py needs root (it brings up two labs)", file=sys.stderr)
        return 2
    console = Console(highlight=False)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    results = Path("results") / f"{time.strftime('%Y%m%d-%H%M%S')}-failover-bench"
    root = Path(tempfile.mkdtemp(prefix="hastack-failover-"))
    os.environ["HASTACK_STATE_DIR"] = str(root)
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        for profile in PROFILES:
            runs[profile] = play_profile(profile, names, args.repeat, root, results, console)
    except (HastackError, KeyboardInterrupt) as exc:
        console.print(f"[red]stopped:[/red] {exc}")
        return 2
    clouds = {p: load_cloud(profile_cloud(p, root)) for p in PROFILES}
    shutil.rmtree(root, ignore_errors=True)   # the labs are down: only their cloud files remain
    table = Table(title=f"failover: medians of {args.repeat} run(s) per profile",
                  title_justify="left")
    for column in ("figure", "target", "budget", "kolla-ansible", "kolla/budget",
                   "set by (budget)", "set by (kolla-ansible)"):
        table.add_column(column, overflow="fold")
    rows = []
    for fig in FIGURES:
        values = {p: figure_values(runs[p], fig) for p in PROFILES}
        if not any(values.values()):
            continue
        agg = {p: (max(v) if fig.key == "lost" else statistics.median(v)) if v else None
               for p, v in values.items()}
        b, k = agg["budget"], agg["kolla-ansible"]
        ratio = f"{k / b:.1f}x" if b and k is not None else "-"
        met = "" if b is None else (" ✓" if b <= fig.target else " ✗ short")
        rows.append({"figure": fig.label, "target": fig.target, "budget": b,
                     "kolla-ansible": k, "values": values})
        table.add_row(fig.label, f"≤ {fig.target:g}", f"{b if b is not None else '-'}{met}",
                      f"{k if k is not None else '-'}", ratio,
                      mechanism_text(clouds["budget"], fig),
                      mechanism_text(clouds["kolla-ansible"], fig))
    console.print(table)
    results.mkdir(parents=True, exist_ok=True)
    (results / "bench.json").write_text(json.dumps({"figures": rows, "runs": runs},
                                                   indent=2) + "\n")
    console.print(f"results under {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
