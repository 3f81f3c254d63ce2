"""`hastack chaos` and `hastack demo`: thin click commands over `hastack.chaos.scenarios`.

`chaos` plays one scenario (or `--repeat N`) on the running lab; `demo` is the newcomer's
path: check, plan and render the demo cloud, bring its lab up, play the demo suite, print the
table, write the reports (report.html last), and tear the lab down (also on failure or
Ctrl-C).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from hastack.chaos import ChaosError
from hastack.chaos.measure import aggregate
from hastack.chaos.scenarios import (
    SCENARIOS,
    Scenario,
    demo_suite,
    is_root,
    results_dir_for,
    run_scenario,
    scenario,
    sigterm_as_interrupt,
)
from hastack.errors import HastackError
from hastack.model import Cloud, load_cloud

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _cloud(cloud_file: Path | None) -> tuple[Cloud, str]:
    from hastack.deploy import lab

    path = cloud_file or lab.DEFAULT_CLOUD
    return load_cloud(path), str(path)


def _list_table() -> Table:
    """Every scenario on one line at 80 columns: the name is never cut, the rest wraps."""
    from hastack.report.tables import COMPACT

    table = Table(title="built-in chaos scenarios (* in the demo suite; every one: 0 lost writes)",
                  title_justify="left", **COMPACT)
    table.add_column("scenario", no_wrap=True)
    table.add_column("fault → target")
    table.add_column("hold", justify="right", no_wrap=True)
    table.add_column("max downtime, s", overflow="fold")
    for s in SCENARIOS:
        limits = " ".join(f"{k} {v:g}" for k, v in s.expectations.max_downtime_s.items())
        if s.expectations.vips_wait_for_fencing:
            limits = "no VIP moves before the fence"
        if s.expectations.max_takeover_s is not None:
            limits = f"takeover {s.expectations.max_takeover_s:g} " + limits
        fault = s.verb + (f" {s.process}" if s.process else "") + (" (each)" if s.rolling else "")
        table.add_row(s.name + ("*" if s.demo else ""), f"{fault} → {s.target}",
                      f"{s.hold_s:g} s", limits or "reported only")
    return table


def play(sc: Scenario, cloud: Cloud, cloud_file: str, results: Path, target: str | None,
         repeat: int, say: Any) -> dict[str, Any]:
    """One scenario, `repeat` times; the last summary, or the aggregate of the repeats."""
    from hastack.deploy.lab.power import LabControl
    from hastack.report import save_cloud_copy, write_json, write_scenario_report

    control = LabControl(cloud, cloud_file)
    save_cloud_copy(results, cloud_file)   # what `hastack report` draws and lints
    runs = []
    for i in range(repeat):
        where = results if repeat == 1 else results / f"run-{i + 1}"
        runs.append(write_scenario_report(run_scenario(sc, control, where, target, say)))
    if repeat == 1:
        return runs[0]
    folded = aggregate(runs)
    folded["results_dir"] = str(results)
    write_json(results / "aggregate.json", folded)
    return folded


@click.command("chaos")
@click.argument("scenario_name", metavar="SCENARIO", required=False)
@click.option("--cloud", "cloud_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="cloud.yaml of the lab (default: the bundled demo).")
@click.option("--target", default=None,
              help="node name, vip-holder, galera-writer, rabbit-any, memcached-any, "
                   "controller-any (default: the scenario's)")
@click.option("--repeat", type=click.IntRange(1, 50), default=1, show_default=True,
              help="run N times; report median/min/max")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--up", "bring_up", is_flag=True, help="bring the lab up first")
@click.option("--results", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="results directory (default ./results/<timestamp>-<scenario>)")
@click.option("--list", "list_only", is_flag=True, help="list the built-in scenarios")
def chaos(scenario_name: str | None, cloud_file: Path | None, target: str | None, repeat: int,
          fmt: str, bring_up: bool, results: Path | None, list_only: bool) -> None:
    """Break the running lab on purpose and measure what its clients saw.

    Real clients (SQL through the VIP, AMQP with confirms, HTTP to the API, memcached) run
    from the lab's client node while the scenario's fault is injected, held and healed; the
    lab must be healthy again afterwards. Each run leaves its raw timeline (JSONL), a
    summary.json, a timeline.png and a copy of the cloud file in the results directory;
    `hastack report DIR` turns it into one HTML file.

    \b
    Example:
      sudo hastack chaos --list
      sudo hastack chaos vip-holder-crash
      sudo hastack chaos galera-writer-crash --repeat 3 --format json
      sudo hastack chaos rabbit-node-crash --target ctl3 --up
    """
    if list_only or not scenario_name:
        console.print(_list_table())
        if not list_only:
            raise click.UsageError("give a SCENARIO (or --list)")
        return
    sc = scenario(scenario_name)
    if not is_root():
        raise ChaosError("chaos runs on the lab, which needs root (namespaces, signals)")
    cloud, path = _cloud(cloud_file)
    results = results_dir_for(results, sc.name)
    say = (lambda text: err.print(f"[dim]{text}[/dim]")) if fmt == "json" else console.print
    if bring_up:
        from hastack.deploy import lab

        say(f"bringing up lab {cloud.name} ...")
        summary = lab.up(cloud, path)
        if not summary.healthy:
            raise ChaosError("the lab came up unhealthy: "
                             + "; ".join(map(str, summary.status.anomalies)))
    with sigterm_as_interrupt():
        data = play(sc, cloud, path, results, target, repeat, say)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        from hastack.report.tables import run_table

        console.print(run_table(data))
        lab_result = data.get("lab") or {}
        if lab_result.get("recovery_s") is not None:
            console.print(f"lab healthy again {lab_result['recovery_s']:.1f} s after the heal "
                          f"(fault → healthy {lab_result.get('mttr_s', 0):.1f} s)")
        console.print(f"timeline, summary.json and timeline.png in {results}; "
                      f"an HTML report: hastack report {results}")
    if data.get("verdict") != "pass":
        sys.exit(1)


# --- demo -------------------------------------------------------------------------------------


@click.command("demo")
@click.option("--cloud", "cloud_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="cloud.yaml (default: the bundled demo).")
@click.option("--scenarios", "names", default=None,
              help="comma-separated scenarios (default: the demo suite)")
@click.option("--results", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="results directory (default ./results/<timestamp>-demo)")
@click.option("--keep", is_flag=True, help="leave the lab up at the end")
def demo(cloud_file: Path | None, names: str | None, results: Path | None, keep: bool) -> None:
    """The tour: check, plan, render, bring the lab up, break it, measure, tear it down.

    Runs the demo suite of chaos scenarios (about 5–8 minutes on a 2-core machine),
    prints scenario → client-visible downtime per workload, lost writes and the verdict,
    and writes report.html (one self-contained file, see `hastack report`) next to them.
    Without root it checks, plans and renders the demo and says what the lab needs.

    \b
    Example:
      sudo hastack demo
      sudo hastack demo --scenarios vip-holder-crash,galera-writer-crash
    """
    cloud, path = _cloud(cloud_file)
    _design(cloud)
    if not is_root():
        console.print("[yellow]The lab needs root (namespaces, links, mounts): run "
                      "`sudo hastack demo` to bring it up and break it.[/yellow]")
        return
    suite = [scenario(n.strip()) for n in names.split(",")] if names else demo_suite()
    base = results_dir_for(results, "demo")
    from hastack.deploy import lab
    from hastack.deploy.deployer import print_summary
    from hastack.deploy.lab.state import RecordStore, state_dir
    from hastack.deploy.progress import RichReporter
    from hastack.report import save_cloud_copy, write_json
    from hastack.report.tables import demo_summary, run_table

    record = RecordStore(state_dir(cloud.name)).load()
    was_up = bool(record and any(n.init and n.init.alive() for n in record.nodes.values()))
    summaries: list[dict[str, Any]] = []
    started = time.monotonic()
    save_cloud_copy(base, path)
    try:
        with sigterm_as_interrupt():
            console.rule(f"lab {cloud.name}: up")
            summary = lab.up(cloud, path, RichReporter(console))
            print_summary(summary, console)
            if not summary.healthy:
                raise ChaosError("the lab came up unhealthy: "
                                 + "; ".join(map(str, summary.status.anomalies)))
            for sc in suite:
                console.rule(f"chaos: {sc.name}")
                try:
                    data = play(sc, cloud, path, base / sc.name, None, 1, console.print)
                except ChaosError as exc:
                    console.print(f"[red]{sc.name}: {exc}[/red]")
                    data = {"scenario": sc.name, "verdict": "fail", "reasons": [str(exc)],
                            "workloads": {}}
                summaries.append(data)
                console.print(run_table(data))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
    finally:
        if summaries:
            write_json(base / "suite.json", summaries)
        if keep or was_up:
            console.print(f"lab {cloud.name} left up"
                          + (" (it was up before the demo)" if was_up and not keep else ""))
        else:
            console.rule(f"lab {cloud.name}: down")
            done = lab.down(cloud.name, purge=False)
            console.print("; ".join(done) or "nothing to remove")
    if summaries:
        report, why = _html_report(base)
        console.print(demo_summary(summaries, str(base), report, time.monotonic() - started,
                                   why))
    if len(summaries) < len(suite) or any(s.get("verdict") != "pass" for s in summaries):
        sys.exit(1)


def _html_report(base: Path) -> tuple[str | None, str]:
    """report.html of the demo's results, or why there is none (the demo's verdicts stand
    either way)."""
    from hastack.report.availability import load_rates
    from hastack.report.html import REPORT_FILE, gather, write_report
    from hastack.report.results import load_results

    try:
        path = write_report(gather(load_results(base), load_rates()), base / REPORT_FILE)
    except HastackError as exc:
        return None, str(exc)
    return str(path), ""


def _design(cloud: Cloud) -> None:
    """check + plan + render of the cloud (what works without root)."""
    from hastack.checks import has_errors, run_checks
    from hastack.plan import make_plan
    from hastack.render import render_cloud, secret_specs
    from hastack.render.secrets import complete

    plan = make_plan(cloud)
    findings = run_checks(plan)
    console.rule(f"cloud {cloud.name}: check, plan, render")
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    console.print("check: " + (", ".join(f"{n} {s}(s)" for s, n in counts.items())
                               or "no findings")
                  + "  (details: hastack check)")
    if has_errors(findings):
        raise HastackError("the demo cloud has check errors: run `hastack check`")
    console.print(f"plan: {len(plan.processes)} processes on {len(cloud.nodes)} nodes, "
                  f"{len(plan.frontends)} HAProxy frontends  (details: hastack plan)")
    files = render_cloud(plan, complete({}, secret_specs(plan)))
    console.print(f"render: {len(files)} files for {len({f.node for f in files})} nodes, "
                  "in memory  (write them with: hastack render -o OUT)")
