"""`hastack report`: one self-contained HTML file from a results directory and its cloud file.

Sections: the architecture drawn (hastack.report.drawing), the linter's findings with the
reference each cites, the HA timing budget (this cloud's profile beside Kolla-Ansible's
defaults, and what the bench measured when it ran both), the fault matrix, one timeline per
scenario, and the expected availability per OpenStack service (hastack.report.availability).

Everything comes from the saved results and the cloud file — no clock, no host name, no
absolute path — so the same directory gives the same bytes. The drawings are inline SVG
(a saved timeline.png, when a run kept no JSONL, an inline data: URI), the styles are inline,
there is no script: the file opens offline, and prints.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from hastack.chaos.measure import VIP_HOLDERS
from hastack.chaos.timeline import Sample
from hastack.chaos.workloads import in_workload_order
from hastack.checks import Finding, run_checks
from hastack.errors import ReportError
from hastack.model import Cloud, load_cloud
from hastack.plan import Plan, make_plan
from hastack.render.budget import budget_for_target, kolla_ansible_defaults, make_budget
from hastack.report.availability import (
    AvailabilityReport,
    Rates,
    ServiceAvailability,
    expected_availability,
    measured_downtimes,
    nines_of,
)
from hastack.report.drawing import STRATEGY_LABELS, architecture_svg, host_groups
from hastack.report.results import Results, ScenarioResult
from hastack.report.tables import num
from hastack.report.timeline_svg import timeline_svg

REPORT_FILE = "report.html"
SECTIONS = (("architecture", "The architecture"), ("findings", "The linter's findings"),
            ("budget", "The HA timing budget"), ("faults", "The fault matrix"),
            ("timelines", "Timelines"), ("availability", "Expected availability"))


@dataclass(frozen=True)
class ReportInputs:
    results: Results
    cloud: Cloud
    plan: Plan
    findings: list[Finding]
    availability: AvailabilityReport


def gather(results: Results, rates: Rates) -> ReportInputs:
    """The report's facts: the cloud file's plan and findings, the availability from the
    measured downtimes."""
    if results.cloud_file is None:
        raise ReportError(f"{results.directory}: no cloud.yaml (the copy of the cloud file "
                          "chaos saves; older runs did not): pass --cloud FILE")
    cloud = load_cloud(results.cloud_file)
    plan = make_plan(cloud)
    profile = cloud.settings.failover.profile if results.kind == "bench" else None
    measured = measured_downtimes(results.summaries(profile))
    return ReportInputs(results, cloud, plan, run_checks(plan),
                        expected_availability(plan, measured, rates))


def render_report(inputs: ReportInputs) -> str:
    env = Environment(loader=PackageLoader("hastack.report", "templates"),
                      autoescape=select_autoescape(default=True), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    template = env.get_template("report.html.j2")
    results = inputs.results
    return template.render(
        title=f"{inputs.cloud.name}: {results.directory.resolve().name}",
        cloud=inputs.cloud, results_name=results.directory.resolve().name,
        kind=results.kind, sections=SECTIONS,
        architecture=_architecture(inputs), findings=inputs.findings,
        budget=_budget(inputs), matrix=[_matrix(s) for s in results.scenarios],
        timelines=[_timeline(s) for s in results.scenarios],
        availability=_availability(inputs.availability),
    )


def write_report(inputs: ReportInputs, output: str | Path) -> Path:
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(inputs), encoding="utf-8")
    return path


# --- 1. architecture ---------------------------------------------------------------------------


def first_holders(results: Results, plan: Plan) -> dict[str, str]:
    """Who held each VIP when the first scenario's timeline began (its first sample); only
    nodes of this plan (a timeline from another cloud names nobody here)."""
    nodes = {n.name for n in plan.cloud.nodes}
    for scenario in results.scenarios:
        samples = [e for e in scenario.events() if isinstance(e, Sample)
                   and e.what == VIP_HOLDERS and isinstance(e.value, dict)]
        if samples:
            first = min(samples, key=lambda e: e.t).value
            return {vip: held[0] for vip, held in sorted(first.items())
                    if held and held[0] in nodes}
    return {}


def _architecture(inputs: ReportInputs) -> dict[str, Any]:
    plan = inputs.plan
    holders = first_holders(inputs.results, plan)
    return {
        "svg": Markup(architecture_svg(plan, holders)),
        "groups": host_groups(plan),
        "vips": [{"name": v.name, "address": str(v.address), "mechanism": v.mechanism,
                  "candidates": ", ".join(v.candidates), "holder": holders.get(v.name),
                  "frontends": ", ".join(v.frontends)} for v in plan.vips],
        "processes": [{"service": p.service, "process": p.process, "mode": p.mode,
                       "strategy": STRATEGY_LABELS.get(p.strategy, p.strategy),
                       "nodes": ", ".join(p.nodes), "guards": p.guards}
                      for p in plan.processes],
        "unplaced": plan.unplaced,
        "clusters": [{"name": c.name, "members": ", ".join(c.members),
                      "arbitrators": ", ".join(c.arbitrators), "voters": c.voters}
                     for c in plan.clusters],
    }


# --- 3. budget ----------------------------------------------------------------------------------


def _budget(inputs: ReportInputs) -> dict[str, Any]:
    cloud = inputs.cloud
    ours = make_budget(cloud)
    derived = budget_for_target(cloud.settings.failover.target_seconds)
    kolla = kolla_ansible_defaults(cloud)
    rows = []
    for d, k in zip(derived.timings(), kolla.timings(), strict=True):
        rows.append({"mechanism": d.mechanism, "detects": d.detects,
                     "budget": d.settings, "budget_s": d.detection_s,
                     "kolla": k.settings, "kolla_s": k.detection_s,
                     "slower": k.detection_s > d.detection_s})
    figures = []
    bench = inputs.results.bench
    if bench:
        for fig in bench.get("figures", []):
            b, k = fig.get("budget"), fig.get("kolla-ansible")
            figures.append({"figure": fig.get("figure"), "target": fig.get("target"),
                            "budget": num(b), "kolla": num(k),
                            "ratio": f"{k / b:.1f}×" if b and k is not None else "-"})
    return {"profile": cloud.settings.failover.profile, "target": ours.target_s,
            "rows": rows, "figures": figures}


# --- 4. fault matrix ------------------------------------------------------------------------------


def _matrix(s: ScenarioResult) -> dict[str, Any]:
    summary = s.summary
    workloads = summary.get("workloads") or {}
    rows = []
    for name in in_workload_order(workloads):
        w = workloads[name]
        writes = messages = "-"
        if "acked" in w:
            writes = ("not checked" if w.get("checked") is False else
                      f"{num(w.get('lost'))} / {num(w.get('recovered'))} / "
                      f"{num(w.get('indeterminate'))}")
        if "confirmed" in w:
            messages = f"{num(w.get('lost'))} / {num(w.get('duplicated'))}"
        rows.append({"workload": name, "service": w.get("service", ""),
                     "requests": num(w.get("requests")), "downtime": num(w.get("downtime_s"), " s"),
                     "max_gap": num(w.get("max_gap_s"), " s"), "errors": num(w.get("errors")),
                     "writes": writes, "messages": messages,
                     "bad": _positive(w.get("lost")) or w.get("available_again") is False})
    return {"label": s.label, "anchor": "timeline-" + _slug(s.label), "runs": s.runs,
            "rows": rows,
            "dual_vip": num(summary.get("dual_vip_holder_s"), " s"),
            "dual_bad": _positive(summary.get("dual_vip_holder_s")),
            "verdict": str(summary.get("verdict", "-")),
            "reasons": list(summary.get("reasons") or [])}


def _positive(value: Any) -> bool:
    if isinstance(value, Mapping):
        return bool(value.get("max"))
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


# --- 5. timelines -----------------------------------------------------------------------------


def _timeline(s: ScenarioResult) -> dict[str, Any]:
    """The run's timeline drawn from its JSONL (SVG); its timeline.png when only that was
    kept."""
    summary = s.run_summary
    svg = timeline_svg(s.events(), summary, s.label)
    plot = s.plot()
    image = None
    if not svg and plot is not None:
        image = "data:image/png;base64," + base64.b64encode(plot.read_bytes()).decode("ascii")
    transitions = summary.get("transitions") or []
    return {"label": s.label, "anchor": "timeline-" + _slug(s.label), "image": image,
            "svg": Markup(svg), "runs": s.runs,
            "faults": [f"{f['verb']} {f['target']} at {f['start_rel']:+.2f} s"
                       + (f", undone at {f['end_rel']:+.2f} s" if f.get("end_rel") is not None
                          else ", never undone")
                       for f in summary.get("faults") or []],
            "transitions": [{"t": f"{t['t_rel']:+.2f} s", "what": t["what"],
                             "from": t.get("from") or "-", "to": t.get("to") or "-"}
                            for t in transitions[:20]],
            "more": max(0, len(transitions) - 20)}


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


# --- 6. availability ------------------------------------------------------------------------


def per_year(seconds: float | None) -> str:
    """Downtime per year in the unit people budget it in."""
    if seconds is None:
        return "unknown"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def percent(fraction: float | None) -> str:
    """Enough decimals to show the nines (99.9999952 %, never a rounded-up 100 %)."""
    if fraction is None:
        return "unknown"
    if fraction >= 1:
        return "100 %"
    decimals = max(3, math.ceil(-math.log10(1 - fraction)) - 1)
    return f"{fraction * 100:.{decimals}f} %"


def nines(value: float | None) -> str:
    if value is None:
        return "unknown"
    if math.isinf(value):
        return "∞ (no downtime measured)"
    return f"{value:.1f}"


def bounded(s: ServiceAvailability, known: str, bound: str, lower: float | None = None) -> str:
    """The figure when every fault is known; else the bound the known ones give — or
    `unknown` when they give none (nothing measured cost any downtime yet)."""
    if not s.unknown:
        return known
    return bound if (s.known_s if lower is None else lower) > 0 else "unknown"


def _availability(report: AvailabilityReport) -> dict[str, Any]:
    workloads = in_workload_order(w for f in report.faults for w in (f.measured or {}))
    faults = []
    for f in report.faults:
        faults.append({"scenario": f.scenario, "what": f.component.what,
                       "component": f.component.name, "where": f.where,
                       "instances": f.instances,
                       "rate": "unknown" if f.rate_per_year is None else f"{f.rate_per_year:g}",
                       "measured": ["not run" if f.measured is None else
                                    num(f.measured.get(w), " s") if f.measured.get(w) is not None
                                    else "unknown" for w in workloads]})
    services: list[dict[str, Any]] = []
    for s in report.services:
        dominant = s.dominant
        services.append({
            "service": s.service, "needs": ", ".join(s.workloads) or "-",
            "per_year": per_year(s.per_year_s), "known": per_year(s.known_s),
            "unknown": list(s.unknown),
            "availability": bounded(s, percent(s.availability),
                                    "≤ " + percent(s.availability_at_most)),
            "nines": bounded(s, nines(s.nines), "≤ " + nines(nines_of(s.known_s))),
            "dominant": (f"{dominant.scenario} ({per_year(dominant.per_year_s)})"
                         if dominant else "-"),
            "sla": bounded(s, per_year(s.sla_per_year_s), "≥ " + per_year(s.sla_known_s),
                           s.sla_known_s),
            "sla_nines": bounded(s, nines(nines_of(s.sla_per_year_s)),
                                 "≤ " + nines(nines_of(s.sla_known_s)), s.sla_known_s)})
    components = [{"name": c.name, "what": c.what,
                   "rate": "unknown" if c.rate_per_year is None else f"{c.rate_per_year:g}",
                   "source": c.source}
                  for c in report.rates.components.values()]
    # Faults no service could be judged on are said once, above the table.
    unknown_sets = [set(row["unknown"]) for row in services if row["unknown"]]
    common = sorted(set.intersection(*unknown_sets)) if unknown_sets else []
    for row in services:
        row["unknown_own"] = [u for u in row["unknown"] if u not in common]
    return {"workloads": workloads, "faults": faults, "services": services,
            "common_unknown": common,
            "components": components, "slas": list(report.rates.slas.values()),
            "not_counted": report.not_counted,
            "overridden": Path(report.rates.overridden_from).name
            if report.rates.overridden_from else None}


def sections_present(html: str, sections: Sequence[tuple[str, str]] = SECTIONS) -> list[str]:
    """The section ids a report carries (what a reader and the tests look for)."""
    return [sid for sid, _ in sections if f'<section id="{sid}"' in html]
