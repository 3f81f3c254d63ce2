"""The two HA architectures of the reference documents on the same faults, side by side.

    sudo .venv/bin/python bench/architectures.py [--repeat 3]
        [--scenarios controller-partition,vip-holder-crash] [--cloud FILE]

One cloud (default: the bundled demo) in two variants, brought up one after the other (two
labs at once would share two CPU cores): `architecture: keepalived` (VRRP moves the VIPs,
no quorum, no fencing) and `architecture: pacemaker` with the lab's fence devices
(`pacemaker: {fencing: lab}`: Corosync quorum, IPaddr2 VIPs, fence_hastack). Each variant
plays the same scenarios `--repeat` times, the partition aimed at the VIP holder. The table
gives, per scenario and architecture, the median (min–max) of the API and SQL downtime,
the seconds two nodes held one VIP, the lost writes and messages, and for Pacemaker the time
from the fault to the fence. Results (timelines, summaries, bench.json) go to
./results/<timestamp>-architectures/.

The mechanisms behind the figures: keepalived's VIP moves after 3 missed VRRP adverts plus
skew (advert 0.2 s); a partitioned holder keeps its VIP, since VRRP has no quorum. Pacemaker
loses a member after Corosync's token + consensus (1.0 + 1.2 s from the budget), fences it
(the lab's power cut) and only then starts the VIP on a survivor; a partitioned holder loses
quorum and stops its VIP (no-quorum-policy=stop).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hastack.chaos.scenarios import run_scenario, scenario
from hastack.deploy import lab
from hastack.deploy.lab.power import LabControl
from hastack.errors import HastackError
from hastack.model import load_cloud
from hastack.report import save_cloud_copy, write_scenario_report
from hastack.report.tables import COMPACT

VARIANTS = {"keepalived": ("arkeep", "198.18.72."), "pacemaker": ("arpcmk", "198.18.73.")}
TARGETS = {"controller-partition": "vip-holder"}


def variant_cloud(base: Path, architecture: str, root: Path) -> Path:
    """The base cloud with its architecture (and, for Pacemaker, the lab's fencing) set,
    under the variant's own name and subnet."""
    name, subnet = VARIANTS[architecture]
    text = base.read_text()
    old_name = re.search(r"^name:\s*(\S+)", text, re.M)
    old_net = re.search(r"address:\s*(\d+\.\d+\.\d+\.)", text)
    if old_name is None or old_net is None:
        raise SystemExit(f"{base}: no `name:` or node address to rename")
    text = text.replace(f"name: {old_name.group(1)}", f"name: {name}", 1)
    text = text.replace(old_net.group(1), subnet)
    text = re.sub(r"^architecture:.*$", f"architecture: {architecture}", text, flags=re.M)
    if architecture == "pacemaker":
        if re.search(r"pacemaker:\s*\{[^}]*fencing:", text):
            text = re.sub(r"(pacemaker:\s*\{[^}]*fencing:\s*)\w+", r"\1lab", text)
        else:
            text += "  pacemaker: {fencing: lab}\n"
    path = root / f"{name}.yaml"
    path.write_text(text)
    return path


def fence_delay_s(data: dict[str, Any]) -> float | None:
    """Seconds from the fault to the first fence of its target (None: nothing fenced)."""
    faults = data.get("faults", [])
    if not faults:
        return None
    start, node = faults[0]["start_rel"], faults[0]["target"]
    fenced = [t["t_rel"] for t in data["transitions"]
              if t["what"] == f"power {node}" and t["to"] == "off" and t["t_rel"] >= start]
    return round(fenced[0] - start, 2) if fenced else None


def play(architecture: str, base: Path, names: list[str], repeat: int, root: Path,
         results: Path, console: Console) -> list[dict[str, Any]]:
    cloud_file = variant_cloud(base, architecture, root)
    cloud = load_cloud(cloud_file)
    save_cloud_copy(results / architecture, cloud_file)
    console.rule(f"{architecture}: lab {cloud.name}")
    runs: list[dict[str, Any]] = []
    try:
        summary = lab.up(cloud, str(cloud_file))
        console.print(f"up in {summary.total_s:.0f} s, "
                      f"{'healthy' if summary.healthy else 'NOT healthy'}")
        control = LabControl(cloud, str(cloud_file))
        for name in names:
            for i in range(repeat):
                data = write_scenario_report(run_scenario(
                    scenario(name), control, results / architecture / f"{name}-{i + 1}",
                    target=TARGETS.get(name),
                    say=lambda text: console.print(f"[dim]{text}[/dim]")))
                data["architecture"] = architecture
                data["fence_s"] = fence_delay_s(data)
                runs.append(data)
                console.print(f"{architecture} {name} #{i + 1}: {data['verdict']}; dual VIP "
                              f"{data['dual_vip_holder_s']:.2f} s; " + ", ".join(
                                  f"{k} down {v['downtime_s']:.2f} s"
                                  for k, v in data["workloads"].items()))
    finally:
        lab.down(cloud.name, purge=True)
    return runs


def spread(values: list[float]) -> str:
    """The median, and under it the range (two lines keep the table within 80 columns)."""
    if not values:
        return "-"
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.1f}"
    return f"{median:.1f}\n{min(values):.1f}–{max(values):.1f}"


def figures(runs: list[dict[str, Any]]) -> dict[str, str]:
    def workload(name: str, key: str) -> list[float]:
        return [float(r["workloads"][name][key]) for r in runs if name in r["workloads"]]
    fences = [r["fence_s"] for r in runs if r.get("fence_s") is not None]
    return {
        "API down": spread(workload("api", "downtime_s")),
        "SQL down": spread(workload("sql", "downtime_s")),
        "dual VIP": spread([float(r["dual_vip_holder_s"]) for r in runs]),
        "fenced at": spread(fences) if fences else "-",
        "lost w/m": f"{max(workload('sql', 'lost'), default=0):g}/"
                    f"{max(workload('amqp', 'lost'), default=0):g}",
    }


def print_table(runs: dict[str, list[dict[str, Any]]], console: Console) -> None:
    names = list(dict.fromkeys(r["scenario"] for rs in runs.values() for r in rs))
    repeat = max((sum(1 for r in rs if r["scenario"] == n) for rs in runs.values()
                  for n in names), default=0)
    table = Table(title=f"keepalived vs Pacemaker, seconds: median, then min–max, of "
                        f"{repeat} run(s)", title_justify="left", **COMPACT)
    table.add_column("scenario / architecture", no_wrap=True)
    for column in ("API down", "SQL down", "dual VIP", "fenced at", "lost w/m"):
        table.add_column(column, justify="right", no_wrap=True)
    for name in names:
        table.add_row(f"[bold]{name}[/bold]")
        for architecture, arch_runs in runs.items():
            row = figures([r for r in arch_runs if r["scenario"] == name])
            table.add_row(f"  {architecture}", *row.values(),
                          end_section=architecture == list(runs)[-1])
    console.print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scenarios", default="controller-partition,vip-holder-crash")
    parser.add_argument("--cloud", type=Path, default=Path(lab.DEFAULT_CLOUD))
    parser.add_argument("--table", type=Path, metavar="BENCH_JSON",
                        help="print the table of an earlier run's bench.json, run nothing")
    args = parser.parse_args()
    console = Console(highlight=False)
    if args.table:
        print_table(json.loads(args.table.read_text()), console)
        return 0
    if os.geteuid() != 0:
        print("bench/architectures.py needs root (it brings up two labs)", file=sys.stderr)
        return 2
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    results = Path("results") / f"{time.strftime('%Y%m%d-%H%M%S')}-architectures"
    root = Path(tempfile.mkdtemp(prefix="hastack-architectures-"))
    os.environ["HASTACK_STATE_DIR"] = str(root)
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        for architecture in VARIANTS:
            runs[architecture] = play(architecture, args.cloud, names, args.repeat, root,
                                      results, console)
    except (HastackError, KeyboardInterrupt) as exc:
        console.print(f"[red]stopped:[/red] {exc}")
        return 2
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_table(runs, console)
    results.mkdir(parents=True, exist_ok=True)
    (results / "bench.json").write_text(json.dumps(runs, indent=2) + "\n")
    console.print(f"results under {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
