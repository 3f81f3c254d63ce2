"""Expected availability: how often each fault happens × how long clients were down when a
chaos run caused it → expected downtime per year and "nines" per OpenStack service.

Part of the report stage: it reads the plan (how many instances can fail), the failure rates
(data: `hastack/catalog/failure_rates.yaml`, each with its source, overridable with
`--rates FILE`) and the downtimes chaos runs *measured*; it computes, it does no I/O beyond
reading the rates file. A fault that was never measured, or whose rate is unknown, makes the
services it may touch unknown — shown as such with the lower bound the known faults give,
never as zero.

    per service s:  downtime/year = Σ over faults f of  rate(f) × downtime(s, f)
    rate(f)        = component failures per instance per year × instances that can fail
    downtime(s, f) = the longest measured downtime of the workloads s needs during f
                     (its API, database, RPC bus, token cache: one fault's outages overlap)
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from hastack.catalog import cite
from hastack.errors import Problem, ReportError
from hastack.plan import Plan

SECONDS_PER_YEAR = 365.25 * 86400
HOURS_PER_YEAR = 365.25 * 24
RATES_FILE = "failure_rates.yaml"


@dataclass(frozen=True)
class ComponentRate:
    """How often one kind of component fails, per instance per year (None: unknown)."""

    name: str
    what: str
    rate_per_year: float | None
    source: str


@dataclass(frozen=True)
class FaultKind:
    """A chaos scenario read as a failure mode: which component failure it reproduces, and
    on how many instances that failure can happen."""

    scenario: str
    component: str
    instances: str = "one"             # one | all-nodes (ignored when `running` is set)
    running: str | None = None         # the nodes running this catalog process
    except_vip_holder: bool = False    # its failure is counted by another scenario
    where: str | None = None           # what fails, in words (for `instances: one`)

    def count(self, plan: Plan) -> int:
        if self.running is None:
            return len(plan.cloud.nodes) if self.instances == "all-nodes" else 1
        nodes = plan.nodes_running(self.running)
        holders = {c for v in plan.vips for c in v.candidates[:1]}
        if self.except_vip_holder and holders & set(nodes):
            return len(nodes) - 1
        return len(nodes)

    def describe(self, plan: Plan) -> str:
        if self.running is None:
            return self.where or ("one node" if self.instances == "one" else "every node")
        rest = " but the VIP holder" if self.except_vip_holder else ""
        return f"each node running {self.running}{rest}"


@dataclass(frozen=True)
class Sla:
    """A reference document's promise for a workload's failover time."""

    workload: str
    seconds: float
    says: str
    source: str


@dataclass(frozen=True)
class Rates:
    components: Mapping[str, ComponentRate]
    faults: tuple[FaultKind, ...]
    services: Mapping[str, tuple[str, ...]]   # OpenStack service -> workloads it needs
    slas: Mapping[str, Sla]
    overridden_from: str | None = None


# --- results ---------------------------------------------------------------------------------

Measured = Mapping[str, Mapping[str, float | None]]     # scenario -> workload -> downtime s


@dataclass(frozen=True)
class FaultRate:
    """One failure mode of this cloud: how often, and what each workload saw (None: not
    measured)."""

    scenario: str
    component: ComponentRate
    instances: int
    where: str
    measured: Mapping[str, float | None] | None   # None: the scenario was never run

    @property
    def rate_per_year(self) -> float | None:
        rate = self.component.rate_per_year
        return None if rate is None else rate * self.instances


@dataclass(frozen=True)
class Contribution:
    """One fault's share of one service's yearly downtime (None: unknown)."""

    scenario: str
    rate_per_year: float | None
    downtime_s: float | None          # per occurrence, measured
    sla_downtime_s: float | None      # per occurrence, had it taken what the SLAs allow

    @property
    def per_year_s(self) -> float | None:
        if self.rate_per_year is None or self.downtime_s is None:
            return None
        return self.rate_per_year * self.downtime_s

    @property
    def sla_per_year_s(self) -> float | None:
        if self.rate_per_year is None or self.sla_downtime_s is None:
            return None
        return self.rate_per_year * self.sla_downtime_s


@dataclass(frozen=True)
class ServiceAvailability:
    service: str
    workloads: tuple[str, ...]
    contributions: tuple[Contribution, ...]

    @property
    def unknown(self) -> tuple[str, ...]:
        """The faults whose share is unknown (not measured, or no rate)."""
        if not self.workloads:
            return ("no dependency data",)
        return tuple(c.scenario for c in self.contributions if c.per_year_s is None)

    @property
    def known_s(self) -> float:
        """The lower bound: the faults whose share is known."""
        return sum(c.per_year_s for c in self.contributions if c.per_year_s is not None)

    @property
    def per_year_s(self) -> float | None:
        return None if self.unknown else self.known_s

    @property
    def sla_known_s(self) -> float:
        return sum(c.sla_per_year_s for c in self.contributions
                   if c.sla_per_year_s is not None)

    @property
    def sla_per_year_s(self) -> float | None:
        return None if self.unknown else self.sla_known_s

    @property
    def dominant(self) -> Contribution | None:
        """The known fault that costs the most downtime a year (None when none cost any)."""
        known = [c for c in self.contributions if c.per_year_s]
        return max(known, key=lambda c: (c.per_year_s or 0.0, c.scenario), default=None)

    @property
    def availability(self) -> float | None:
        return availability_of(self.per_year_s)

    @property
    def availability_at_most(self) -> float:
        """What the known faults alone allow: an upper bound while some are unknown."""
        return availability_of(self.known_s) or 0.0

    @property
    def nines(self) -> float | None:
        return nines_of(self.per_year_s)


@dataclass(frozen=True)
class AvailabilityReport:
    faults: tuple[FaultRate, ...]
    services: tuple[ServiceAvailability, ...]
    not_counted: tuple[str, ...]      # measured scenarios that are no failure mode of ours
    rates: Rates


def availability_of(downtime_per_year_s: float | None) -> float | None:
    if downtime_per_year_s is None:
        return None
    return max(0.0, 1 - downtime_per_year_s / SECONDS_PER_YEAR)


def nines_of(downtime_per_year_s: float | None) -> float | None:
    """-log10 of the unavailable fraction: 3.0 is 99.9 %; infinite with no downtime."""
    if downtime_per_year_s is None:
        return None
    if downtime_per_year_s <= 0:
        return math.inf
    return -math.log10(min(1.0, downtime_per_year_s / SECONDS_PER_YEAR))


def expected_availability(plan: Plan, measured: Measured, rates: Rates) -> AvailabilityReport:
    """Every failure mode of this cloud with its rate, and each OpenStack service's expected
    yearly downtime from them."""
    faults = tuple(
        FaultRate(kind.scenario, rates.components[kind.component], kind.count(plan),
                  kind.describe(plan), measured.get(kind.scenario))
        for kind in rates.faults if kind.count(plan) > 0)
    services = tuple(
        _service(name, rates.services.get(name, ()), faults, rates.slas)
        for name in plan.cloud.services)
    mapped = {k.scenario for k in rates.faults}
    return AvailabilityReport(faults, services,
                              tuple(sorted(s for s in measured if s not in mapped)), rates)


def _service(name: str, workloads: tuple[str, ...], faults: Sequence[FaultRate],
             slas: Mapping[str, Sla]) -> ServiceAvailability:
    contributions = []
    for fault in faults:
        seen = fault.measured or {}
        downtimes = [seen.get(w) for w in workloads]
        if fault.measured is None or not workloads or any(d is None for d in downtimes):
            downtime = sla = None
        else:
            known = [d for d in downtimes if d is not None]
            downtime = max(known)
            sla = max(slas[w].seconds if w in slas and d > 0 else d
                      for w, d in zip(workloads, known, strict=True))
        contributions.append(Contribution(fault.scenario, fault.rate_per_year, downtime, sla))
    return ServiceAvailability(name, workloads, tuple(contributions))


def measured_downtimes(summaries: Sequence[Mapping[str, Any]]
                       ) -> dict[str, dict[str, float | None]]:
    """scenario -> workload -> client-visible downtime, from run summaries (a `--repeat`
    aggregate counts its median). A workload without requests, or that never answered again,
    has no measured downtime (None)."""
    out: dict[str, dict[str, float | None]] = {}
    for summary in summaries:
        seen: dict[str, float | None] = {}
        for workload, w in (summary.get("workloads") or {}).items():
            downtime = w.get("downtime_s")
            if isinstance(downtime, Mapping):
                downtime = downtime.get("median")
            requests = w.get("requests")
            if isinstance(requests, Mapping):
                requests = requests.get("min")
            recovered = w.get("available_again", True) is not False
            usable = isinstance(downtime, int | float) and requests and recovered
            seen[workload] = float(downtime) if usable else None
        out[str(summary.get("scenario"))] = seen
    return out


# --- rates as data -----------------------------------------------------------------------------


def default_rates() -> Rates:
    text = resources.files("hastack.catalog").joinpath(RATES_FILE).read_text(encoding="utf-8")
    data = YAML(typ="safe").load(text)
    components = {name: _component(name, spec) for name, spec in data["components"].items()}
    faults = tuple(FaultKind(scenario, **spec) for scenario, spec in data["faults"].items())
    services = {name: tuple(ws) for name, ws in data["services"].items()}
    slas = {w: Sla(w, float(s["seconds"]), s["says"], cite((s["reference"], s["section"])))
            for w, s in data["slas"].items()}
    return Rates(components, faults, services, slas)


def _component(name: str, spec: Mapping[str, Any]) -> ComponentRate:
    rate = spec.get("rate_per_year")
    if spec.get("mtbf_hours") is not None:
        rate = HOURS_PER_YEAR / float(spec["mtbf_hours"])
    return ComponentRate(name, str(spec.get("what", name)),
                         None if rate is None else float(rate), str(spec.get("source", "")))


COMPONENT_KEYS = ("rate_per_year", "mtbf_hours", "source", "what")


def load_rates(path: str | Path | None = None) -> Rates:
    """The bundled rates, with `path`'s components replacing them field by field:

        components:
          node-crash: {mtbf_hours: 8766, source: our 2025 incident log}
          process-crash: {rate_per_year: null}     # unknown: say so rather than guess
    """
    rates = default_rates()
    if path is None:
        return rates
    filename = str(path)
    try:
        data = YAML(typ="rt").load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReportError.at([Problem(filename, None, "", f"cannot read: {exc.strerror}")]
                             ) from None
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ReportError.at([Problem(filename, line, "", f"not YAML: {exc}")]) from None
    problems: list[Problem] = []
    if not isinstance(data, CommentedMap) or set(data) - {"components"}:
        extra = sorted(set(data) - {"components"}) if isinstance(data, CommentedMap) else []
        problems.append(Problem(filename, _line(data, extra[0]) if extra else 1,
                                extra[0] if extra else "", "expected one key, components"))
        raise ReportError.at(problems)
    components = dict(rates.components)
    given = data.get("components") or {}
    for name, spec in given.items():
        key = f"components.{name}"
        if name not in components:
            problems.append(Problem(filename, _line(given, name), key,
                                    f"unknown component{_did_you_mean(name, components)}"))
            continue
        if not isinstance(spec, Mapping):
            problems.append(Problem(filename, _line(given, name), key,
                                    "expected a mapping (rate_per_year, mtbf_hours, source)"))
            continue
        problems += _field_problems(filename, key, spec)
        if not problems:
            current = components[name]
            merged = {"what": current.what, "rate_per_year": current.rate_per_year,
                      "source": f"{filename}", **dict(spec)}
            components[name] = _component(name, merged)
    if problems:
        raise ReportError.at(problems)
    return replace(rates, components=components, overridden_from=filename)


def _field_problems(filename: str, key: str, spec: Mapping[str, Any]) -> list[Problem]:
    problems = []
    for field_name, value in spec.items():
        line = _line(spec, field_name)
        where = f"{key}.{field_name}"
        if field_name not in COMPONENT_KEYS:
            problems.append(Problem(filename, line, where,
                                    f"unknown field{_did_you_mean(field_name, COMPONENT_KEYS)}"))
        elif field_name == "rate_per_year" and value is not None and (
                not _number(value) or value < 0):
            problems.append(Problem(filename, line, where,
                                    "expected failures per year, a number >= 0 (or null)"))
        elif field_name == "mtbf_hours" and (not _number(value) or value <= 0):
            problems.append(Problem(filename, line, where, "expected hours, a number > 0"))
    if "rate_per_year" in spec and "mtbf_hours" in spec:
        problems.append(Problem(filename, _line(spec, "mtbf_hours"), key,
                                "give rate_per_year or mtbf_hours, not both"))
    return problems


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _line(node: Any, key: str) -> int | None:
    try:
        return int(node.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return None


def _did_you_mean(word: str, candidates: Sequence[str] | Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f" {word!r} (did you mean {close[0]!r}?)" if close else f" {word!r}"
