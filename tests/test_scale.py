"""Regions, cells, availability zones and capacity: the cloud file's errors point at their
line, the plan places cells and regions, `hastack plan --capacity` fits 80 columns, the
linter warns before a limit and errors past it, and VRIDs agree between render and linter."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hastack.checks import run_checks
from hastack.cli import cli
from hastack.errors import CloudFileError, RenderError
from hastack.model import parse_cloud
from hastack.plan import Plan, make_plan
from hastack.plan.capacity import cluster_loads
from hastack.render import render_cloud, secret_specs
from hastack.render.secrets import complete
from tests.conftest import EXAMPLES, example_plan

REGIONS = (EXAMPLES / "regions.yaml").read_text()


def problems_of(text: str) -> list[str]:
    with pytest.raises(CloudFileError) as caught:
        parse_cloud(text)
    return caught.value.lines()


def regions_plan(change: Callable[[str], str] = lambda t: t) -> Plan:
    return make_plan(parse_cloud(change(REGIONS)))


def findings(plan: Plan, rule: str) -> list[Any]:
    return [f for f in run_checks(plan) if f.rule == rule]


# --- the cloud file -----------------------------------------------------------------------

BAD_PLACES = [
    ("unknown cell", lambda t: t.replace("roles: [compute], cell: cell1, rack: phx-r2",
                                         "roles: [compute], cell: cel1, rack: phx-r2"), 19,
     "nodes[7].cell: unknown cell 'cel1' (did you mean 'cell1'?); declared: cell1"),
    ("unknown region", lambda t: t.replace("region: rdu}", "region: rdx}", 1), 20,
     "nodes[8].region: unknown region 'rdx' (did you mean 'rdu'?)"),
    ("unknown rack", lambda t: t.replace("rack: phx-r3}", "rack: phx-r4}", 1), 14,
     "nodes[2].rack: unknown rack 'phx-r4'"),
    ("zone against its rack", lambda t: t.replace("rack: phx-r1}", "rack: phx-r1, zone: phx-az2}",
                                                  1), 12,
     "nodes[0].zone: zone 'phx-az2' differs from its rack 'phx-r1''s zone 'phx-az1'"),
    ("rack in an unknown zone", lambda t: t.replace("zone: phx-az3}", "zone: phx-az4}"), 40,
     "racks[2].zone: unknown zone 'phx-az4'"),
    ("cell without its database", lambda t: re.sub(r"  - \{name: phx-cell1-\d.*\n", "", t), 33,
     "cells[0]: cell 'cell1' has no node for its own database"),
    ("compute without a cell", lambda t: t.replace("roles: [compute], cell: cell1, rack: phx-r1",
                                                   "roles: [compute], rack: phx-r1"), 18,
     "nodes[6]: compute node 'phx-cmp1' has no cell, and region 'phx' has cells (cell1)"),
    ("a load balancer in a cell", lambda t: t.replace(
        "roles: [controller], cell: cell1, rack: phx-r1",
        "roles: [loadbalancer], cell: cell1, rack: phx-r1"), 15,
     "nodes[3].roles: a cell holds compute, database, messaging and conductor"),
    ("region VIP outside its subnet", lambda t: t.replace("{internal: 198.18.5.100}",
                                                          "{internal: 198.18.4.101}"), 31,
     "regions[0].vips.internal: VIP 198.18.4.101 is outside region 'rdu''s subnets"),
    ("shared Glance without Keystone", lambda t: t.replace("shares: [keystone, glance]",
                                                           "shares: [glance]"), 32,
     "regions[0].shares: a shared Glance needs the shared Keystone too"),
    ("region named like the home region", lambda t: t.replace("  - name: rdu", "  - name: phx"),
     30, "regions[0].name: 'phx' is declared twice (also nodes of the home region 'phx')"),
    ("cell0 is Nova's", lambda t: t.replace("{name: cell1}", "{name: cell0}"), 36,
     "cells[0].name: 'cell0' is declared twice"),
    ("unknown capacity key", lambda t: t + "capacity: {computes_per_cel: 500}\n", 45,
     "capacity.computes_per_cel: unknown key 'computes_per_cel' (did you mean "
     "'computes_per_cell'?)"),
    ("VRID out of range", lambda t: t.replace("monitoring: {enabled: true}",
                                              "keepalived: {virtual_router_ids: {internal: 300}}"),
     28, "settings.keepalived.virtual_router_ids.internal:"),
    ("VRID pinned on no VIP", lambda t: t.replace(
        "monitoring: {enabled: true}", "keepalived: {virtual_router_ids: {public: 51}}"), 28,
     "settings.keepalived.virtual_router_ids.public: no VIP called 'public'"),
]


@pytest.mark.parametrize("what,change,line,fragment", BAD_PLACES, ids=[b[0] for b in BAD_PLACES])
def test_bad_places_name_file_line_and_key(what: str, change: Callable[[str], str], line: int,
                                           fragment: str) -> None:
    problems = problems_of(change(REGIONS))
    match = [p for p in problems if fragment in p]
    assert match, f"{what}: {fragment!r} not in {problems}"
    assert match[0].startswith(f"cloud.yaml:{line}:"), match[0]


def test_the_regions_example_is_valid_and_clean() -> None:
    plan = regions_plan()
    assert [f for f in run_checks(plan) if f.severity == "error"] == []


# --- the plan -----------------------------------------------------------------------------

def test_each_region_is_its_own_control_plane_sharing_keystone_and_glance() -> None:
    plan = regions_plan()
    phx, rdu = plan.control_planes
    assert (phx.region, rdu.region) == ("phx", "rdu")
    assert phx.nodes_running("keystone") == ("phx-ctl1", "phx-ctl2", "phx-ctl3")
    assert not rdu.runs("keystone") and not rdu.runs("glance-api")
    assert rdu.shared == ("keystone", "glance")
    assert rdu.nodes_running("nova-api") == ("rdu-ctl1", "rdu-ctl2", "rdu-ctl3")
    assert str(rdu.vip("internal").address) == "198.18.5.100"  # type: ignore[union-attr]
    # The cell's own nodes are not in the control plane's Galera.
    galera = phx.cluster("galera")
    assert galera is not None and galera.members == ("phx-ctl1", "phx-ctl2", "phx-ctl3")


def test_cells_have_their_own_conductors_database_and_bus() -> None:
    plan = regions_plan()
    (cell,) = plan.cells
    assert cell.own and cell.computes == ("phx-cmp1", "phx-cmp2")
    cell_nodes = ("phx-cell1-1", "phx-cell1-2", "phx-cell1-3")
    assert cell.conductors == cell.database.members == cell.message_bus.members == cell_nodes
    # rdu declares no cell: its computes are in cell1 on the control plane's clusters.
    (default,) = plan.regions[0].cells
    assert not default.own and default.conductors_on_control_plane
    assert default.computes == ("rdu-cmp1",)
    assert default.database.members == ("rdu-ctl1", "rdu-ctl2", "rdu-ctl3")


def test_zones_list_their_racks_and_compute_members() -> None:
    zones = {z.name: z for z in regions_plan().domains.zones}  # type: ignore[union-attr]
    assert zones["phx-az1"].racks == ("phx-r1",)
    assert zones["phx-az1"].computes == ("phx-cmp1",)
    assert zones["phx-az3"].computes == ()


def test_plan_json_of_a_layered_cloud_and_unchanged_for_one_region() -> None:
    runner = CliRunner()
    data = json.loads(runner.invoke(cli, ["plan", str(EXAMPLES / "regions.yaml"),
                                          "--format", "json"]).output)
    assert data["region"] == "phx" and set(data["regions"]) == {"rdu"}
    assert data["cells"]["cell1"]["computes"] == 2
    assert data["cell0"]["super_conductor"] == ["phx-ctl1", "phx-ctl2", "phx-ctl3"]
    assert data["regions"]["rdu"]["shared_from_home_region"] == ["keystone", "glance"]
    demo = json.loads(runner.invoke(cli, ["plan", str(EXAMPLES / "demo.yaml"),
                                          "--format", "json"]).output)
    assert not {"region", "cells", "regions", "vrrp"} & set(demo)


# --- capacity -----------------------------------------------------------------------------

def big_cell(computes: int, extra: str = "") -> str:
    """The regions example with `computes` compute nodes in phx's cell1."""
    lines = "".join(f"  - {{name: cmp{i}, address: 198.18.{6 + i // 250}.{1 + i % 250}/16, "
                    f"roles: [compute], cell: cell1}}\n" for i in range(computes))
    text = REGIONS.replace("198.18.4.", "198.18.0.").replace("/24", "")
    text = re.sub(r"(address: 198\.18\.\d+\.\d+)", r"\1/16", text)
    return text.replace("vips:\n", lines + "vips:\n", 1) + extra


def test_capacity_loads_follow_the_cloud_size_and_overrides() -> None:
    def cell_bus(text: str) -> float:
        plan = make_plan(parse_cloud(text))
        return next(c.load for c in cluster_loads(plan)
                    if c.scope == "phx/cell1" and c.limit_id == "rabbitmq_messages_per_second")

    # nova-compute: 2 messages every 10 s + 4 every 60 s, per node.
    assert cell_bus(big_cell(100)) == pytest.approx(102 * (2 / 10 + 4 / 60))
    slower = cell_bus(big_cell(100, "capacity: {nova_report_interval_s: 20}\n"))
    assert slower == pytest.approx(102 * (2 / 20 + 4 / 60))


def test_a_cell_message_bus_warns_near_and_errors_past_its_limit() -> None:
    near = findings(make_plan(parse_cloud(big_cell(
        300, "capacity: {rabbitmq_messages_per_second: 90}\n"))), "capacity-limit")
    bus = [f for f in near if f.subject == "phx/cell1" and "messages per second" in f.message]
    assert [f.severity for f in bus] == ["warning"]
    assert "add a cell" in bus[0].fix
    past = findings(make_plan(parse_cloud(big_cell(
        400, "capacity: {rabbitmq_messages_per_second: 50}\n"))), "capacity-limit")
    bus = [f for f in past if f.subject == "phx/cell1" and "messages per second" in f.message]
    assert [f.severity for f in bus] == ["error"]
    assert "against a limit of 50" in bus[0].message


def test_plan_capacity_fits_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = CliRunner().invoke(cli, ["plan", str(EXAMPLES / "regions.yaml"), "--capacity"],
                                env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert any(re.search(r"phx/cell1\s+RabbitMQ msg/s", line) for line in lines)
    assert any(re.search(r"rdu\s+DB frontend conns", line) for line in lines)
    as_json = json.loads(CliRunner().invoke(
        cli, ["plan", str(EXAMPLES / "regions.yaml"), "--capacity", "--format", "json"]).output)
    assert {row["state"] for row in as_json} <= {"ok", "near", "over"}


# --- rules beyond the cases of test_checks ------------------------------------------------

def test_two_of_three_in_one_rack_is_as_bad_as_three() -> None:
    plan = regions_plan(lambda t: t.replace("roles: [controller], cell: cell1, rack: phx-r2",
                                            "roles: [controller], cell: cell1, rack: phx-r1"))
    found = findings(plan, "quorum-in-one-rack")
    subjects = {f.subject for f in found}
    assert subjects == {"phx/cell1/galera", "phx/cell1/rabbitmq"}
    assert any("2 of its 3 voters (phx-cell1-1, phx-cell1-2) are in rack phx-r1" in f.message
               for f in found)
    assert not any("PDU" in f.message for f in found)     # one PDU per rack: said once


def test_a_hardware_class_zone_is_not_a_failure_domain() -> None:
    text = REGIONS.replace("  - {name: phx-az1}", "  - {name: phx-az1, kind: hardware}")
    text = text.replace("zone: phx-az2}", "zone: phx-az1}")
    # Two controllers per "zone" would lose quorum, but az1 is a hardware class.
    assert findings(regions_plan(lambda _: text), "zone-loss-takes-quorum") == []


def test_a_documented_trade_off_turns_the_wan_keystone_into_information() -> None:
    plan = regions_plan(lambda t: t.replace(
        "    keystone_federation: true",
        "    trade_off: one Keystone is simpler; rdu runs read-only during a WAN outage"))
    (found,) = findings(plan, "shared-keystone-over-wan")
    assert found.severity == "info" and "read-only" in found.message


def test_two_regions_pinned_to_one_vrid_on_one_segment_collide() -> None:
    text = REGIONS.replace("198.18.5.100", "198.18.4.200").replace(
        "198.18.5.1", "198.18.4.6").replace("198.18.5.3", "198.18.4.7").replace(
        "    keystone_federation: true",
        "    keystone_federation: true\n    virtual_router_ids: {internal: 7}").replace(
        "monitoring: {enabled: true}",
        "monitoring: {enabled: true}\n  keepalived: {virtual_router_ids: {internal: 7}}")
    (found,) = findings(make_plan(parse_cloud(text)), "vrid-collision")
    assert found.severity == "error" and found.subject == "segment 198.18.4.0/24"
    assert "multi phx internal VIP and multi rdu internal VIP" in found.message


def test_a_pinned_kolla_default_is_a_warning_without_a_neighbour() -> None:
    demo = (EXAMPLES / "demo.yaml").read_text().replace(
        "  monitoring: {enabled: true}",
        "  monitoring: {enabled: true}\n  keepalived: {virtual_router_ids: {internal: 51}}")
    (found,) = findings(make_plan(parse_cloud(demo)), "vrid-collision")
    assert found.severity == "warning" and "Kolla-Ansible's default" in found.message


def test_render_writes_the_vrid_the_plan_chose_around_a_neighbour() -> None:
    demo_text = (EXAMPLES / "demo.yaml").read_text()
    taken = example_plan("demo").router_ids()["internal"]
    text = demo_text + ("segments:\n  - subnet: 198.18.0.0/24\n"
                        f"    neighbours: [{{name: old cloud, virtual_router_ids: [{taken}]}}]\n")
    plan = make_plan(parse_cloud(text))
    moved = plan.router_ids()["internal"]
    assert moved != taken
    conf = next(f for f in render_cloud(plan, complete({}, secret_specs(plan)))
                if f.path == "etc/keepalived/keepalived.conf")
    assert f"virtual_router_id {moved}\n" in str(conf.content)
    assert findings(plan, "vrid-collision") == []


def test_render_refuses_regions_and_cells_with_a_reason(tmp_path: Path) -> None:
    plan = regions_plan()
    with pytest.raises(RenderError, match="2 regions and 1 Nova cell"):
        render_cloud(plan, complete({}, secret_specs(plan)))
    result = CliRunner().invoke(cli, ["render", str(EXAMPLES / "regions.yaml"),
                                      "-o", str(tmp_path / "out")])
    assert result.exit_code == 2


# --- the fast YAML path -------------------------------------------------------------------

def test_fast_and_careful_parsers_agree_on_a_layered_cloud() -> None:
    from hastack.model.cloud import Cloud
    from hastack.model.load import _fast_parse, _parse_yaml, _plain

    fast = _fast_parse(REGIONS)
    assert fast is not None
    assert Cloud.model_validate(fast) == Cloud.model_validate(_plain(_parse_yaml(REGIONS, "x")))


@pytest.mark.parametrize("value", ["0o17", "0x1f", "1_000", ".inf", "1:20", "&a 5", "!!str 5"])
def test_scalars_yaml_versions_read_differently_leave_the_fast_path(value: str) -> None:
    from hastack.model.load import _fast_parse

    assert _fast_parse(f"name: t\nweird: {value}\n") is None


def test_the_fast_path_reads_yaml_1_2_scalars() -> None:
    from hastack.model.load import _fast_parse

    data = _fast_parse("a: 5\nb: -0.5\nc: 1e3\nd: true\ne: ~\nf: 'true'\ng: no\nh: [1, x]\n")
    assert data == {"a": 5, "b": -0.5, "c": 1000.0, "d": True, "e": None, "f": "true",
                    "g": "no", "h": [1, "x"]}
    assert _fast_parse("a: 1\na: 2\n") is None        # duplicate key: the careful path says where


def test_too_many_computes_in_a_cell_says_how_many_cells_they_need() -> None:
    plan = make_plan(parse_cloud(big_cell(50, "capacity: {computes_per_cell: 20}\n")))
    (found,) = [f for f in findings(plan, "capacity-limit") if f.subject == "phx/cell1"]
    assert found.severity == "error"
    assert "52 computes against a limit of 20" in found.message
    assert "fit 4 cells" in found.fix           # 52 / (20 * 0.8) -> 4
    assert "OpenStack for Architects" in found.source and "CERN" in found.source


def test_racks_on_one_pdu_lose_quorum_together() -> None:
    plan = regions_plan(lambda t: re.sub(r"pdu: phx-pdu\d", "pdu: phx-pdu1", t))
    found = {f.subject: f.message for f in findings(plan, "quorum-in-one-rack")}
    assert set(found) == {"phx/galera", "phx/rabbitmq", "phx/cell1/galera",
                          "phx/cell1/rabbitmq"}
    assert "3 of its 3 voters (phx-ctl1, phx-ctl2, phx-ctl3) are in PDU phx-pdu1" in \
        found["phx/galera"]


def test_loading_leaves_the_garbage_collector_as_it_was() -> None:
    import gc

    assert gc.isenabled()
    parse_cloud(REGIONS)
    assert gc.isenabled()
    with pytest.raises(CloudFileError):
        parse_cloud(REGIONS.replace("cell: cell1, rack: phx-r2", "cell: cel1, rack: phx-r2"))
    assert gc.isenabled()


def test_check_prefixes_each_region_and_exits_by_severity(tmp_path: Path) -> None:
    runner = CliRunner()
    clean = runner.invoke(cli, ["check", str(EXAMPLES / "regions.yaml"), "--format", "json"])
    assert clean.exit_code == 0, clean.output
    subjects = {f["subject"] for f in json.loads(clean.output)["findings"]}
    assert {"phx/keepalived", "rdu/keepalived"} <= subjects
    broken = tmp_path / "cloud.yaml"
    broken.write_text(REGIONS.replace("    keystone_federation: true\n", ""))
    result = runner.invoke(cli, ["check", str(broken)])
    assert result.exit_code == 1
    assert "error shared-keystone-over-wan rdu/keystone:" in result.output


def test_the_benchmark_cloud_is_a_clean_design() -> None:
    # bench/plan_check.py times this shape at 10,000 nodes; a small one must stay error-free.
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_generate", EXAMPLES.parent.parent / "bench" / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    plan = make_plan(parse_cloud(generate.cloud_yaml(600, 3, 4)))
    assert [p.region for p in plan.control_planes] == ["phx", "rdu", "ams"]
    assert sum(len(p.cells) for p in plan.control_planes) == 4
    assert [f for f in run_checks(plan) if f.severity == "error"] == []
