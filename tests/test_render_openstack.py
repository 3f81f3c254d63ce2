"""The OpenStack renderer: oslo.config files every parser accepts, and the HA wiring in them
(every RabbitMQ node, the database through the VIP, every memcached, the cloud's settings)."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from hastack.errors import RenderError
from hastack.plan import Plan
from hastack.render import RenderContext, RenderedFile, openstack
from hastack.render.budget import make_budget
from hastack.render.secrets import complete
from tests.conftest import EXAMPLE_NAMES, example_plan, plan_from_text

PASTE_FILES = {"etc/swift/proxy-server.conf"}


def render_openstack(plan: Plan, secrets: dict[str, str] | None = None) -> list[RenderedFile]:
    """Only this renderer, with only the secrets it declares: proves secrets_needed is whole."""
    if secrets is None:
        secrets = complete({}, openstack.secrets_needed(plan))
    return openstack.render(RenderContext(plan, make_budget(plan.cloud), secrets))


def parse(f: RenderedFile) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep keys as written
    assert isinstance(f.content, str)
    parser.read_string(f.content, source=f"{f.node}:{f.path}")
    return parser


def ip(plan: Plan, node: str) -> str:
    return str(plan.cloud.node(node).ip)


def is_yaml(f: RenderedFile) -> bool:
    return f.path.endswith(".yaml")


@pytest.fixture(params=EXAMPLE_NAMES)
def rendered(request: pytest.FixtureRequest) -> tuple[Plan, dict[str, str], list[RenderedFile]]:
    """The INI files (Ceilometer's YAML ones have tests of their own, below)."""
    plan = example_plan(str(request.param))
    secrets = complete({}, openstack.secrets_needed(plan))
    return plan, secrets, [f for f in render_openstack(plan, secrets) if not is_yaml(f)]


def by_path(files: list[RenderedFile], path: str) -> list[RenderedFile]:
    return [f for f in files if f.path == path]


# --- parsers --------------------------------------------------------------------------------


def test_every_file_parses_strictly(rendered):
    _, _, files = rendered
    assert files
    for f in files:
        parse(f)  # duplicate sections or keys raise


@pytest.mark.validator
def test_oslo_config_parser_reads_every_file_as_configparser_does(rendered, tmp_path: Path):
    try:
        from oslo_config import cfg
    except ImportError:
        pytest.fail("oslo.config is not installed: pip install oslo.config (test dependency)")
    _, _, files = rendered
    for f in files:
        path = tmp_path / f.node / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        assert isinstance(f.content, str)
        path.write_text(f.content)
        sections: dict[str, dict[str, list[str]]] = {}
        cfg.ConfigParser(str(path), sections).parse()
        expected = parse(f)
        assert set(sections) == set(expected.sections()) | {"DEFAULT"}, f.path
        for section, options in sections.items():
            for key, values in options.items():
                assert len(values) == 1, f"{f.node}:{f.path} [{section}] {key} set twice"
                assert values[0] == expected[section][key], (f.path, section, key)


@pytest.mark.validator
def test_oslo_cache_accepts_every_cache_section(rendered, tmp_path: Path):
    """Each rendered [cache] read with oslo.cache's own option definitions (types and
    limits) and turned into the dogpile configuration the services build from it."""
    cfg = pytest.importorskip("oslo_config.cfg")
    core = pytest.importorskip("oslo_cache.core")
    _, _, files = rendered
    checked = 0
    for f in files:
        if "[cache]" not in str(f.content):
            continue
        path = tmp_path / f.node / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(f.content))
        conf = cfg.ConfigOpts()
        core.configure(conf)
        conf(args=[], default_config_files=[str(path)])
        built = core._build_cache_config(conf)   # raises on a value oslo.cache rejects
        assert built["cache.oslo.backend"] == "dogpile.cache.pymemcache", f.path
        assert built["cache.oslo.arguments.enable_retry_client"] is True
        checked += 1
    assert checked


# The option namespaces of each file the lab runs, as the service's own
# etc/*-config-generator.conf lists them (plus every oslo library it loads).
VALIDATED: dict[str, tuple[str, ...]] = {
    "etc/keystone/keystone.conf": ("keystone",),
    "etc/placement/placement.conf": ("placement.conf", "placement.auth"),
    "etc/glance/glance-api.conf": ("glance.api", "glance.store", "glance.multi_store"),
    "etc/nova/nova.conf": ("nova.conf", "nova.auth"),
    "etc/neutron/neutron.conf": ("neutron", "neutron.db", "neutron.extensions",
                                 "neutron.az.agent"),
    "etc/neutron/plugins/ml2/ml2_conf.ini": ("neutron.ml2",),
    "etc/heat/heat.conf": ("heat.common.config", "heat.common.context", "heat.common.crypt",
                           "heat.common.wsgi", "heat.common.cache", "heat.api.aws.ec2token",
                           "heat.engine.clients",
                           "heat.engine.clients.os.keystone.heat_keystoneclient",
                           "heat.engine.hot.functions", "heat.engine.notification",
                           "heat.engine.resources"),
}
_NOT_IN_SAMPLE = re.compile(r"ERROR:oslo_config.validator:(\S+)/(\S+) is not part of the "
                            r"sample config")


def _unknown_options(f: RenderedFile, path: Path) -> list[str]:
    """What oslo-config-validator rejects in one file: options no namespace of the service
    defines. Two kinds of group are built at run time, so no sample lists them: a
    keystoneauth client section (its options are those of its auth_type's plugin, checked
    here against keystoneauth's own list) and Glance's named stores (excluded)."""
    from importlib.metadata import entry_points

    from keystoneauth1 import loading

    ini = parse(f)
    common = sorted(e.name for e in entry_points(group="oslo.config.opts")
                    if e.name.startswith(("oslo.", "keystonemiddleware.auth_token")))
    argv = [str(Path(sys.executable).parent / "oslo-config-validator"), "--input-file",
            str(path)]
    for namespace in (*VALIDATED[f.path], *common):
        argv += ["--namespace", namespace]
    stores = [s for s in ini.sections() if s.startswith("os_glance_")]
    stores += [b.split(":")[0] for b in ini.get("DEFAULT", "enabled_backends",
                                                 fallback="").split(",") if b]
    # Heat's CloudWatch API is retired upstream: its section is rendered as the architecture
    # documents have it, for no program of this release.
    retired = [s for s in ini.sections() if s == "heat_api_cloudwatch"]
    for group in (*stores, *retired):
        argv += ["--exclude-group", group]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    output = result.stderr + result.stdout
    # It fails for unknown options only: anything else is a broken check, not a finding.
    assert result.returncode == 0 or _NOT_IN_SAMPLE.search(output), output[-2000:]
    unknown = []
    for group, option in _NOT_IN_SAMPLE.findall(output):
        auth_type = ini.get(group, "auth_type", fallback=None)
        if auth_type is not None:
            plugin = {o.dest for o in loading.get_auth_plugin_conf_options(auth_type)}
            if option.replace("-", "_") in plugin | {"auth_type", "auth_section"}:
                continue
        unknown.append(f"{f.node}:{f.path} [{group}] {option}")
    return unknown


@pytest.mark.validator
def test_oslo_config_validator_knows_every_option_of_the_files_the_lab_runs(tmp_path: Path):
    """Each service's own option definitions (oslo-config-validator with its namespaces):
    a misspelt or removed option — one the service would silently ignore — fails here."""
    for package in ("keystone", "placement", "glance", "nova", "neutron", "heat"):
        pytest.importorskip(package)
    files = [f for f in render_openstack(example_plan("demo")) if f.path in VALIDATED]
    checked = {f.path for f in files}
    assert checked == set(VALIDATED)
    unknown = []
    for f in files:
        if f.node not in ("ctl1", "cmp1"):       # the others differ in addresses only
            continue
        path = tmp_path / f.node / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(f.content))
        unknown += _unknown_options(f, path)
    assert unknown == []


# --- HA wiring ------------------------------------------------------------------------------


def test_transport_url_lists_every_rabbitmq_node(rendered):
    plan, secrets, files = rendered
    wanted = {ip(plan, n) for n in plan.nodes_running("rabbitmq")}
    assert len(wanted) >= 2
    checked = 0
    for f in files:
        if f.path in PASTE_FILES or not parse(f).has_option("DEFAULT", "transport_url"):
            continue
        url = parse(f)["DEFAULT"]["transport_url"]
        assert url.startswith("rabbit://") and url.endswith("/")
        hosts = url.removeprefix("rabbit://").removesuffix("/").split(",")
        seen = set()
        for host in hosts:
            credentials, address = host.rsplit("@", 1)
            user, password = credentials.split(":", 1)
            assert (user, unquote(password)) == ("openstack", secrets["rabbitmq_openstack"])
            seen.add(address.rsplit(":", 1)[0])
            assert address.endswith(":5672")
        assert seen == wanted, f.path
        checked += 1
    assert checked


def test_database_goes_through_the_internal_vip(rendered):
    plan, secrets, files = rendered
    vip = str(plan.cloud.vips.internal)
    databases = openstack.service_databases(plan)
    connections = 0
    for f in files:
        if f.path in PASTE_FILES:
            continue
        ini = parse(f)
        for section in ("database", "api_database"):
            if not ini.has_option(section, "connection"):
                continue
            url = urlsplit(ini[section]["connection"])
            service = url.username
            assert url.scheme == "mysql+pymysql"
            assert (url.hostname, url.port) == (vip, 3306)
            assert url.path.lstrip("/") in databases[service]
            assert unquote(url.password or "") == secrets[f"db_{service}"]
            assert url.query == f"connect_timeout={make_budget(plan.cloud).db_connect_timeout_s}"
            assert ini[section]["max_retries"] == "-1"
            connections += 1
    assert connections


def test_only_processes_that_need_the_database_get_its_password(rendered):
    plan, secrets, files = rendered
    for f in by_path(files, "etc/nova/nova.conf"):
        processes = {p.process for p in plan.nodes_of(f.node) if p.service == "nova"}
        if processes <= {"nova-compute"}:
            assert not parse(f).has_section("database")
            assert secrets["db_nova"] not in str(f.content)


def test_memcached_clients_list_every_instance(rendered):
    plan, _, files = rendered
    wanted = ",".join(f"{ip(plan, n)}:11211" for n in plan.nodes_running("memcached"))
    assert wanted.count(",") >= 1
    lists = 0
    for f in files:
        ini = parse(f)
        for section, key in (("cache", "memcache_servers"),
                             ("keystone_authtoken", "memcached_servers"),
                             ("filter:cache", "memcache_servers"),
                             ("filter:authtoken", "memcached_servers")):
            if ini.has_option(section, key):
                assert ini[section][key] == wanted, (f.node, f.path, section)
                lists += 1
    assert lists


def test_keystone_is_reached_through_the_internal_vip(rendered):
    plan, _, files = rendered
    url = f"http://{plan.cloud.vips.internal}:5000"
    for f in files:
        ini = parse(f)
        for section in ini.sections():
            for key in ("auth_url", "www_authenticate_uri"):
                if ini.has_option(section, key):
                    assert ini[section][key] == url


def test_apis_bind_their_own_node_ip(rendered):
    plan, _, files = rendered
    keys = {"bind_host", "bind_ip", "osapi_compute_listen", "metadata_listen",
            "osapi_volume_listen", "novncproxy_host", "host"}
    bound = 0
    for f in files:
        ini = parse(f)
        for section in [*ini.sections(), "DEFAULT"]:
            for key in keys & set(ini[section]):
                assert ini[section][key] == ip(plan, f.node), (f.path, section, key)
                bound += 1
    assert bound


def test_neutron_settings_match_the_cloud(rendered):
    plan, _, files = rendered
    settings = plan.cloud.settings.neutron
    servers = by_path(files, "etc/neutron/neutron.conf")
    assert servers
    for f in servers:
        default = parse(f)["DEFAULT"]
        assert default["l3_ha"] == str(settings.l3_ha).lower()
        assert int(default["max_l3_agents_per_router"]) == settings.max_l3_agents_per_router
        assert "min_l3_agents_per_router" not in default    # not an option of Neutron's
        assert int(default["dhcp_agents_per_network"]) == settings.dhcp_agents_per_network
        assert default["allow_automatic_l3agent_failover"] == str(
            settings.allow_automatic_l3agent_failover).lower()
        assert default["l3_ha_net_cidr"] == "169.254.192.0/18"
        assert default["router_distributed"] == "false"
    l3_nodes = {f.node for f in by_path(files, "etc/neutron/l3_agent.ini")}
    assert l3_nodes == set(plan.nodes_running("neutron-l3-agent"))
    dhcp_nodes = {f.node for f in by_path(files, "etc/neutron/dhcp_agent.ini")}
    assert dhcp_nodes == set(plan.nodes_running("neutron-dhcp-agent"))


def test_cinder_volume_is_clustered_only_for_active_active_backends(rendered):
    plan, _, files = rendered
    backend = plan.cloud.settings.cinder.backend
    active_active = plan.catalog.cinder_backends[backend].active_active
    for f in by_path(files, "etc/cinder/cinder.conf"):
        ini = parse(f)
        assert ini["DEFAULT"]["enabled_backends"] == backend
        assert ini.has_option("DEFAULT", "cluster") == active_active
        if active_active:
            assert ini["DEFAULT"]["cluster"] == plan.cloud.name
        else:
            # every node names the A/P volume service alike, so Pacemaker can move it
            assert ini[backend]["backend_host"] == f"{plan.cloud.name}-cinder-volume"


def test_keystone_uses_fernet_tokens_from_one_key_repository(rendered):
    _, _, files = rendered
    keystone = by_path(files, "etc/keystone/keystone.conf")
    assert keystone
    for f in keystone:
        ini = parse(f)
        assert ini["token"]["provider"] == "fernet"
        assert ini["fernet_tokens"]["key_repository"] == "/etc/keystone/fernet-keys/"
        assert ini["cache"]["enabled"] == "true"


def test_ceilometer_coordinates_through_every_sentinel():
    plan = example_plan("demo")
    files = render_openstack(plan)
    sentinels = [f"{ip(plan, n)}:26379" for n in plan.nodes_running("redis-sentinel")]
    for f in by_path(files, "etc/ceilometer/ceilometer.conf"):
        url = parse(f)["coordination"]["backend_url"]
        assert url.startswith("redis://")
        assert all(s in url for s in sentinels)


# --- Ceilometer's YAML files ---------------------------------------------------------------


def _yaml(f: RenderedFile) -> dict:
    import yaml
    assert isinstance(f.content, str) and f.content.startswith("# ")
    return yaml.safe_load(f.content)


def test_central_agents_poll_the_clouds_services_at_the_sizing_profiles_interval():
    from hastack.model.cloud import Sizing
    from hastack.render.sizing import PROFILES
    plan = example_plan("demo")
    for sizing in (Sizing.production, Sizing.lab):
        secrets = complete({}, openstack.secrets_needed(plan))
        files = openstack.render(RenderContext(plan, make_budget(plan.cloud), secrets,
                                               PROFILES[sizing]))
        polling = {f.node: _yaml(f) for f in by_path(files, "etc/ceilometer/polling.yaml")}
        assert set(polling) == set(plan.nodes_running("ceilometer-central")) | set(
            plan.nodes_running("ceilometer-compute"))
        for node in plan.nodes_running("ceilometer-central"):
            (source,) = polling[node]["sources"]
            assert source["interval"] == PROFILES[sizing].ceilometer_polling_interval_s
            # demo runs glance, neutron, cinder and swift: their pollsters, nothing else
            assert "image.size" in source["meters"] and "volume.size" in source["meters"]
            assert not any(m.startswith(("dns.", "manila.", "loadbalancer."))
                           for m in source["meters"])
    assert PROFILES[Sizing.production].ceilometer_polling_interval_s == 300
    assert PROFILES[Sizing.lab].ceilometer_polling_interval_s < 30


def test_a_cloud_without_glance_polls_no_image():
    plan = plan_from_text("""
name: bare
nodes:
  - {name: ctl1, address: 198.18.9.11, roles: [controller]}
  - {name: ctl2, address: 198.18.9.12, roles: [controller]}
  - {name: ctl3, address: 198.18.9.13, roles: [controller]}
vips: {internal: 198.18.9.100}
services: [keystone, ceilometer]
""")
    files = by_path(render_openstack(plan), "etc/ceilometer/polling.yaml")
    # Ceilometer refuses a source without meters: none at all, the agents stay idle.
    assert files and all(_yaml(f)["sources"] == [] for f in files)


@pytest.mark.validator
def test_ceilometer_loads_the_rendered_polling_and_pipelines_and_publishes_to_the_file(
        tmp_path: Path):
    """Ceilometer's own managers read the rendered files (publisher paths moved under tmp):
    the polling sources it will run, and a sample and an event through the pipelines come
    out as JSON lines in the files the notification agents write."""
    pytest.importorskip("ceilometer")
    from ceilometer import opts as ceilometer_opts
    from ceilometer import sample as ceilometer_sample
    from ceilometer.event import models
    from ceilometer.pipeline.event import EventPipelineManager
    from ceilometer.pipeline.sample import SamplePipelineManager
    from ceilometer.polling.manager import PollingManager
    from oslo_config import cfg

    plan = example_plan("demo")
    node = plan.nodes_running("ceilometer-central")[0]
    etc = tmp_path / "etc"
    etc.mkdir()
    for f in render_openstack(plan):
        if f.node == node and f.path.startswith("etc/ceilometer/"):
            text = str(f.content).replace("/var/lib/ceilometer/", f"{tmp_path}/")
            (etc / Path(f.path).name).write_text(text)
    conf = cfg.ConfigOpts()
    for group, options in ceilometer_opts.list_opts():
        conf.register_opts(list(options), group=None if group == "DEFAULT" else group)
    conf(args=[], project="ceilometer", default_config_files=[str(etc / "ceilometer.conf")])

    polling = PollingManager(conf)
    assert [s.name for s in polling.sources] == ["central_pollsters"]
    assert polling.sources[0].support_meter("image.size")

    samples = SamplePipelineManager(conf)
    samples.pipelines[0].publish_data([ceilometer_sample.Sample(
        name="image.size", type="gauge", unit="B", volume=42, user_id=None,
        project_id="p", resource_id="image-1", resource_metadata={})])
    events = EventPipelineManager(conf)
    events.pipelines[0].publish_data([models.Event("m-1", "image.create", None, [], {})])
    import json
    sample_line = json.loads((tmp_path / "samples.json").read_text().splitlines()[0])
    assert (sample_line["name"], sample_line["resource_id"], sample_line["volume"]) == (
        "image.size", "image-1", 42)
    event_line = json.loads((tmp_path / "events.json").read_text().splitlines()[0])
    assert event_line["event_type"] == "image.create"


def test_files_go_to_the_nodes_running_the_service(rendered):
    plan, _, files = rendered
    for service, path in (("keystone", "etc/keystone/keystone.conf"),
                          ("nova", "etc/nova/nova.conf"), ("cinder", "etc/cinder/cinder.conf")):
        if not plan.cloud.has_service(service):
            continue
        wanted = {n for p in plan.processes if p.service == service for n in p.nodes}
        assert {f.node for f in by_path(files, path)} == wanted


# --- secrets --------------------------------------------------------------------------------


def test_secrets_appear_only_through_declared_names(rendered):
    plan, secrets, files = rendered
    declared = {s.name for s in openstack.secrets_needed(plan)}
    assert set(secrets) == declared
    shared = {"rabbitmq_openstack", "redis_password", "neutron_metadata_proxy"}
    for f in files:
        service = f.path.split("/")[1]
        # A service's own secrets: its database and Keystone user, and those named after it.
        allowed = shared | {f"db_{service}", f"service_{service}"} | {
            n for n in secrets if n.startswith(f"{service}_")}
        for name, value in secrets.items():
            if value in str(f.content):
                assert name in allowed, f"{f.node}:{f.path} contains secret {name}"


def test_a_missing_secret_is_an_error_not_a_default():
    plan = example_plan("demo")
    secrets = complete({}, openstack.secrets_needed(plan))
    del secrets["db_nova"]
    with pytest.raises(RenderError, match="db_nova"):
        render_openstack(plan, secrets)


def test_rerender_is_byte_identical(rendered):
    plan, secrets, files = rendered
    again = render_openstack(plan, secrets)
    assert [f for f in again if not is_yaml(f)] == files
    assert again == render_openstack(plan, secrets)     # the YAML files too


# --- settings variants ----------------------------------------------------------------------

MIRRORED = """
name: mirrored
nodes:
  - {name: ctl1, address: 198.18.9.11, roles: [controller]}
  - {name: ctl2, address: 198.18.9.12, roles: [controller]}
  - {name: ctl3, address: 198.18.9.13, roles: [controller]}
vips: {internal: 198.18.9.100}
services: [keystone, nova, sahara, trove]
settings:
  rabbitmq: {queues: mirrored}
"""


def test_mirrored_queues_use_ha_queues_not_quorum_queues():
    files = render_openstack(plan_from_text(MIRRORED))
    for f in files:
        if f.path.startswith("etc/placement/"):      # Placement has no RPC
            assert "oslo_messaging_rabbit" not in parse(f)
            continue
        rabbit = parse(f)["oslo_messaging_rabbit"]
        assert rabbit["rabbit_ha_queues"] == "true"
        assert "rabbit_quorum_queue" not in rabbit
        assert rabbit["amqp_durable_queues"] == "true"


def test_service_databases_table():
    plan = plan_from_text(MIRRORED)
    assert openstack.service_databases(plan) == {
        "keystone": ["keystone"], "nova": ["nova", "nova_api", "nova_cell0"],
        "placement": ["placement"],              # Nova needs it: the plan adds it
        "sahara": ["sahara"], "trove": ["trove"],
    }
    assert "ceilometer" not in openstack.service_databases(example_plan("demo"))
