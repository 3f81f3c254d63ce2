"""The catalog and the planner: every seed process is catalogued, placement follows roles and
host groups, modes and strategies follow the architecture, JSON has the documented shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hastack.catalog import load_catalog
from hastack.model import parse_cloud
from hastack.plan import make_plan
from tests.conftest import EXAMPLES, example_plan

SEED_000_PROCESSES = {
    "mariadb-galera", "rabbitmq", "haproxy", "mongodb", "memcached", "redis", "keystone",
    "glance-api", "glance-registry", "nova-api", "nova-cert", "nova-compute", "nova-scheduler",
    "nova-conductor", "nova-novncproxy", "cinder-api", "cinder-scheduler", "cinder-volume",
    "cinder-backup", "neutron-server", "neutron-dhcp-agent", "neutron-l3-agent",
    "neutron-metadata-agent", "neutron-lbaas-agent", "neutron-openvswitch-agent",
    "neutron-metering-agent", "httpd", "ceilometer-api", "ceilometer-central",
    "ceilometer-compute", "ceilometer-alarm-notifier", "ceilometer-alarm-evaluator",
    "ceilometer-notification", "heat-api", "heat-api-cfn", "heat-api-cloudwatch", "heat-engine",
    "swift-proxy", "swift-account", "swift-container", "swift-object", "sahara-api",
    "sahara-engine", "trove-api", "trove-taskmanager", "trove-conductor",
}


def test_catalog_covers_every_process_of_the_seed_table() -> None:
    names = {p.process for p in load_catalog().processes}
    assert names >= SEED_000_PROCESSES
    assert len(names) >= 50


def test_catalog_records_where_seeds_disagree() -> None:
    metadata = load_catalog().process("neutron-metadata-agent")
    by_seed = {s.seed: s for s in metadata.seeds}
    assert by_seed["000"].mode == "A/A"
    assert by_seed["004"].mode == "A/P"
    # and says which one each architecture uses
    keepalived = example_plan("demo").process("neutron-metadata-agent")
    pacemaker = example_plan("pacemaker").process("neutron-metadata-agent")
    assert keepalived is not None and keepalived.mode == "A/A"
    assert pacemaker is not None and (pacemaker.mode, pacemaker.strategy) == ("A/P", "pacemaker")


def test_collapsed_controllers_run_everything() -> None:
    plan = example_plan("demo")
    for process in ("mariadb-galera", "rabbitmq", "haproxy", "keepalived", "memcached",
                    "keystone", "neutron-l3-agent"):
        assert plan.nodes_running(process) == ("ctl1", "ctl2", "ctl3"), process
    assert plan.nodes_running("nova-compute") == ("cmp1",)
    assert "nova-compute" not in {process for process, _ in plan.unplaced}


def test_host_groups_split_the_controller() -> None:
    plan = example_plan("split-roles")
    assert plan.nodes_running("haproxy") == ("lb1", "lb2")
    assert plan.nodes_running("mariadb-galera") == ("db1", "db2", "db3")
    assert plan.nodes_running("rabbitmq") == ("mq1", "mq2", "mq3")
    assert plan.nodes_running("neutron-dhcp-agent") == ("net1", "net2", "net3")
    assert plan.nodes_running("keystone") == ("api1", "api2", "api3")
    vip = plan.vip("internal")
    assert vip is not None and vip.candidates == ("lb1", "lb2")


def test_galera_frontend_is_single_writer_through_the_internal_vip() -> None:
    plan = example_plan("demo")
    galera = [f for f in plan.frontends if f.single_writer]
    assert len(galera) == 1
    assert galera[0].port == 3306 and galera[0].vips == ("internal",)
    assert galera[0].backends[0] == "ctl1"


def test_pacemaker_architecture_moves_vips_and_runs_active_passive() -> None:
    plan = example_plan("pacemaker")
    assert all(v.mechanism == "pacemaker" for v in plan.vips)
    assert not plan.runs("keepalived")
    assert plan.cluster("corosync") is not None
    metadata = plan.process("neutron-metadata-agent")
    assert metadata is not None and metadata.active_node == "ctl1"


def test_lvm_cinder_and_vmware_compute_become_active_passive() -> None:
    text = (EXAMPLES / "demo.yaml").read_text().replace("backend: ceph", "backend: lvm") \
        .replace("hypervisor: kvm", "hypervisor: vmware")
    plan = make_plan(parse_cloud(text))
    for name in ("cinder-volume", "nova-compute"):
        process = plan.process(name)
        assert process is not None and (process.mode, process.strategy) == ("A/P", "pacemaker")
    # A/P under Pacemaker brings a Corosync cluster to the keepalived architecture.
    assert plan.cluster("corosync") is not None


def test_arbitrator_votes_in_galera() -> None:
    text = (EXAMPLES / "broken.yaml").read_text().replace("writers: 2}",
                                                           "writers: 1, arbitrator: cmp1}")
    plan = make_plan(parse_cloud(text))
    galera = plan.cluster("galera")
    assert galera is not None
    assert galera.members == ("ctl1", "ctl2") and galera.arbitrators == ("cmp1",)
    assert galera.voters == 3
    assert plan.nodes_running("garbd") == ("cmp1",)


def test_plan_json_shape_from_the_cli() -> None:
    result = subprocess.run([sys.executable, "-m", "hastack.cli", "plan",
                             str(EXAMPLES / "demo.yaml"), "--format", "json"],
                            capture_output=True, text=True, check=True)
    data = json.loads(result.stdout)
    assert set(data) >= {"processes", "vips"}
    first = data["processes"][0]
    assert set(first) >= {"service", "process", "mode", "strategy", "nodes"}
    assert data["vips"]["internal"]["address"] == "198.18.0.100"
    keystone = next(p for p in data["processes"] if p["process"] == "keystone")
    assert keystone["mode"] == "A/A" and keystone["strategy"] == "haproxy-vip"
    assert any("198.18.0.100:5000" in g for g in keystone["guards"])


def test_plan_text_lists_vips_and_unplaced(tmp_path: Path) -> None:
    without_compute = "\n".join(line for line in
                                (EXAMPLES / "demo.yaml").read_text().splitlines()
                                if "roles: [compute]" not in line)
    (tmp_path / "cloud.yaml").write_text(without_compute + "\n")
    result = subprocess.run([sys.executable, "-m", "hastack.cli", "plan",
                             str(tmp_path / "cloud.yaml")], capture_output=True, text=True,
                            check=True, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert "198.18.0.100" in result.stdout
    assert "not placed: nova-compute (no node has role compute)" in result.stdout


def test_active_passive_on_storage_nodes_joins_the_pacemaker_cluster() -> None:
    text = (EXAMPLES / "demo.yaml").read_text().replace("backend: ceph", "backend: lvm") \
        .replace("  - {name: ctl3, address: 198.18.0.13, roles: [controller]}\n",
                 "  - {name: ctl3, address: 198.18.0.13, roles: [controller]}\n"
                 "  - {name: st1, address: 198.18.0.21, roles: [storage]}\n"
                 "  - {name: st2, address: 198.18.0.22, roles: [storage]}\n")
    plan = make_plan(parse_cloud(text))
    assert plan.nodes_running("cinder-volume") == ("st1", "st2")
    corosync = plan.cluster("corosync")
    assert corosync is not None
    assert corosync.members == ("ctl1", "ctl2", "ctl3", "st1", "st2")
