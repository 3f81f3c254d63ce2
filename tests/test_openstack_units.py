"""The OpenStack services behind Keystone, without a lab: what is rendered for them (gunicorn
per API, Placement, Nova's compute driver and schema commands, ML2), what the lab runs on
which node, and how health reads Nova's services and HAProxy's view of each API."""

from __future__ import annotations

import configparser
import importlib.util
import sys
from pathlib import Path

import pytest

from hastack.deploy import health
from hastack.deploy.base import ServiceState
from hastack.deploy.health import Kind, NodeView
from hastack.deploy.lab.programs import programs_on
from hastack.deploy.systems import openstack
from hastack.deploy.systems.loadbalancing import HAProxyView, ServerState
from hastack.deploy.systems.openstack import SERVICE_DOWN_TIME_S, expand, parse_services
from hastack.errors import LabError
from hastack.render import RenderContext, render_cloud, secret_specs, wsgi
from hastack.render.budget import make_budget
from hastack.render.secrets import complete
from tests.conftest import example_plan
from tests.fake_node import World


def _ini(text: str) -> configparser.ConfigParser:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(text)
    return ini


def _rendered(path: str, node: str = "ctl1") -> configparser.ConfigParser:
    plan = example_plan("demo")
    for f in render_cloud(plan, complete({}, secret_specs(plan))):
        if f.node == node and f.path == path:
            return _ini(str(f.content))
    raise AssertionError(f"{path} not rendered for {node}")


# --- render ----------------------------------------------------------------------------------


def test_every_api_gets_a_gunicorn_on_each_of_its_nodes_on_its_catalog_port() -> None:
    plan = example_plan("demo")
    files = wsgi.render(RenderContext(plan, make_budget(plan.cloud), {}))
    for app in wsgi.APPS:
        mine = [f for f in files if f.path == app.conf]
        assert {f.node for f in mine} == set(plan.nodes_running(app.process)), app.program
        for f in mine:
            settings: dict[str, object] = {}
            exec(compile(str(f.content), f.path, "exec"), {}, settings)  # gunicorn reads it so
            port = plan.port(app.process, app.port_name)
            assert settings["bind"] == [f"{plan.cloud.node(f.node).ip}:{port}"]
            assert settings["control_socket"] == f"/run/{app.program}/gunicorn.ctl"
    assert len({a.conf for a in wsgi.APPS}) == len(wsgi.APPS)      # one file per program


@pytest.mark.validator
def test_every_wsgi_module_is_one_the_installed_wheel_ships() -> None:
    for app in wsgi.APPS:
        package = app.module.split(".")[0]
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed (the lab extra)")
        assert importlib.util.find_spec(app.module) is not None, app.module


@pytest.mark.validator
def test_gunicorn_accepts_every_rendered_setting() -> None:
    """Each file as gunicorn loads a --config file (its settings' own validators): an
    unknown setting or a bad value fails here, not on the node."""
    config = pytest.importorskip("gunicorn.config")
    plan = example_plan("demo")
    for f in wsgi.render(RenderContext(plan, make_budget(plan.cloud), {})):
        settings: dict[str, object] = {}
        exec(compile(str(f.content), f.path, "exec"), {}, settings)
        cfg = config.Config()
        for key, value in settings.items():
            assert key in cfg.settings, f"{f.path}: {key} is not a gunicorn setting"
            cfg.set(key, value)                    # raises on a value gunicorn rejects
        assert cfg.preload_app and cfg.workers >= 1


def test_placement_has_its_own_database_and_no_bus() -> None:
    ini = _rendered("etc/placement/placement.conf")
    assert "/placement?" in ini["placement_database"]["connection"]
    assert "198.18.0.100" in ini["placement_database"]["connection"]      # the VIP
    assert ini["api"]["auth_strategy"] == "keystone"
    assert "transport_url" not in ini["DEFAULT"]


def test_nova_reaches_placement_through_its_frontend_and_computes_run_the_cloud_hypervisor(
) -> None:
    controller = _rendered("etc/nova/nova.conf")
    assert controller["placement"]["endpoint_override"] == "http://198.18.0.100:8778"
    assert controller["scheduler"]["discover_hosts_in_cells_interval"] == "30"
    assert "compute_driver" not in controller["DEFAULT"]
    compute = _rendered("etc/nova/nova.conf", "cmp1")
    assert compute["DEFAULT"]["compute_driver"] == "libvirt.LibvirtDriver"
    assert compute["libvirt"]["virt_type"] == "kvm"
    assert "username" not in controller["glance"]          # the user's token, not nova's


def test_ml2_gives_vxlan_project_networks_and_the_flat_provider_network() -> None:
    ml2 = _rendered("etc/neutron/plugins/ml2/ml2_conf.ini")
    assert ml2["ml2"]["mechanism_drivers"] == "openvswitch"
    assert ml2["ml2"]["project_network_types"] == "vxlan"
    assert ml2["ml2_type_flat"]["flat_networks"] == "provider"


# --- the lab's programs ----------------------------------------------------------------------


def test_controllers_run_the_apis_and_rpc_services_and_the_compute_node_nova_compute() -> None:
    plan = example_plan("demo")
    controller = {p.name for p in programs_on(plan, "ctl1")}
    assert {"placement-api", "glance-api", "nova-api", "nova-metadata-api", "nova-conductor",
            "nova-scheduler", "neutron-api", "neutron-rpc-server"} <= controller
    assert "nova-compute" not in controller
    compute = {p.name: p for p in programs_on(plan, "cmp1")}
    assert "nova-compute" in compute
    assert "nova-compute-lab.conf" in compute["nova-compute"].command


# --- schema commands -------------------------------------------------------------------------


def test_schema_arguments_name_values_of_the_rendered_file() -> None:
    ini = _ini("[database]\nconnection = mysql+pymysql://nova:pw@198.18.0.100/nova?charset=utf8\n"
               "[DEFAULT]\ntransport_url = rabbit://a@x:5672,a@y:5672/\n")
    assert expand(("map_cell0", "--database_connection", "{database.connection@nova_cell0}"),
                  ini) == ["map_cell0", "--database_connection",
                           "mysql+pymysql://nova:pw@198.18.0.100/nova_cell0?charset=utf8"]
    assert expand(("{DEFAULT.transport_url}",), ini) == ["rabbit://a@x:5672,a@y:5672/"]
    with pytest.raises(LabError, match=r"\[api_database\] connection is not in the rendered"):
        expand(("{api_database.connection}",), ini)


def test_every_nova_schema_command_expands_on_the_rendered_nova_conf() -> None:
    ini = _rendered("etc/nova/nova.conf")
    nova = openstack.BY_NAME["nova"]
    for args in nova.schema:
        assert not any(a.startswith("{") for a in expand(args, ini)), args


# --- health ----------------------------------------------------------------------------------


def test_nova_services_are_up_while_their_last_report_is_recent() -> None:
    down = str(SERVICE_DOWN_TIME_S)
    services = parse_services("nova", [["ctl1", "nova-conductor", "0", "4", down],
                                       ["cmp1", "nova-compute", "0", str(SERVICE_DOWN_TIME_S + 1),
                                        down],
                                       ["ctl2", "nova-scheduler", "1", "NULL", down]])
    assert [(s.host, s.up) for s in services] == [("ctl1", True), ("cmp1", False),
                                                  ("ctl2", False)]
    assert services[2].disabled and services[2].age_s is None


def test_a_heat_engine_counts_by_its_youngest_row() -> None:
    """A restarted heat-engine reports under a new engine id; the rows of its earlier life
    stay until Heat cleans them up, and must not make the host look down."""
    services = parse_services("heat", [["ctl1", "heat-engine", "0", "500", "120"],
                                       ["ctl1", "heat-engine", "0", "3", "120"],
                                       ["ctl2", "heat-engine", "0", "121", "120"]])
    assert [(s.host, s.up, s.age_s) for s in services] == [("ctl1", True, 3),
                                                           ("ctl2", False, 121)]


def test_a_running_api_that_haproxy_finds_down_is_an_anomaly_and_a_stopped_one_is_not() -> None:
    world = World(example_plan("demo"), {}, Path("/nonexistent"))
    site = world.site
    running = {"nova-api": ServiceState.RUNNING, "nova-metadata-api": ServiceState.RUNNING}
    nodes = {"ctl1": NodeView(True, running), "ctl2": NodeView(True, running),
             "ctl3": NodeView(True, {"nova-api": ServiceState.STOPPED,
                                     "nova-metadata-api": ServiceState.STOPPED})}
    frontend = next(f for f in site.plan.frontends if f.process == "nova-api")
    view = HAProxyView("ctl1", {frontend.name: {"ctl1": ServerState("UP", False),
                                                "ctl2": ServerState("DOWN", False),
                                                "ctl3": ServerState("DOWN", False)}})
    found = health._api_backend_anomalies(site, nodes, view)
    assert [(a.kind, a.node) for a in found] == [(Kind.API_BACKEND, "ctl2")]
    assert found[0].message == f"HAProxy {frontend.name}: ctl2 is DOWN"


def test_an_rpc_service_that_stopped_reporting_is_named_with_its_last_report() -> None:
    world = World(example_plan("demo"), {}, Path("/nonexistent"))
    nodes = {n: NodeView(True, {}) for n in ("ctl1", "ctl2", "ctl3", "cmp1")}
    rows = [[n, b, "0", "3", "60"] for b in openstack.RPC_BINARIES
            for n in world.plan.nodes_running(b)]
    rows = [r if r[:2] != ["cmp1", "nova-compute"] else ["cmp1", "nova-compute", "0", "75", "60"]
            for r in rows]
    engines = [[n, "heat-engine", "0", "5", "120"] for n in ("ctl1", "ctl3")]
    services = {"nova": parse_services("nova", rows), "heat": parse_services("heat", engines)}
    found = health._rpc_service_anomalies(world.site, nodes, services)
    assert [a.message for a in found] == [
        "Nova: nova-compute on cmp1 is down (last report 75 s ago)",
        "Heat: heat-engine on ctl2 is not registered"]
    nodes["cmp1"] = NodeView(False, {})                   # a dead node is NODE_DOWN's to say
    nodes["ctl2"] = NodeView(False, {})
    assert health._rpc_service_anomalies(world.site, nodes, services) == []
    assert [a.message for a in health._rpc_service_anomalies(
        world.site, nodes, {"heat": None})] == ["Heat: no Galera member answers for its services"]


def test_processes_retired_upstream_are_skipped_with_when_and_what_replaced_them() -> None:
    from hastack.deploy.lab.programs import skipped

    reasons = {process: reason for process, _, reason in skipped(example_plan("demo"))}
    assert reasons["nova-cert"] == ("retired upstream (removed in Nova 16.0.0, Pike, with the "
                                    "EC2 API it served)")
    assert reasons["glance-registry"].startswith("retired upstream (removed in Glance 20.0.0")
    assert reasons["cinder-scheduler"] == "this OpenStack process is not run by the lab yet"
    assert "heat-engine" not in reasons


def test_tools_run_through_a_link_without_spaces_when_the_venv_path_has_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(example_plan("demo"), {}, Path("/nonexistent"))
    node = world.nodes["ctl1"]
    monkeypatch.setattr(sys, "executable", "/srv/my clone/.venv/bin/python")
    assert openstack.tool_argv(node, "neutron-db-manage") == [
        f"{openstack.VENV_LINK}/bin/python", f"{openstack.VENV_LINK}/bin/neutron-db-manage"]
    assert ("ctl1", "run", f"ln -sfn '/srv/my clone/.venv' {openstack.VENV_LINK}") in world.log
    monkeypatch.setattr(sys, "executable", "/opt/hastack/.venv/bin/python")
    assert openstack.tool_argv(node, "nova-manage") == ["/opt/hastack/.venv/bin/nova-manage"]


def test_a_tooz_group_that_counts_a_dead_agent_or_misses_a_live_one_is_an_anomaly() -> None:
    from hastack.deploy.systems.caches import RedisView
    world = World(example_plan("demo"), {}, Path("/nonexistent"))
    running = {openstack.CENTRAL_AGENT: ServiceState.RUNNING}
    nodes = {n: NodeView(True, running) for n in ("ctl1", "ctl2", "ctl3")}

    def found(live: tuple[str, ...] | None) -> list[str]:
        view = RedisView("ctl1", ("ctl1",), {openstack.CENTRAL_GROUP: live})
        return [a.message for a in health._tooz_group_anomalies(world.site, nodes, view)]

    assert found(("a", "b", "c")) == []
    assert found(("a", "b", "c", "d")) == [
        "tooz group central-global: 4 live members, 3 ceilometer-central running"]
    assert found(("a", "b")) == [
        "tooz group central-global: 2 live members, 3 ceilometer-central running"]
    assert found(None) == ["tooz group central-global: no Redis master answers"]
    nodes["ctl3"] = NodeView(False, running)      # a powered-off node's agent is not expected
    assert found(("a", "b")) == []
