"""Expected availability against hand-computed cases: one fault, two competing, a fault
never measured (unknown, never zero), and the rates file a user overrides them with."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hastack.errors import ReportError
from hastack.model import load_cloud
from hastack.plan import Plan, make_plan
from hastack.report.availability import (
    SECONDS_PER_YEAR,
    ComponentRate,
    FaultKind,
    Rates,
    Sla,
    default_rates,
    expected_availability,
    load_rates,
    measured_downtimes,
    nines_of,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "hastack" / "examples"


@pytest.fixture(scope="module")
def demo() -> Plan:
    return make_plan(load_cloud(EXAMPLES / "demo.yaml"))


def rates(*faults: FaultKind, node: float | None = 2.0, process: float | None = 4.0) -> Rates:
    return Rates(
        components={"node-crash": ComponentRate("node-crash", "node dies", node, "test"),
                     "process-crash": ComponentRate("process-crash", "daemon dies", process,
                                                    "test")},
        faults=faults,
        services={"keystone": ("api", "sql"), "horizon": ("api",)},
        slas={"sql": Sla("sql", 300.0, "no more than 5 minutes", "test")})


VIP_CRASH = FaultKind("vip-holder-crash", "node-crash", "one")
WRITER_CRASH = FaultKind("galera-writer-crash", "process-crash", "one")
RABBIT_CRASH = FaultKind("rabbit-node-crash", "node-crash", running="rabbitmq",
                         except_vip_holder=True)


def service(report: object, name: str):  # type: ignore[no-untyped-def]
    return next(s for s in report.services if s.service == name)  # type: ignore[attr-defined]


def test_one_fault(demo: Plan) -> None:
    # 2 crashes a year of the VIP holder × 3 s of SQL downtime (the API's 1.5 s overlaps).
    report = expected_availability(demo, {"vip-holder-crash": {"api": 1.5, "sql": 3.0}},
                                   rates(VIP_CRASH))
    keystone = service(report, "keystone")
    assert keystone.per_year_s == pytest.approx(6.0)
    assert keystone.unknown == ()
    assert keystone.availability == pytest.approx(1 - 6.0 / SECONDS_PER_YEAR)
    assert keystone.nines == pytest.approx(math.log10(SECONDS_PER_YEAR / 6.0))   # 6.72
    assert keystone.dominant is not None and keystone.dominant.scenario == "vip-holder-crash"
    # The SLA counts the SQL outage at 5 minutes: 2 × 300 s.
    assert keystone.sla_per_year_s == pytest.approx(600.0)
    horizon = service(report, "horizon")                  # needs the API only
    assert horizon.per_year_s == pytest.approx(3.0) and horizon.sla_per_year_s == 3.0


def test_two_competing_faults(demo: Plan) -> None:
    # 2/yr × max(1, 2) s + 4/yr × max(0, 1.5) s = 4 + 6 = 10 s; the writer crash dominates.
    measured = {"vip-holder-crash": {"api": 1.0, "sql": 2.0},
                "galera-writer-crash": {"api": 0.0, "sql": 1.5}}
    report = expected_availability(demo, measured, rates(VIP_CRASH, WRITER_CRASH))
    keystone = service(report, "keystone")
    assert keystone.per_year_s == pytest.approx(10.0)
    assert keystone.dominant is not None
    assert keystone.dominant.scenario == "galera-writer-crash"
    assert keystone.dominant.per_year_s == pytest.approx(6.0)
    # With the SLA: 2 × 300 + 4 × 300 s; horizon never touched SQL: 2 × 1 + 4 × 0.
    assert keystone.sla_per_year_s == pytest.approx(1800.0)
    horizon = service(report, "horizon")
    assert horizon.per_year_s == pytest.approx(2.0)
    assert horizon.dominant is not None and horizon.dominant.scenario == "vip-holder-crash"


def test_a_fault_never_measured_is_unknown_not_zero(demo: Plan) -> None:
    report = expected_availability(demo, {"vip-holder-crash": {"api": 1.0, "sql": 2.0}},
                                   rates(VIP_CRASH, RABBIT_CRASH))
    rabbit = next(f for f in report.faults if f.scenario == "rabbit-node-crash")
    assert rabbit.instances == 2                 # three RabbitMQ nodes, one is the VIP holder
    assert rabbit.rate_per_year == pytest.approx(4.0) and rabbit.measured is None
    keystone = service(report, "keystone")
    assert keystone.per_year_s is None and keystone.availability is None
    assert keystone.nines is None and keystone.sla_per_year_s is None
    assert keystone.unknown == ("rabbit-node-crash",)
    assert keystone.known_s == pytest.approx(4.0)            # the lower bound: 2/yr × 2 s
    assert keystone.availability_at_most == pytest.approx(1 - 4.0 / SECONDS_PER_YEAR)


def test_a_workload_not_measured_or_a_rate_unknown_is_unknown(demo: Plan) -> None:
    report = expected_availability(demo, {"vip-holder-crash": {"api": 1.0, "sql": None}},
                                   rates(VIP_CRASH))
    assert service(report, "keystone").per_year_s is None
    assert service(report, "horizon").per_year_s == pytest.approx(2.0)
    report = expected_availability(demo, {"vip-holder-crash": {"api": 1.0, "sql": 2.0}},
                                   rates(VIP_CRASH, node=None))
    assert service(report, "keystone").unknown == ("vip-holder-crash",)


def test_no_downtime_measured_is_infinite_nines_and_runs_not_a_failure_mode(demo: Plan
                                                                           ) -> None:
    measured = {"vip-holder-crash": {"api": 0.0, "sql": 0.0}, "stale-node-trap": {"sql": 9.0}}
    report = expected_availability(demo, measured, rates(VIP_CRASH))
    keystone = service(report, "keystone")
    assert keystone.per_year_s == 0 and math.isinf(keystone.nines or 0)
    assert keystone.dominant is None and keystone.sla_per_year_s == 0
    assert report.not_counted == ("stale-node-trap",)
    assert nines_of(SECONDS_PER_YEAR / 1000) == pytest.approx(3.0)


def test_default_rates_cover_every_built_in_scenario_they_name_with_sources(demo: Plan
                                                                           ) -> None:
    from hastack.chaos.scenarios import BY_NAME

    defaults = default_rates()
    for kind in defaults.faults:
        assert kind.scenario in BY_NAME, kind.scenario
        assert kind.component in defaults.components
    assert all(c.source for c in defaults.components.values())
    assert "no more than 5 minutes" in defaults.slas["sql"].says
    assert defaults.slas["sql"].source.startswith("HA Guide: Overview of highly-available")
    counts = {f.scenario: f.instances
              for f in expected_availability(demo, {}, defaults).faults}
    assert counts["rabbit-node-crash"] == 2 and counts["memcached-node-loss"] == 3


def test_measured_downtimes_from_runs_and_repeats() -> None:
    measured = measured_downtimes([
        {"scenario": "a", "workloads": {
            "sql": {"downtime_s": 1.25, "requests": 40},
            "api": {"downtime_s": 3.0, "requests": 40, "available_again": False},
            "cache": {"downtime_s": 0.0, "requests": 0}}},
        {"scenario": "b", "runs": 3, "workloads": {
            "sql": {"downtime_s": {"median": 2.0, "min": 1.0, "max": 9.0},
                    "requests": {"median": 40, "min": 38, "max": 41}}}},
    ])
    assert measured == {"a": {"sql": 1.25, "api": None, "cache": None}, "b": {"sql": 2.0}}


def test_rates_file_overrides_field_by_field(tmp_path: Path) -> None:
    path = tmp_path / "rates.yaml"
    path.write_text("components:\n"
                    "  node-crash: {mtbf_hours: 17532, source: our incident log}\n"
                    "  process-crash: {rate_per_year: null}\n")
    loaded = load_rates(path)
    node = loaded.components["node-crash"]
    assert node.rate_per_year == pytest.approx(0.5) and node.source == "our incident log"
    assert loaded.components["process-crash"].rate_per_year is None
    assert loaded.components["process-crash"].what == default_rates().components[
        "process-crash"].what
    assert loaded.overridden_from == str(path)


def test_rates_file_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rates.yaml"
    path.write_text("components:\n"
                    "  node-crash: {rate_per_year: 1}\n"
                    "  node-crsh: {rate_per_year: 1}\n"
                    "  process-crash:\n"
                    "    rate_per_year: -3\n"
                    "    mtbf: 5\n")
    with pytest.raises(ReportError) as caught:
        load_rates(path)
    lines = caught.value.lines()
    assert f"{path}:3: components.node-crsh: unknown component 'node-crsh' (did you mean " \
           "'node-crash'?)" in lines
    assert any(line.startswith(f"{path}:5: components.process-crash.rate_per_year:")
               for line in lines), lines
    assert any(line.startswith(f"{path}:6: components.process-crash.mtbf: unknown field")
               for line in lines), lines
