"""`hastack report` and `hastack availability`: thin click commands over hastack.report.

Both read a results directory (what `hastack chaos` and `hastack demo` wrote) and the cloud
file saved in it; neither needs root or the lab.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from hastack.report.availability import AvailabilityReport, load_rates, nines_of
from hastack.report.html import (
    REPORT_FILE,
    bounded,
    gather,
    nines,
    per_year,
    percent,
    write_report,
)
from hastack.report.results import load_results
from hastack.report.tables import COMPACT

console = Console(highlight=False)

rates_option = click.option(
    "--rates", "rates_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="YAML overriding failure rates per component (see `hastack availability --help`)")


@click.command("report")
@click.argument("results_dir", metavar="RESULTS_DIR",
                type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"the HTML file to write (default RESULTS_DIR/{REPORT_FILE})")
@click.option("--cloud", "cloud_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="cloud file (default: the cloud.yaml the run saved)")
@rates_option
def report_cmd(results_dir: Path, output: Path | None, cloud_file: Path | None,
               rates_file: Path | None) -> None:
    """Write one self-contained HTML report of a results directory.

    One file, images and styles inline, no script: it opens offline, mails and prints. It
    shows the architecture drawn from the plan (nodes, VIPs and who held them, every process
    coloured by HA strategy), the linter's findings with their references, the HA timing
    budget beside Kolla-Ansible's defaults, the fault matrix (median/min/max of repeats),
    one timeline per scenario, and the expected availability per OpenStack service.

    RESULTS_DIR is what `hastack chaos` (one run or --repeat), `hastack demo` or
    bench/failover.py wrote. Re-running on the same directory writes the same bytes.

    \b
    Example:
      hastack report results/20260102-101500-demo
      hastack report results/20260102-101500-demo -o ~/ha-design.html
      hastack report old-results/ --cloud examples/demo.yaml
    """
    results = load_results(results_dir, cloud_file)
    path = write_report(gather(results, load_rates(rates_file)),
                        output or results_dir / REPORT_FILE)
    console.print(f"report: {path}")


@click.command("availability")
@click.argument("cloud_file", metavar="CLOUD", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--results", "results_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="results directory of chaos runs on this cloud")
@rates_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text for people, json for programs")
def availability_cmd(cloud_file: Path, results_dir: Path, rates_file: Path | None,
                     fmt: str) -> None:
    """Expected downtime per year and "nines" per OpenStack service.

    Multiplies how often each component fails (node crashes, daemon crashes, partitions,
    site power loss, planned restarts; defaults with their sources) by the client-visible
    downtime chaos runs MEASURED for the matching fault. A fault never measured, or a rate
    set to null, makes a service unknown (with the lower bound the rest gives), never zero.
    It also shows what the references' SLAs (Galera failover "no more than 5 minutes",
    memcached "several minutes") would give instead.

    \b
    --rates FILE overrides components field by field, e.g.
      components:
        node-crash: {mtbf_hours: 17532, source: our 2025 incident log}
        process-crash: {rate_per_year: 4}
        network-partition: {rate_per_year: null}   # unknown
    \b
    Example:
      hastack availability examples/demo.yaml --results results/20260102-101500-demo
      hastack availability cloud.yaml --results results/ --rates our-rates.yaml
    """
    results = load_results(results_dir, cloud_file)
    report = gather(results, load_rates(rates_file)).availability
    if fmt == "json":
        click.echo(json.dumps(availability_json(report), indent=2))
        return
    console.print(availability_text(report))


def availability_text(report: AvailabilityReport) -> RenderableType:
    """Services, then failure modes: two tables that fit 80 columns."""
    services = Table(title="expected availability per service", title_justify="left",
                     caption="unknown: a fault it may suffer was not measured (≥ the rest); "
                             "SLA: the references' failover times instead of measured ones",
                     caption_justify="left", **COMPACT)
    services.add_column("service", no_wrap=True)
    services.add_column("down/year", justify="right", no_wrap=True)
    services.add_column("availability", justify="right", no_wrap=True)
    services.add_column("nines", justify="right", no_wrap=True)
    services.add_column("dominant fault")
    services.add_column("SLA/year", justify="right", no_wrap=True)
    for s in report.services:
        down = Text(per_year(s.per_year_s)) if not s.unknown else Text.assemble(
            ("unknown", "bold yellow"), ("\n≥ " + per_year(s.known_s), "dim"))
        dominant = s.dominant
        services.add_row(
            s.service, down,
            bounded(s, percent(s.availability), "≤ " + percent(s.availability_at_most)),
            bounded(s, _short_nines(s.nines), "≤ " + _short_nines(nines_of(s.known_s))),
            dominant.scenario if dominant else "-",
            bounded(s, per_year(s.sla_per_year_s), "≥ " + per_year(s.sla_known_s),
                    s.sla_known_s))
    faults = Table(title="failure modes (rate × measured downtime)", title_justify="left",
                   **COMPACT)
    faults.add_column("scenario", no_wrap=True)
    faults.add_column("failure", no_wrap=True)
    faults.add_column("/year", justify="right", no_wrap=True)
    faults.add_column("worst workload down", justify="right")
    for f in report.faults:
        if f.measured is None:
            seen = Text("not run", style="bold yellow")
        else:
            known = {w: d for w, d in f.measured.items() if d is not None}
            worst = max(known.items(), key=lambda kv: (kv[1], kv[0]), default=None)
            seen = Text(f"{worst[1]:.2f} s ({worst[0]})" if worst else "unknown")
        faults.add_row(f.scenario, f.component.name,
                       "unknown" if f.rate_per_year is None else f"{f.rate_per_year:g}", seen)
    parts: list[RenderableType] = [services, Text(""), faults]
    if report.not_counted:
        parts.append(Text("not counted (no failure mode): " + ", ".join(report.not_counted),
                          style="dim"))
    source = report.rates.overridden_from
    parts.append(Text("rates: bundled defaults" + (f", overridden by {source}" if source else "")
                      + "; sources: hastack availability --format json, or the report",
                      style="dim"))
    return Group(*parts)


def _short_nines(value: float | None) -> str:
    text = nines(value)
    return "∞" if value is not None and math.isinf(value) else text


def availability_json(report: AvailabilityReport) -> dict[str, Any]:
    def finite(value: float | None) -> float | str | None:
        if value is None:
            return None
        return "inf" if math.isinf(value) else round(value, 6)

    return {
        "services": [{
            "service": s.service, "needs": list(s.workloads),
            "downtime_per_year_s": finite(s.per_year_s),
            "known_downtime_per_year_s": round(s.known_s, 6),
            "unknown": list(s.unknown), "availability": finite(s.availability),
            "nines": finite(s.nines),
            "dominant": s.dominant.scenario if s.dominant else None,
            "sla_downtime_per_year_s": finite(s.sla_per_year_s),
            "sla_nines": finite(nines_of(s.sla_per_year_s)),
            "contributions": [{"scenario": c.scenario, "rate_per_year": c.rate_per_year,
                               "downtime_s": c.downtime_s,
                               "per_year_s": finite(c.per_year_s)} for c in s.contributions],
        } for s in report.services],
        "faults": [{"scenario": f.scenario, "component": f.component.name,
                    "instances": f.instances, "rate_per_year": f.rate_per_year,
                    "measured": None if f.measured is None else dict(f.measured)}
                   for f in report.faults],
        "components": {c.name: {"what": c.what, "rate_per_year": c.rate_per_year,
                                "source": c.source}
                       for c in report.rates.components.values()},
        "not_counted": list(report.not_counted),
    }
