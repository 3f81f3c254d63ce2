"""`hastack inventory` and the mapping from the plan to the shipped Ansible roles."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from hastack.cli import cli
from hastack.deploy.ansible.inventory import (
    InventoryError,
    check_inventory,
    inventory_yaml,
    read_inventory,
)
from hastack.deploy.ansible.roles import assign_hosts, not_deployed, role_groups, unplaced_files
from tests.conftest import EXAMPLES, example_plan, render_example

PROTOCOL_ORDER = ["common", "galera", "rabbitmq", "memcached", "redis", "pacemaker",
                  "keystone", "haproxy", "keepalived", "placement", "glance", "neutron", "nova",
                  "heat", "ceilometer"]


def _groups(text: str) -> dict[str, list[str]]:
    data = YAML(typ="safe").load(text)
    return {name: list((group or {}).get("hosts") or {})
            for name, group in data["all"]["children"].items()}


# --- the plan -> roles mapping ---------------------------------------------------------------

def test_demo_controllers_get_every_keepalived_architecture_role_in_protocol_order() -> None:
    hosts = assign_hosts(example_plan("demo"))
    assert set(hosts) == {"ctl1", "ctl2", "ctl3", "cmp1"}
    roles = list(hosts["ctl1"].roles)
    assert roles == [r for r in PROTOCOL_ORDER if r != "pacemaker"]
    assert "galera-health" in hosts["ctl1"].units
    assert hosts["ctl1"].units.index("mariadb") < hosts["ctl1"].units.index("haproxy")
    assert {"mariadb-server", "galera-4", "haproxy", "keepalived"} <= set(hosts["ctl1"].packages)


def test_pacemaker_cloud_gets_corosync_not_keepalived_and_computes_only_nova_compute() -> None:
    hosts = assign_hosts(example_plan("pacemaker"))
    assert "pacemaker" in hosts["ctl1"].roles
    assert "keepalived" not in hosts["ctl1"].roles
    assert {"corosync", "pacemaker"} <= set(hosts["ctl1"].units)
    # The compute node runs nova-compute only (on libvirt, as real hosts do).
    assert hosts["cmp1"].roles == ("common", "nova")
    assert hosts["cmp1"].units == ("nova-compute",)
    assert "libvirt-daemon-system" in hosts["cmp1"].packages


def test_split_roles_put_each_system_on_its_own_hosts() -> None:
    groups = role_groups(example_plan("split-roles"))
    assert groups["galera"] == ("db1", "db2", "db3")
    assert groups["rabbitmq"] == ("mq1", "mq2", "mq3")
    assert groups["haproxy"] == ("lb1", "lb2")
    assert groups["keepalived"] == ("lb1", "lb2")
    assert "keystone" not in assign_hosts(example_plan("split-roles"))["db1"].roles


def test_each_rendered_file_is_placed_by_the_role_of_its_system() -> None:
    plan = example_plan("demo")
    files = render_example("demo")
    placed = assign_hosts(plan, files)["ctl1"].files
    assert {f.path for f in placed["haproxy"]} == {"etc/haproxy/haproxy.cfg",
                                                 "etc/haproxy/tls/public.pem",
                                                 "etc/systemd/system/haproxy.service"}
    assert "etc/keystone/keystone.conf" in {f.path for f in placed["keystone"]}
    assert "var/lib/rabbitmq/.erlang.cookie" in {f.path for f in placed["rabbitmq"]}
    assert "etc/hosts" in {f.path for f in placed["common"]}
    assert {"etc/nova/nova.conf", "etc/nova/gunicorn-api.conf.py",
            "etc/systemd/system/nova-conductor.service"} <= {f.path for f in placed["nova"]}
    assert "etc/neutron/plugins/ml2/ml2_conf.ini" in {f.path for f in placed["neutron"]}
    assert {"etc/heat/heat.conf", "etc/heat/gunicorn-cfn.conf.py"} <= {
        f.path for f in placed["heat"]}
    # cinder.conf, the network agents' files: their processes are not deployed, so neither
    # are their files
    left = {f.path for f in unplaced_files(plan, files) if f.node == "ctl1"}
    assert {"etc/cinder/cinder.conf", "etc/neutron/dhcp_agent.ini"} <= left
    assert not {"etc/haproxy/haproxy.cfg", "etc/nova/nova.conf"} & left


def test_processes_without_a_role_are_reported_not_dropped() -> None:
    missing = {n.process for n in not_deployed(example_plan("demo"))}
    assert {"cinder-api", "cinder-volume", "neutron-l3-agent"} <= missing
    assert not {"nova-api", "heat-engine", "haproxy", "mariadb-galera"} & missing


# --- the inventory ----------------------------------------------------------------------------

def test_inventory_hosts_are_the_nodes_with_their_addresses() -> None:
    text = inventory_yaml(example_plan("demo"))
    data = YAML(typ="safe").load(text)
    assert data["all"]["hosts"] == {"ctl1": {"ansible_host": "198.18.0.11"},
                                    "ctl2": {"ansible_host": "198.18.0.12"},
                                    "ctl3": {"ansible_host": "198.18.0.13"},
                                    "cmp1": {"ansible_host": "198.18.0.31"}}
    groups = _groups(text)
    assert groups["controller"] == ["ctl1", "ctl2", "ctl3"]
    assert groups["galera"] == ["ctl1", "ctl2", "ctl3"]


def test_inventory_groups_split_roles_by_cloud_role_and_by_system() -> None:
    groups = _groups(inventory_yaml(example_plan("split-roles")))
    assert groups["loadbalancer"] == ["lb1", "lb2"]
    assert groups["database"] == ["db1", "db2", "db3"]
    assert groups["keepalived"] == ["lb1", "lb2"]
    assert groups["rabbitmq"] == ["mq1", "mq2", "mq3"]


def test_written_inventory_reads_back_and_matches_its_cloud(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    result = CliRunner().invoke(cli, ["inventory", str(EXAMPLES / "split-roles.yaml"),
                                      "-o", str(path)])
    assert result.exit_code == 0, result.output
    inventory = read_inventory(path)
    assert list(inventory.hosts)[:2] == ["lb1", "lb2"]
    check_inventory(inventory, example_plan("split-roles"))      # no error


def test_inventory_of_another_cloud_is_refused_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(inventory_yaml(example_plan("demo")).replace("ctl3:", "ctl4:"))
    with pytest.raises(InventoryError) as error:
        check_inventory(read_inventory(path), example_plan("demo"))
    lines = error.value.lines()
    assert lines[0].startswith(f"{path}:14: host 'ctl4' is not a node of cloud demo")
    assert any("ctl3 are not in the inventory" in line for line in lines)


def test_ini_inventory_with_a_range_is_read(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("# my servers\n[controller]\nctl[1:3] ansible_user=debian\n\n"
                    "[galera]\nctl1\nctl5 ; a typo\n[all:vars]\nansible_become=true\n")
    inventory = read_inventory(path)
    assert list(inventory.hosts) == ["ctl1", "ctl2", "ctl3", "ctl5"]
    with pytest.raises(InventoryError) as error:
        check_inventory(inventory, example_plan("demo"))
    assert error.value.lines() == [
        f"{path}:7: host 'ctl5' is not a node of cloud demo (its nodes: ctl1, ctl2, ctl3, cmp1)",
        f"{path}: cloud demo's node(s) cmp1 are not in the inventory (`hastack inventory` "
        "writes a complete one)",
        f"{path}:7: group 'galera' lists ctl5, but the plan runs galera on ctl1, ctl2, ctl3 only",
    ]


def test_a_group_that_contradicts_the_plan_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hosts.ini"
    path.write_text("[all]\nlb1\nlb2\napi1\napi2\napi3\ndb1\ndb2\ndb3\nmq1\nmq2\nmq3\n"
                    "net1\nnet2\nnet3\n[galera]\ndb1\napi1\n")
    with pytest.raises(InventoryError, match=r"hosts.ini:18: group 'galera' lists api1"):
        check_inventory(read_inventory(path), example_plan("split-roles"))


def test_unreadable_inventory_is_one_line_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["inventory", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    with pytest.raises(InventoryError, match="cannot read"):
        read_inventory(tmp_path / "nope.yaml")


def test_a_changed_file_restarts_only_the_services_it_configures() -> None:
    from hastack.catalog.hosts import load_host_catalog
    from hastack.deploy.ansible.roles import restarts

    plan, catalog = example_plan("demo"), load_host_catalog()
    files = {f.path: f for f in render_example("demo") if f.node == "ctl1"}
    ctl1 = assign_hosts(plan, files.values())["ctl1"]
    assert restarts(catalog, ctl1, files["etc/haproxy/haproxy.cfg"]) == ("haproxy",)
    assert restarts(catalog, ctl1, files["etc/mysql/my.cnf"]) == ("mariadb", "galera-health")
    assert restarts(catalog, ctl1, files["etc/hastack/galera-health.ini"]) == ("galera-health",)
    assert restarts(catalog, ctl1, files["etc/mysql/hastack-init.sql"]) == ()
    # Redis runs on its own copy, which Sentinel rewrites: a new rendered file restarts nothing.
    assert restarts(catalog, ctl1, files["etc/redis/redis.conf"]) == ()
    assert restarts(catalog, ctl1, files["etc/systemd/system/redis-server.service"]) == (
        "redis-server",)
    assert "etc/systemd/system/mariadb.service" in {f.path for f in ctl1.files["galera"]}
