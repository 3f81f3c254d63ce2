"""`hastack import kolla` on the files the kolla-ansible package ships: its sample
globals.yml (every setting commented out, i.e. Kolla-Ansible's defaults), passwords.yml and
multinode inventory, edited the way an operator edits them. Each finding points at the
globals.yml or inventory line it comes from; the edit that fixes it makes it go away."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from hastack.errors import ImportFileError
from hastack.importers import Imported, upstream_default
from hastack.importers.kolla import import_kolla
from hastack.model import Role, load_cloud
from tests.kolla_files import kolla_share

ENV = {**os.environ, "COLUMNS": "200"}
VIP_LINE = '#kolla_internal_vip_address: "10.10.10.254"'


@pytest.fixture
def sample(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Copies of the shipped inventory, globals.yml (the VIP set, as the quick start asks)
    and passwords.yml."""
    share = kolla_share()
    inventory = tmp_path / "multinode"
    inventory.write_text((share / "ansible" / "inventory" / "multinode").read_text())
    globals_file = tmp_path / "globals.yml"
    text = (share / "etc_examples" / "kolla" / "globals.yml").read_text()
    assert VIP_LINE in text
    globals_file.write_text(text.replace(VIP_LINE, VIP_LINE.lstrip("#")))
    passwords = tmp_path / "passwords.yml"
    passwords.write_text((share / "etc_examples" / "kolla" / "passwords.yml").read_text())
    return inventory, globals_file, passwords


def line_of(path: Path, pattern: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if re.search(pattern, line):
            return number
    raise AssertionError(f"{pattern!r} not in {path}")


def set_global(globals_file: Path, key: str, value: str) -> int:
    """Uncomment (or append) `key: value` as an operator would; its line."""
    text = globals_file.read_text()
    pattern = re.compile(rf"^#?{key}:.*$", re.MULTILINE)
    if pattern.search(text):
        globals_file.write_text(pattern.sub(f"{key}: {value}", text, count=1))
    else:
        globals_file.write_text(text + f"{key}: {value}\n")
    return line_of(globals_file, rf"^{key}:")


def placed(imported: Imported, rule: str) -> list[tuple[str, int | None]]:
    return [(f.origin.file, f.origin.line) for f in imported.findings if f.finding.rule == rule]


def test_the_untouched_sample_needs_its_vip(tmp_path: Path) -> None:
    share = kolla_share()
    globals_file = share / "etc_examples" / "kolla" / "globals.yml"
    with pytest.raises(ImportFileError) as exc:
        import_kolla(share / "ansible" / "inventory" / "multinode", globals_file)
    problem = exc.value.problems[0]
    assert (problem.file, problem.line) == (str(globals_file),
                                            line_of(globals_file, re.escape(VIP_LINE)))


def test_inventory_groups_become_nodes_and_roles(sample: tuple[Path, Path, Path]) -> None:
    inventory, globals_file, _ = sample
    cloud = import_kolla(inventory, globals_file).cloud
    roles = {n.name: set(n.roles) for n in cloud.nodes}
    assert roles["control01"] == {Role.controller, Role.database, Role.messaging}
    assert roles["network01"] == {Role.loadbalancer, Role.network}
    assert roles["compute01"] == {Role.compute} and roles["storage01"] == {Role.storage}
    assert "monitoring01" not in roles and "localhost" not in roles
    assert str(cloud.vips.internal) == "10.10.10.254" and cloud.vips.public is None
    # enable_openstack_core's services, the sample's defaults
    assert set(cloud.services) == {"keystone", "glance", "nova", "neutron", "heat", "horizon"}


def test_default_agent_ha_gives_one_dhcp_agent_and_no_l3_ha(
        sample: tuple[Path, Path, Path]) -> None:
    inventory, globals_file, _ = sample
    imported = import_kolla(inventory, globals_file)
    where = (str(globals_file), line_of(globals_file, r"^#enable_neutron_agent_ha:"))
    assert placed(imported, "dhcp-agents-per-network") == [where]
    assert placed(imported, "l3-ha") == [where]
    assert imported.has_errors()
    # The fix is said in globals.yml's terms, not cloud.yaml's.
    fixes = {f.finding.fix for f in imported.findings if f.finding.rule == "l3-ha"}
    assert all(fix.startswith("enable_neutron_agent_ha: true") for fix in fixes)


def test_enable_neutron_agent_ha_passes(sample: tuple[Path, Path, Path]) -> None:
    inventory, globals_file, _ = sample
    set_global(globals_file, "enable_neutron_agent_ha", "true")
    imported = import_kolla(inventory, globals_file)
    assert placed(imported, "dhcp-agents-per-network") == []
    assert placed(imported, "l3-ha") == []
    assert imported.cloud.settings.neutron.dhcp_agents_per_network == 2


def test_ovn_has_no_l3_or_dhcp_agents_to_judge(sample: tuple[Path, Path, Path]) -> None:
    inventory, globals_file, _ = sample
    set_global(globals_file, "neutron_plugin_agent", '"ovn"')
    imported = import_kolla(inventory, globals_file)
    assert placed(imported, "l3-ha") == placed(imported, "dhcp-agents-per-network") == []


def test_kollas_default_vrid_51(sample: tuple[Path, Path, Path]) -> None:
    inventory, globals_file, _ = sample
    imported = import_kolla(inventory, globals_file)
    found = [f for f in imported.findings if f.finding.rule == "vrrp-vrid-clash"]
    assert [(f.origin.file, f.origin.line, f.finding.severity) for f in found] == [
        (str(globals_file), line_of(globals_file, r"^#keepalived_virtual_router_id:"),
         "warning")]
    assert "Kolla-Ansible's default" in found[0].finding.message


def test_a_chosen_vrid_passes(sample: tuple[Path, Path, Path]) -> None:
    inventory, globals_file, _ = sample
    set_global(globals_file, "keepalived_virtual_router_id", '"77"')
    assert placed(import_kolla(inventory, globals_file), "vrrp-vrid-clash") == []


def test_kollas_health_checks_are_slow(sample: tuple[Path, Path, Path]) -> None:
    inventory, globals_file, _ = sample
    slow, = [f for f in import_kolla(inventory, globals_file).findings
             if f.finding.rule == "haproxy-slow-checks"]
    assert slow.origin.line == line_of(globals_file, r"^#enable_haproxy:")
    assert "10 s" in slow.finding.message and "inter 2000 rise 2 fall 5" in slow.finding.message
    line = set_global(globals_file, "haproxy_health_check", '"check inter 2000 rise 2 fall 3"')
    assert placed(import_kolla(inventory, globals_file), "haproxy-slow-checks") == [
        (str(globals_file), line)]


def test_fast_health_checks_pass(sample: tuple[Path, Path, Path]) -> None:
    inventory, globals_file, _ = sample
    set_global(globals_file, "haproxy_health_check", '"check inter 500 rise 3 fall 2"')
    assert placed(import_kolla(inventory, globals_file), "haproxy-slow-checks") == []


def test_two_database_hosts_lose_quorum_at_the_inventory_group(
        sample: tuple[Path, Path, Path]) -> None:
    inventory, globals_file, _ = sample
    text = inventory.read_text()
    inventory.write_text(text.replace("control02\ncontrol03\n", "control02\n", 1))
    imported = import_kolla(inventory, globals_file)
    galera = [(f.origin.file, f.origin.line) for f in imported.findings
              if f.finding.rule == "quorum-too-small" and f.finding.subject == "galera"]
    assert galera == [(str(inventory), line_of(inventory, r"^\[mariadb:children\]"))]


def test_three_database_hosts_pass(sample: tuple[Path, Path, Path]) -> None:
    inventory, globals_file, _ = sample
    assert placed(import_kolla(inventory, globals_file), "quorum-too-small") == []


def test_monitoring_follows_enable_prometheus(sample: tuple[Path, Path, Path]) -> None:
    inventory, globals_file, _ = sample
    assert placed(import_kolla(inventory, globals_file), "monitoring-required") == [
        (str(globals_file), line_of(globals_file, r"^#enable_prometheus:"))]
    set_global(globals_file, "enable_prometheus", "true")
    assert placed(import_kolla(inventory, globals_file), "monitoring-required") == []


def test_every_finding_names_a_line(sample: tuple[Path, Path, Path]) -> None:
    inventory, globals_file, passwords = sample
    imported = import_kolla(inventory, globals_file, passwords)
    assert imported.findings
    for f in imported.findings:
        assert f.origin.file in (str(inventory), str(globals_file)) and f.origin.line, str(f)
    assert any("keepalived_password is empty" in note for _, note in imported.facts.notes)


def test_defaults_match_what_kolla_ansible_ships() -> None:
    """hastack's table of Kolla-Ansible defaults against the package's own group_vars and
    role defaults."""
    ansible = kolla_share() / "ansible"
    shipped: dict[str, object] = {}
    for path in [*sorted((ansible / "group_vars" / "all").glob("*.yml")),
                 ansible / "roles" / "haproxy-config" / "defaults" / "main.yml",
                 ansible / "roles" / "loadbalancer" / "defaults" / "main.yml",
                 ansible / "roles" / "neutron" / "defaults" / "main.yml"]:
        shipped.update(YAML(typ="safe").load(path.read_text()) or {})
    for key in ("keepalived_virtual_router_id", "enable_neutron_agent_ha", "enable_prometheus",
                "dhcp_agents_per_network", "max_l3_agents_per_router", "haproxy_health_check",
                "keepalived_traffic_mode", "neutron_plugin_agent", "enable_mariadb",
                "enable_haproxy", "enable_cinder", "enable_openstack_core", "network_interface"):
        assert str(shipped[key]).lower() == str(upstream_default("kolla-ansible", key)).lower(), \
            key


def test_command_line(sample: tuple[Path, Path, Path], tmp_path: Path) -> None:
    inventory, globals_file, passwords = sample
    cloud_file = tmp_path / "cloud.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "hastack.cli", "import", "kolla", "--inventory", str(inventory),
         "--globals", str(globals_file), "--passwords", str(passwords), "-o", str(cloud_file),
         "--long"], capture_output=True, text=True, env=ENV, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    agent_ha = line_of(globals_file, r"^#enable_neutron_agent_ha:")
    assert f"{globals_file}:{agent_ha}: error l3-ha neutron-l3-agent:" in result.stdout
    assert "fix:" in result.stdout and "assumed:" in result.stdout
    cloud = load_cloud(cloud_file)
    assert cloud.settings.neutron.l3_ha is False and len(cloud.nodes) == 7
