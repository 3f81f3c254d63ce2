"""The HA linter: every rule fires on a cloud that breaks it and stays quiet on one that
does not; the clean examples have no errors; the CLI's exit status follows the severities."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

from hastack.checks import all_rules, has_errors, run_checks
from hastack.model import parse_cloud
from hastack.plan import make_plan
from tests.conftest import EXAMPLES

ALL_SERVICES = ["keystone", "glance", "nova", "neutron", "cinder", "horizon", "heat",
                "ceilometer", "swift", "sahara", "trove"]


def base() -> dict[str, Any]:
    """A clean cloud: three controllers, three storage nodes, every service, monitoring on."""
    return {
        "name": "t",
        "architecture": "keepalived",
        "nodes": [{"name": f"ctl{i}", "address": f"198.18.0.1{i}", "roles": ["controller"]}
                  for i in (1, 2, 3)]
        + [{"name": f"st{i}", "address": f"198.18.0.2{i}", "roles": ["storage"]}
           for i in (1, 2, 3)],
        "vips": {"internal": "198.18.0.100"},
        "services": list(ALL_SERVICES),
        "settings": {"monitoring": {"enabled": True}},
    }


def findings_of(cloud: dict[str, Any], rule_id: str) -> list[Any]:
    plan = make_plan(parse_cloud(json.dumps(cloud)))
    return [f for f in run_checks(plan) if f.rule == rule_id]


def setting(section: str, **values: Any) -> Callable[[dict[str, Any]], None]:
    def change(cloud: dict[str, Any]) -> None:
        cloud["settings"].setdefault(section, {}).update(values)
    return change


def nodes(count: int, roles: tuple[str, ...] = ("controller",)
          ) -> Callable[[dict[str, Any]], None]:
    def change(cloud: dict[str, Any]) -> None:
        cloud["nodes"] = [n for n in cloud["nodes"] if "controller" not in n["roles"]]
        cloud["nodes"] += [{"name": f"c{i}", "address": f"198.18.0.{50 + i}",
                            "roles": list(roles)} for i in range(count)]
    return change


def add_nodes(role: str, count: int) -> Callable[[dict[str, Any]], None]:
    def change(cloud: dict[str, Any]) -> None:
        cloud["nodes"] += [{"name": f"{role[:3]}{i}", "address": f"198.18.0.{150 + i}",
                            "roles": [role]} for i in range(count)]
    return change


def both(*changes: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def change(cloud: dict[str, Any]) -> None:
        for c in changes:
            c(cloud)
    return change


def no_change(cloud: dict[str, Any]) -> None:
    return None


def controllers_in(key: str, places: list[str], declare: str) -> Callable[[dict[str, Any]], None]:
    """Put ctl1..ctl3 in the given racks or zones (declared under `declare`)."""
    def change(cloud: dict[str, Any]) -> None:
        cloud[declare] = [{"name": p} for p in dict.fromkeys(places)]
        if declare == "racks":
            for rack in cloud[declare]:
                rack["pdu"] = f"pdu-{rack['name']}"
        for node, place in zip(cloud["nodes"][:3], places, strict=True):
            node[key] = place
    return change


def second_region(**region: Any) -> Callable[[dict[str, Any]], None]:
    def change(cloud: dict[str, Any]) -> None:
        cloud["nodes"] += [{"name": f"rdu{i}", "address": f"198.18.1.1{i}", "region": "rdu",
                            "roles": ["controller"]} for i in (1, 2, 3)]
        cloud["regions"] = [{"name": "rdu", "vips": {"internal": "198.18.1.100"},
                             "shares": ["keystone"], **region}]
    return change


def vrid_pin(vrid: int | None) -> Callable[[dict[str, Any]], None]:
    """A Kolla-Ansible cloud at its default VRID 51 on the segment; our VIP pinned or not."""
    def change(cloud: dict[str, Any]) -> None:
        cloud["segments"] = [{"subnet": "198.18.0.0/24",
                              "neighbours": [{"name": "kolla cloud"}]}]
        if vrid is not None:
            setting("keepalived", virtual_router_ids={"internal": vrid})(cloud)
    return change


# rule -> (change that breaks it, expected severity, subject, change that keeps it quiet)
CASES: dict[str, tuple[Callable[[dict[str, Any]], None], str, str,
                       Callable[[dict[str, Any]], None]]] = {
    "quorum-in-one-rack": (controllers_in("rack", ["r1", "r1", "r2"], "racks"), "error",
                           "galera", controllers_in("rack", ["r1", "r2", "r3"], "racks")),
    "zone-loss-takes-quorum": (controllers_in("zone", ["az1", "az1", "az2"], "zones"), "error",
                               "rabbitmq",
                               controllers_in("zone", ["az1", "az2", "az3"], "zones")),
    "shared-keystone-over-wan": (second_region(), "error", "rdu/keystone",
                                 second_region(keystone_federation=True)),
    "capacity-limit": (both(add_nodes("compute", 3),
                            lambda c: c.update(capacity={"computes_per_cell": 2})),
                       "error", "RegionOne/cell1", add_nodes("compute", 3)),
    "vrid-collision": (vrid_pin(51), "error", "segment 198.18.0.0/24", vrid_pin(None)),
    "quorum-too-small": (nodes(2), "error", "galera", no_change),
    "quorum-even": (nodes(4), "warning", "rabbitmq", no_change),
    "single-node-role": (add_nodes("loadbalancer", 1), "error", "loa0",
                         add_nodes("loadbalancer", 2)),
    "cinder-volume-lvm": (setting("cinder", backend="lvm"), "error", "cinder-volume",
                          setting("cinder", backend="nfs")),
    "lbaas-no-failover": (setting("neutron", lbaas=True), "warning", "neutron-lbaas-agent",
                          setting("neutron", lbaas=False)),
    "dhcp-agents-per-network": (setting("neutron", dhcp_agents_per_network=1), "error",
                                "neutron-dhcp-agent",
                                setting("neutron", dhcp_agents_per_network=3)),
    "l3-ha": (setting("neutron", l3_ha=False), "error", "neutron-l3-agent",
              setting("neutron", l3_ha=True, min_l3_agents_per_router=2)),
    "galera-multiple-writers": (setting("galera", writers=3), "error", "mariadb-galera",
                                setting("galera", writers=1)),
    "active-passive-without-fencing": (setting("nova", hypervisor="vmware"), "error", "pacemaker",
                                       both(setting("nova", hypervisor="vmware"),
                                            setting("pacemaker", fencing="lab"))),
    "vrrp-split-brain": (no_change, "warning", "keepalived",
                         both(lambda c: c.update(architecture="pacemaker"),
                              setting("pacemaker", fencing="lab"))),
    "ceilometer-central-uncoordinated": (setting("ceilometer", coordination="none"), "error",
                                         "ceilometer-central", setting("ceilometer",
                                                                       coordination="redis")),
    "vmware-nova-compute": (setting("nova", hypervisor="vmware"), "warning", "nova-compute",
                            setting("nova", hypervisor="kvm")),
    "full-restart-recovery": (no_change, "warning", "galera",
                              setting("recovery", automatic=True)),
    "monitoring-required": (setting("monitoring", enabled=False), "warning", "monitoring",
                            no_change),
    "rabbitmq-mirrored-queues": (setting("rabbitmq", queues="mirrored"), "warning", "rabbitmq",
                                 setting("rabbitmq", queues="quorum")),
    "rabbitmq-partition-never-heals": (setting("rabbitmq", partition_handling="pause_minority"),
                                       "warning", "rabbitmq",
                                       setting("rabbitmq", partition_handling="autoheal")),
    "galera-arbitrator-on-member": (setting("galera", arbitrator="ctl1"), "warning", "ctl1",
                                    both(add_nodes("compute", 1),
                                         setting("galera", arbitrator="com0"))),
    "swift-replicas": (lambda c: c.update(nodes=[n for n in c["nodes"] if n["name"] != "st3"]),
                       "warning", "swift-ring", no_change),
    "public-vip-without-tls": (both(lambda c: c["vips"].update(public="198.18.0.101"),
                                    setting("tls", public=False)),
                               "warning", "vips.public",
                               lambda c: c["vips"].update(public="198.18.0.101")),
}


def test_every_rule_has_a_case() -> None:
    assert {r.id for r in all_rules()} == set(CASES)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fires_when_broken(rule_id: str) -> None:
    breaks, severity, subject, _ = CASES[rule_id]
    cloud = copy.deepcopy(base())
    breaks(cloud)
    found = findings_of(cloud, rule_id)
    assert found, f"{rule_id} did not fire"
    assert any(f.severity == severity and f.subject == subject for f in found), found
    for f in found:
        assert f.message and f.fix and f.source


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_quiet_when_respected(rule_id: str) -> None:
    _, _, _, keeps = CASES[rule_id]
    cloud = copy.deepcopy(base())
    keeps(cloud)
    assert findings_of(cloud, rule_id) == []


def test_min_l3_agents_above_network_nodes() -> None:
    cloud = base()
    cloud["nodes"].append({"name": "net1", "address": "198.18.0.41", "roles": ["network"]})
    cloud["nodes"].append({"name": "net2", "address": "198.18.0.42", "roles": ["network"]})
    setting("neutron", min_l3_agents_per_router=3, max_l3_agents_per_router=3)(cloud)
    found = findings_of(cloud, "l3-ha")
    assert any("only 2 L3 agent(s)" in f.message for f in found)


def test_max_l3_agents_below_two() -> None:
    cloud = base()
    setting("neutron", max_l3_agents_per_router=1, min_l3_agents_per_router=1)(cloud)
    messages = " ".join(f.message for f in findings_of(cloud, "l3-ha"))
    assert "max_l3_agents_per_router is 1" in messages


def test_arbitrator_makes_two_galera_nodes_a_quorum() -> None:
    cloud = base()
    nodes(2)(cloud)
    cloud["nodes"].append({"name": "arb", "address": "198.18.0.90", "roles": ["compute"]})
    setting("galera", arbitrator="arb")(cloud)
    subjects = {f.subject for f in findings_of(cloud, "quorum-too-small")}
    assert "galera" not in subjects
    assert "rabbitmq" in subjects


@pytest.mark.parametrize("example", ["demo", "pacemaker", "split-roles"])
def test_clean_examples_have_no_errors(example: str) -> None:
    from tests.conftest import example_plan

    findings = run_checks(example_plan(example))
    assert not has_errors(findings), [f for f in findings if f.severity == "error"]


def test_broken_example_breaks_many_rules() -> None:
    from tests.conftest import example_plan

    rules = {f.rule for f in run_checks(example_plan("broken")) if f.severity == "error"}
    assert {"quorum-too-small", "galera-multiple-writers", "cinder-volume-lvm",
            "dhcp-agents-per-network", "l3-ha", "active-passive-without-fencing",
            "ceilometer-central-uncoordinated"} <= rules


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hastack.cli", *args],
                          capture_output=True, text=True)


def test_cli_check_exit_status_and_json_shape() -> None:
    broken = _cli("check", str(EXAMPLES / "broken.yaml"), "--format", "json")
    assert broken.returncode == 1
    findings = json.loads(broken.stdout)["findings"]
    assert findings and set(findings[0]) >= {"rule", "severity", "subject", "message", "fix"}
    clean = _cli("check", str(EXAMPLES / "demo.yaml"), "--format", "json")
    assert clean.returncode == 0
    assert all(f["severity"] != "error" for f in json.loads(clean.stdout)["findings"])


def test_cli_lists_rules() -> None:
    listed = json.loads(_cli("check", "--rules", "--format", "json").stdout)
    assert {r["rule"] for r in listed} == set(CASES)


FINDING_LINE = re.compile(r"^(error|warning|info) [a-z0-9-]+ \S+: \S")


def _check_text(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, list[str]]:
    """`hastack check` as an 80-column terminal shows it (styles off, so text compares)."""
    import hastack.cli

    monkeypatch.setattr(hastack.cli, "console",
                        Console(width=80, force_terminal=True, color_system=None))
    result = CliRunner().invoke(hastack.cli.cli, ["check", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output.splitlines()


def test_cli_check_prints_one_line_per_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import example_plan

    findings = run_checks(example_plan("broken"))
    code, lines = _check_text(monkeypatch, str(EXAMPLES / "broken.yaml"))
    assert code == 1
    assert lines[:-1] == [f"{f.severity} {f.rule} {f.subject}: {f.message}" for f in findings]
    assert all(FINDING_LINE.match(line) for line in lines[:-1])
    assert any(len(line) > 80 for line in lines)     # long messages run on, never wrapped
    errors = sum(f.severity == "error" for f in findings)
    assert lines[-1].startswith(f"{errors} errors, ") and "--long" in lines[-1]
    assert not any(ch in "\n".join(lines) for ch in "│┃─━")   # no table
    assert "fix:" not in "\n".join(lines)


def test_cli_check_long_adds_fix_and_source(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import example_plan

    findings = run_checks(example_plan("broken"))
    code, lines = _check_text(monkeypatch, str(EXAMPLES / "broken.yaml"), "--long")
    assert code == 1
    headers = [line for line in lines if FINDING_LINE.match(line)]
    assert len(headers) == len(findings)
    details = [line for line in lines[:-1] if not FINDING_LINE.match(line)]
    assert all(line.startswith("    ") and len(line) <= 80 for line in details), details
    text = "\n".join(lines)
    assert text.count("    fix: ") == len(findings)
    assert text.count("    source: ") == len(findings)
    assert "OpenStack HA Guide (odd node counts >= 3)" in " ".join(text.split())


def test_cli_check_clean_and_no_findings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    code, lines = _check_text(monkeypatch, str(EXAMPLES / "demo.yaml"))
    assert code == 0
    assert all(FINDING_LINE.match(line) and line.startswith("warning ") for line in lines[:-1])
    assert lines[-1].startswith("0 errors, ")
    cloud = base()
    cloud["settings"]["recovery"] = {"automatic": True}
    cloud["architecture"] = "pacemaker"
    cloud["settings"]["pacemaker"] = {"fencing": "lab"}
    path = tmp_path / "clean.yaml"
    path.write_text(json.dumps(cloud))
    code, lines = _check_text(monkeypatch, str(path))
    assert (code, lines) == (0, ["no findings"])
