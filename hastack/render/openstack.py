"""OpenStack service configuration (oslo.config INI files) for every node running a service.

Stage 4 (render). Which sections a service needs is data (`SERVICE_CONFIGS`, one row per
service); one writer (`IniFile`) turns sections into text. HA-relevant choices:
- the database is reached through the internal VIP (HAProxy's single-writer Galera frontend),
  and oslo.db retries forever, so a writer failover costs a reconnect, not a dead service;
- RabbitMQ is not load balanced: `transport_url` lists every broker, clients fail over;
- memcached is a client-side list: every instance, short timeouts, a dead one skipped;
- every API binds its node's own IP so HAProxy can bind the same port on the VIP.

Secrets: `db_<service>`, `service_<service>`, `rabbitmq_openstack`, `keystone_admin`,
`neutron_metadata_proxy`, all read through `ctx.secret()`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import yaml

from hastack.errors import RenderError
from hastack.plan import Plan
from hastack.render import RenderContext, RenderedFile
from hastack.render.budget import Budget
from hastack.render.memcached import memcached_servers
from hastack.render.redis import PASSWORD_SECRET as REDIS_PASSWORD_SECRET
from hastack.render.redis import sentinel_url
from hastack.render.secrets import SecretSpec

SYSTEM = "openstack"

Value = str | int | float | bool | list[str] | tuple[str, ...]

# RabbitMQ account every OpenStack service uses (the RabbitMQ renderer creates it).
RABBIT_USER = "openstack"
RABBIT_SECRET = "rabbitmq_openstack"
KEYSTONE_ADMIN_SECRET = "keystone_admin"
METADATA_SECRET = "neutron_metadata_proxy"
# Heat: the key of its credential store, and the admin of the domain of its stack users.
HEAT_AUTH_KEY_SECRET = "heat_auth_encryption_key"
HEAT_DOMAIN_ADMIN_SECRET = "heat_domain_admin"
HEAT_STACK_DOMAIN = "heat"
HEAT_DOMAIN_ADMIN = "heat_domain_admin"
# The Keystone region of the cloud's endpoints.
REGION = "RegionOne"
# Where Neutron's L3 HA routers keep their VRRP traffic (HA Guide, network-node scenarios).
L3_HA_NET_CIDR = "169.254.192.0/18"
GLANCE_IMAGES = "/var/lib/glance/images"
# The physical network name of the provider (external) network.
PROVIDER_NETWORK = "provider"
# settings.nova.hypervisor -> nova-compute's driver and its own options.
COMPUTE_DRIVERS: dict[str, tuple[str, dict[str, dict[str, Value]]]] = {
    "kvm": ("libvirt.LibvirtDriver", {"libvirt": {"virt_type": "kvm"}}),
    "qemu": ("libvirt.LibvirtDriver", {"libvirt": {"virt_type": "qemu"}}),
    "xen": ("libvirt.LibvirtDriver", {"libvirt": {"virt_type": "xen"}}),
    "vmware": ("vmwareapi.VMwareVCDriver", {}),
}
# How often a scheduler maps new compute nodes to their cell (nova-manage cell_v2
# discover_hosts, done by the scheduler): a new hypervisor takes work within this long.
DISCOVER_HOSTS_S = 30
# Ceilometer publishes to files on each notification agent's node (no Gnocchi here): JSON,
# one sample or event per line, rotated at 10 MB keeping three.
CEILOMETER_SAMPLES = "/var/lib/ceilometer/samples.json"
CEILOMETER_EVENTS = "/var/lib/ceilometer/events.json"
_ROTATION = "max_bytes=10000000&backup_count=3&json"
# The central agents' pollsters of each service (ceilometer.poll.central), polled only where
# the cloud runs that service: the partitioned work of the central agents.
CENTRAL_METERS: dict[str, tuple[str, ...]] = {
    "glance": ("image.size",),
    "neutron": ("ip.floating",),
    "cinder": ("volume.size", "volume.snapshot.size", "volume.backup.size"),
    "swift": ("storage.objects", "storage.objects.size", "storage.objects.containers"),
}
# What a compute agent polls of each instance on its hypervisor (ceilometer.poll.compute).
COMPUTE_METERS = ("cpu", "memory.usage", "disk.device.read.bytes", "disk.device.write.bytes",
                  "network.incoming.bytes", "network.outgoing.bytes")
# SQLAlchemy pool sizing per worker: every API worker of every node ends up on the one Galera
# writer, so keep the pool small (sizes, not timings).
DB_POOL = {"max_pool_size": 5, "max_overflow": 10}
# Most a dead memcached instance may cost one oslo.cache try (seconds). Not less: a request
# that meets a stall tries every instance in turn (the retrying client, below), and a
# timeout shorter than a live instance's worst stall drops them all from the ring for the
# dead timeout. Measured in the lab (a rolling restart on two cores): 0.1 s dropped live
# instances and emptied the ring for 33 s; live answers took up to 0.24 s.
CACHE_SOCKET_TIMEOUT_CAP_S = 0.5
# oslo.cache's retry client, for one request that meets a failing instance: the try that
# finds its connection closed, the one refused (the instance is marked failed), the one
# retried at once and refused again, the one that drops it from the ring (oslo.cache's
# smallest hashclient_retry_attempts is 1) and still meets it, then the one that reaches
# the instance its key now hashes to.
CACHE_RETRY_ATTEMPTS = 5
# The HashClient's own: one failure marks an instance failed, the next removes it.
CACHE_HASHCLIENT_RETRY_ATTEMPTS = 1


# --------------------------------------------------------------------------------------------
# The INI writer


class IniFile:
    """Sections of one oslo.config/paste file, in insertion order; a key set twice is a bug."""

    def __init__(self, header: str):
        self.header = header
        self.sections: dict[str, dict[str, tuple[Value, str | None]]] = {"DEFAULT": {}}

    def set(self, section: str, key: str, value: Value, why: str | None = None) -> None:
        entries = self.sections.setdefault(section, {})
        if key in entries:
            raise RenderError(f"[{section}] {key} set twice")
        entries[key] = (value, why)

    def update(self, section: str, values: Mapping[str, Value]) -> None:
        for key, value in values.items():
            self.set(section, key, value)

    def text(self) -> str:
        lines = [f"# {line}" if line else "#" for line in self.header.splitlines()]
        for section, entries in self.sections.items():
            if not entries and section != "DEFAULT":
                continue
            lines += ["", f"[{section}]"]
            for key, (value, why) in entries.items():
                if why:
                    lines += [f"# {line}" for line in why.splitlines()]
                lines.append(f"{key} = {_format(value)}")
        return "\n".join(lines) + "\n"


def _format(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ",".join(value)
    return str(value)


# --------------------------------------------------------------------------------------------
# Timings the Budget does not carry (yet)


@dataclass(frozen=True)
class ClientTimings:
    """Client-side timings derived from the Budget's numbers, in one place.

    Proposed as Budget fields; until they are there, each is derived here from a Budget
    value with the reason next to it, never picked independently."""

    memcache_socket_timeout_s: int
    cache_socket_timeout_s: float
    memcache_dead_retry_s: int
    memcache_pool_get_timeout_s: int
    db_connection_recycle_s: int

    @property
    def memcache_back_in_ring_s(self) -> float:
        """How long after a memcached refused them clients use it again: pymemcache's
        HashClient (oslo.cache's backend) drops the server and looks at its dead servers only
        once per dead_retry window, so between one and two dead_retry."""
        return 2.0 * self.memcache_dead_retry_s


def client_timings(budget: Budget) -> ClientTimings:
    # A live memcached on the LAN answers within HAProxy's back-end connect timeout; a server
    # that does not is treated as dead. keystonemiddleware takes whole seconds.
    socket_timeout = budget.memcache_socket_timeout_s
    return ClientTimings(
        memcache_socket_timeout_s=socket_timeout,
        # oslo.cache takes fractions of a second: a live memcached on the LAN answers in well
        # under a millisecond, so 100 ms is ample slack on a loaded host and is what a dead
        # (black-holed) instance may cost one request, also at each dead_retry re-probe. A
        # false "dead" costs cache misses, never errors.
        cache_socket_timeout_s=min(float(socket_timeout), CACHE_SOCKET_TIMEOUT_CAP_S),
        memcache_dead_retry_s=budget.memcache_dead_retry_s,
        # Waiting longer for a pooled connection than for a server itself buys nothing.
        memcache_pool_get_timeout_s=socket_timeout,
        # Idle pooled DB connections follow the current writer again after this long: it
        # bounds the two-writers window after a failback (LAB-NOTES, HAProxy).
        db_connection_recycle_s=max(10, math.ceil(5 * budget.target_s)),
    )


# --------------------------------------------------------------------------------------------
# Shared client lists (owned by their systems' renderers)


def _node_ip(plan: Plan, node: str) -> str:
    return str(plan.cloud.node(node).ip)


def memcached_server_list(plan: Plan) -> list[str]:
    """Every memcached instance as "ip:port" (clients hash keys over all of them)."""
    return list(memcached_servers(plan))


def coordination_url(ctx: RenderContext) -> str:
    """tooz URL through Redis Sentinel: every sentinel, so losing one does not matter."""
    return sentinel_url(ctx.plan, ctx.secret(REDIS_PASSWORD_SECRET))


def transport_url(ctx: RenderContext) -> str:
    """Every RabbitMQ node: oslo.messaging fails over between them, no load balancer."""
    plan = ctx.plan
    password = quote(ctx.secret(RABBIT_SECRET), safe="")
    port = plan.port("rabbitmq", "amqp")
    hosts = ",".join(f"{RABBIT_USER}:{password}@{_node_ip(plan, n)}:{port}"
                     for n in plan.nodes_running("rabbitmq"))
    return f"rabbit://{hosts}/"


# --------------------------------------------------------------------------------------------
# The table: what each service's configuration needs


@dataclass(frozen=True)
class Listen:
    """Where one process binds: the node's own IP, on its catalog port."""

    process: str
    section: str
    host_key: str
    port_key: str
    port_name: str


SectionBuilder = Callable[["NodeView", IniFile], None]
YamlBuilder = Callable[["NodeView"], dict[str, Any]]


@dataclass(frozen=True)
class ServiceConfig:
    service: str
    path: str
    # SQL databases (Galera creates them; user = service, password secret db_<service>);
    # the ones this file connects to, by section.
    databases: tuple[str, ...] = ()
    db_sections: tuple[tuple[str, str], ...] = ()
    # Processes that open the database (None: every process of the service).
    db_processes: tuple[str, ...] | None = None
    listen: tuple[Listen, ...] = ()
    # Extra files for nodes running a process: (process, path, builder).
    agent_files: tuple[tuple[str, str, SectionBuilder], ...] = ()
    # YAML files for nodes running any of the processes: (processes, path, builder).
    yaml_files: tuple[tuple[tuple[str, ...], str, YamlBuilder], ...] = ()
    extra: SectionBuilder | None = None
    paste: bool = False           # a paste-deploy file (swift) rather than oslo.config
    messaging: bool = True        # an RPC user (transport_url)
    cache: bool = True            # uses oslo.cache ([cache])


@dataclass(frozen=True)
class NodeView:
    """What a builder needs about one node running one service."""

    ctx: RenderContext
    config: ServiceConfig
    node: str
    processes: tuple[str, ...]    # the service's processes on this node
    timings: ClientTimings

    @property
    def plan(self) -> Plan:
        return self.ctx.plan

    @property
    def ip(self) -> str:
        return self.ctx.address(self.node)

    @property
    def vip(self) -> str:
        return str(self.plan.cloud.vips.internal)

    def vip_url(self, frontend: str, path: str = "") -> str:
        """http://<internal VIP>:<port of an HAProxy frontend><path>."""
        for f in self.plan.frontends:
            if f.name == frontend:
                return f"http://{self.vip}:{f.port}{path}"
        raise RenderError(f"no HAProxy frontend '{frontend}' is planned")

    @property
    def keystone_url(self) -> str:
        return self.vip_url("keystone")

    def password(self, secret: str) -> str:
        return self.ctx.secret(secret)


def _database_url(view: NodeView, database: str) -> str:
    plan = view.plan
    galera = next((f for f in plan.frontends if f.name == "galera"), None)
    if galera is None:
        raise RenderError("no Galera frontend is planned for the database VIP")
    user = view.config.service
    password = quote(view.password(f"db_{user}"), safe="")
    return (f"mysql+pymysql://{user}:{password}@{view.vip}:{galera.port}/{database}"
            f"?connect_timeout={view.ctx.budget.db_connect_timeout_s}")


def _database(view: NodeView, ini: IniFile) -> None:
    budget, timings = view.ctx.budget, view.timings
    for section, database in view.config.db_sections:
        ini.set(section, "connection", _database_url(view, database),
                "Through HAProxy's single-writer Galera frontend on the internal VIP.")
        ini.set(section, "max_retries", -1, "Retry forever: a writer failover is a reconnect.")
        ini.set(section, "retry_interval", budget.db_retry_interval_s)
        ini.set(section, "connection_recycle_time", timings.db_connection_recycle_s)
        ini.update(section, DB_POOL)


def _messaging(view: NodeView, ini: IniFile) -> None:
    messaging_client(view.ctx, ini)
    if view.plan.cloud.has_service("ceilometer"):
        ini.set("oslo_messaging_notifications", "driver", "messagingv2",
                "Ceilometer's notification agents consume these.")


def messaging_client(ctx: RenderContext, ini: IniFile) -> None:
    """oslo.messaging client options of any RPC user (services, hastack's RPC service)."""
    budget = ctx.budget
    ini.set("DEFAULT", "transport_url", transport_url(ctx),
            "Every RabbitMQ node; clients fail over, no load balancer in between.")
    section = "oslo_messaging_rabbit"
    if ctx.plan.cloud.settings.rabbitmq.queues == "quorum":
        ini.set(section, "rabbit_quorum_queue", True, "Raft-replicated queues (settings).")
    else:
        ini.set(section, "rabbit_ha_queues", True,
                "Classic mirrored queues (settings; removed in RabbitMQ 4).")
    ini.set(section, "amqp_durable_queues", True)
    ini.set(section, "heartbeat_timeout_threshold", budget.amqp_heartbeat_timeout_s,
            "A dead broker connection is noticed after this long (budget).")
    ini.set(section, "kombu_failover_strategy", "round-robin")
    ini.set(section, "rabbit_retry_interval", budget.amqp_retry_interval_s)
    ini.set(section, "rabbit_retry_backoff", budget.amqp_retry_interval_s)


def _cache(view: NodeView, ini: IniFile) -> None:
    t = view.timings
    ini.set("cache", "enabled", True)
    ini.set("cache", "backend", "dogpile.cache.pymemcache",
            "pymemcache's HashClient over every instance, inside its retrying client (below):\n"
            "a request that meets a dead or stopping instance drops it from the ring and is\n"
            "retried where its key now hashes, so a lost memcached costs misses, not errors.")
    ini.set("cache", "memcache_servers", memcached_server_list(view.plan))
    ini.set("cache", "memcache_socket_timeout", t.cache_socket_timeout_s,
            "Recent oslo.cache calls it socket_timeout and still accepts this older name.\n"
            "Connect and read: a dead instance costs at most this, then leaves the ring.")
    ini.set("cache", "enable_retry_client", True)
    ini.set("cache", "retry_attempts", CACHE_RETRY_ATTEMPTS)
    ini.set("cache", "retry_delay", 0)
    ini.set("cache", "hashclient_retry_attempts", CACHE_HASHCLIENT_RETRY_ATTEMPTS,
            "An instance that fails twice in a row leaves the ring (its keys move) ...")
    ini.set("cache", "hashclient_retry_timeout", 0)
    ini.set("cache", "hashclient_dead_timeout", t.memcache_dead_retry_s,
            "... and is tried again after this long.")


def _keystone_auth(view: NodeView, ini: IniFile, section: str) -> None:
    """keystoneauth password plugin credentials of this service's own user."""
    service = view.config.service
    ini.update(section, {
        "auth_url": view.keystone_url,
        "auth_type": "password",
        "project_domain_name": "Default",
        "user_domain_name": "Default",
        "project_name": "service",
        "username": service,
        "password": view.password(f"service_{service}"),
    })


def _keystone_authtoken(view: NodeView, ini: IniFile) -> None:
    t = view.timings
    section = "keystone_authtoken"
    ini.set(section, "www_authenticate_uri", view.keystone_url)
    _keystone_auth(view, ini, section)
    ini.set(section, "memcached_servers", memcached_server_list(view.plan))
    ini.set(section, "memcache_use_advanced_pool", True)
    ini.set(section, "memcache_pool_socket_timeout", t.memcache_socket_timeout_s)
    ini.set(section, "memcache_pool_dead_retry", t.memcache_dead_retry_s)
    ini.set(section, "memcache_pool_conn_get_timeout", t.memcache_pool_get_timeout_s)


def _endpoint(view: NodeView, ini: IniFile, section: str, frontend: str | None,
              auth: bool = True) -> None:
    """A client section of another service, reached through the internal VIP (with this
    service's own credentials unless it calls on behalf of the user's token)."""
    if auth:
        _keystone_auth(view, ini, section)
    ini.set(section, "valid_interfaces", "internal")
    if frontend is not None:
        ini.set(section, "endpoint_override", view.vip_url(frontend))


def _listen(view: NodeView, ini: IniFile) -> None:
    for listen in view.config.listen:
        if listen.process in view.processes:
            ini.set(listen.section, listen.host_key, view.ip,
                    "The node's own IP: HAProxy binds this port on the VIP.")
            ini.set(listen.section, listen.port_key,
                    view.plan.port(listen.process, listen.port_name))


# --- per-service sections -------------------------------------------------------------------


def _proxy_headers(view: NodeView, ini: IniFile) -> None:
    """An API behind TLS on the public VIP reads the scheme from HAProxy's X-Forwarded-Proto
    (oslo.middleware's http_proxy_to_wsgi), so the links it returns say https there. HAProxy
    overwrites that header on every bind, so a client cannot claim a scheme of its own."""
    public = any("public" in f.vips for p in view.plan.processes
                 if p.process in view.processes for f in p.frontends)
    if view.plan.cloud.public_tls and public:
        ini.set("oslo_middleware", "enable_proxy_headers_parsing", True,
                "HAProxy says which scheme the client used (https on the public VIP).")


def _keystone(view: NodeView, ini: IniFile) -> None:
    ini.set("token", "provider", "fernet")
    ini.set("fernet_tokens", "key_repository", "/etc/keystone/fernet-keys/",
            "Identical on every node, or tokens issued by one are refused by the others.")
    ini.set("credential", "provider", "fernet")
    ini.set("credential", "key_repository", "/etc/keystone/credential-keys/")


def _glance(view: NodeView, ini: IniFile) -> None:
    ini.set("paste_deploy", "flavor", "keystone")
    ini.set("DEFAULT", "enabled_backends", "shared:file")
    ini.set("glance_store", "default_backend", "shared")
    ini.set("shared", "filesystem_store_datadir", GLANCE_IMAGES,
            "Shared by every Glance node (a shared filesystem): an image uploaded through\n"
            "one node is downloaded through any other.")
    ini.set("os_glance_staging_store", "filesystem_store_datadir",
            "/var/lib/glance/staging")
    ini.set("os_glance_tasks_store", "filesystem_store_datadir", "/var/lib/glance/tasks")


def _placement(view: NodeView, ini: IniFile) -> None:
    ini.set("api", "auth_strategy", "keystone")


def _glance_registry(view: NodeView, ini: IniFile) -> None:
    """The (long deprecated) registry has its own file, database and port."""
    ini.set("DEFAULT", "bind_host", view.ip, "The node's own IP: HAProxy binds the VIP.")
    ini.set("DEFAULT", "bind_port", view.plan.port("glance-registry", "image-registry"))
    _database(view, ini)
    _keystone_authtoken(view, ini)
    ini.set("paste_deploy", "flavor", "keystone")


def _metadata_proxy(plan: Plan) -> bool:
    """Nova's metadata API answers instances through Neutron's metadata proxy."""
    return plan.runs("nova-api") and plan.runs("neutron-server")


def _nova(view: NodeView, ini: IniFile) -> None:
    plan = view.plan
    ini.set("DEFAULT", "my_ip", view.ip)
    novnc = plan.process("nova-novncproxy")
    public = plan.cloud.vips.public or plan.cloud.vips.internal
    ini.set("vnc", "enabled", True)
    ini.set("vnc", "server_listen", view.ip)
    ini.set("vnc", "server_proxyclient_address", view.ip)
    if novnc is not None:
        port = plan.port("nova-novncproxy", "novnc")
        scheme = "https" if plan.cloud.public_tls else "http"
        ini.set("vnc", "novncproxy_base_url", f"{scheme}://{public}:{port}/vnc_auto.html",
                "Browsers reach the console proxy through the VIP.")
        if "nova-novncproxy" in view.processes:
            ini.set("vnc", "novncproxy_host", view.ip)
            ini.set("vnc", "novncproxy_port", port)
    if plan.runs("glance-api"):
        # Nova calls Glance with the user's token: [glance] has no credentials of its own.
        _endpoint(view, ini, "glance", "glance-api", auth=False)
    if plan.runs("neutron-server"):
        _endpoint(view, ini, "neutron", "neutron-server")
    if _metadata_proxy(plan):
        ini.set("neutron", "service_metadata_proxy", True)
        ini.set("neutron", "metadata_proxy_shared_secret", view.password(METADATA_SECRET))
    _endpoint(view, ini, "placement",
              "placement-api" if plan.runs("placement-api") else None)
    ini.set("placement", "region_name", REGION)
    workers = view.ctx.sizing.rpc_workers
    if workers is not None:
        for process, section in (("nova-conductor", "conductor"),
                                 ("nova-scheduler", "scheduler")):
            if process in view.processes:
                ini.set(section, "workers", workers, "Sizing profile.")
    if "nova-scheduler" in view.processes:
        ini.set("scheduler", "discover_hosts_in_cells_interval", DISCOVER_HOSTS_S,
                "New compute nodes are mapped to their cell without an operator's\n"
                "`nova-manage cell_v2 discover_hosts`.")
    ini.set("DEFAULT", "state_path", "/var/lib/nova")
    if "nova-compute" in view.processes:
        driver, sections = COMPUTE_DRIVERS[plan.cloud.settings.nova.hypervisor]
        ini.set("DEFAULT", "compute_driver", driver, "The cloud's hypervisor (settings).")
        for section, values in sections.items():
            ini.update(section, values)
    if plan.runs("cinder-api"):
        ini.set("cinder", "catalog_info", "volumev3::internalURL")
    ini.set("oslo_concurrency", "lock_path", "/var/lib/nova/tmp")


def _neutron(view: NodeView, ini: IniFile) -> None:
    plan = view.plan
    neutron = plan.cloud.settings.neutron
    ini.set("DEFAULT", "core_plugin", "ml2")
    plugins = ["router"] + (["metering"] if plan.runs("neutron-metering-agent") else [])
    ini.set("DEFAULT", "service_plugins", plugins)
    ini.set("DEFAULT", "auth_strategy", "keystone")
    ini.set("DEFAULT", "l3_ha", neutron.l3_ha, "Routers on several L3 agents, VRRP inside.")
    ini.set("DEFAULT", "max_l3_agents_per_router", neutron.max_l3_agents_per_router)
    # No min_l3_agents_per_router: Neutron dropped it (an HA router gets every alive agent
    # up to the max); the linter keeps the cloud's minimum as a design floor (rule l3-ha).
    ini.set("DEFAULT", "l3_ha_net_cidr", L3_HA_NET_CIDR)
    ini.set("DEFAULT", "allow_automatic_l3agent_failover",
            neutron.allow_automatic_l3agent_failover)
    ini.set("DEFAULT", "dhcp_agents_per_network", neutron.dhcp_agents_per_network,
            "Several DHCP agents serve each network, all active (HA Guide: network-node "
            "HA scenario analysis).")
    ini.set("DEFAULT", "router_distributed", False)
    if plan.runs("nova-api"):
        ini.set("DEFAULT", "notify_nova_on_port_status_changes", True)
        ini.set("DEFAULT", "notify_nova_on_port_data_changes", True)
        _keystone_auth(view, ini, "nova")
    ini.set("oslo_concurrency", "lock_path", "/var/lib/neutron/tmp")
    ini.set("DEFAULT", "state_path", "/var/lib/neutron")
    if view.ctx.sizing.rpc_workers is not None and "neutron-server" in view.processes:
        ini.set("DEFAULT", "rpc_workers", view.ctx.sizing.rpc_workers, "Sizing profile.")
        ini.set("DEFAULT", "rpc_state_report_workers", view.ctx.sizing.rpc_workers)


def _ml2(view: NodeView, ini: IniFile) -> None:
    """The ML2 plugin of neutron-server: Open vSwitch, VXLAN tenant networks, one flat
    provider network for the external side of the routers."""
    ini.set("ml2", "type_drivers", ["flat", "vxlan"])
    ini.set("ml2", "project_network_types", ["vxlan"])
    ini.set("ml2", "mechanism_drivers", ["openvswitch"])
    ini.set("ml2", "extension_drivers", ["port_security"])
    ini.set("ml2_type_flat", "flat_networks", [PROVIDER_NETWORK])
    ini.set("ml2_type_vxlan", "vni_ranges", "1:1000")


def _l3_agent(view: NodeView, ini: IniFile) -> None:
    ini.set("DEFAULT", "interface_driver", "openvswitch")
    ini.set("DEFAULT", "agent_mode", "legacy")
    # Whole seconds only; VRRP inside router namespaces, separate from the VIPs' keepalived.
    ini.set("DEFAULT", "ha_vrrp_advert_int", max(1, math.ceil(view.ctx.budget.vrrp_advert_s)),
            "Router VRRP advert interval, from the VIP budget (whole seconds).")


def _dhcp_agent(view: NodeView, ini: IniFile) -> None:
    ini.set("DEFAULT", "interface_driver", "openvswitch")
    ini.set("DEFAULT", "dhcp_driver", "neutron.agent.linux.dhcp.Dnsmasq")
    ini.set("DEFAULT", "enable_isolated_metadata", True,
            "Metadata through the DHCP namespace keeps working while an HA router moves.")


def _metadata_agent(view: NodeView, ini: IniFile) -> None:
    if not _metadata_proxy(view.plan):
        return
    ini.set("DEFAULT", "nova_metadata_host", view.vip, "Nova's metadata API via the VIP.")
    ini.set("DEFAULT", "nova_metadata_port", view.plan.port("nova-api", "metadata"))
    ini.set("DEFAULT", "metadata_proxy_shared_secret", view.password(METADATA_SECRET))


# Cinder volume drivers per backend (the catalog says which ones are active/active).
CINDER_DRIVERS: dict[str, dict[str, Value]] = {
    "lvm": {"volume_driver": "cinder.volume.drivers.lvm.LVMVolumeDriver",
            "volume_group": "cinder-volumes", "target_helper": "lioadm"},
    "ceph": {"volume_driver": "cinder.volume.drivers.rbd.RBDDriver", "rbd_pool": "volumes",
             "rbd_ceph_conf": "/etc/ceph/ceph.conf", "rbd_user": "cinder"},
    "nfs": {"volume_driver": "cinder.volume.drivers.nfs.NfsDriver",
            "nfs_shares_config": "/etc/cinder/nfs_shares"},
    "netapp": {"volume_driver": "cinder.volume.drivers.netapp.common.NetAppDriver",
               "netapp_storage_family": "ontap_cluster", "netapp_storage_protocol": "iscsi"},
    "pure": {"volume_driver": "cinder.volume.drivers.pure.PureISCSIDriver"},
}


def _cinder(view: NodeView, ini: IniFile) -> None:
    plan = view.plan
    backend = plan.cloud.settings.cinder.backend
    ini.set("DEFAULT", "enabled_backends", backend)
    ini.set("DEFAULT", "auth_strategy", "keystone")
    ini.set(backend, "volume_backend_name", backend)
    ini.update(backend, CINDER_DRIVERS[backend])
    if plan.catalog.cinder_backends[backend].active_active:
        ini.set("DEFAULT", "cluster", plan.cloud.name,
                "Active/active cinder-volume: every node joins this cluster (OpenStack for "
                "Architects).")
        if _coordination(plan):
            ini.set("coordination", "backend_url", coordination_url(view.ctx),
                    "A/A cinder-volume needs a distributed lock manager.")
    else:
        ini.set(backend, "backend_host", f"{plan.cloud.name}-cinder-volume",
                "Active/passive: one shared service name, so volumes stay reachable when\n"
                "Pacemaker starts cinder-volume on another node (the volume group must be on\n"
                "shared storage for the data to follow).")
    if plan.runs("glance-api"):
        ini.set("DEFAULT", "glance_api_servers", view.vip_url("glance-api"))
    if plan.runs("nova-api"):
        _endpoint(view, ini, "nova", None)
    ini.set("oslo_concurrency", "lock_path", "/var/lib/cinder/tmp")


def _heat(view: NodeView, ini: IniFile) -> None:
    plan = view.plan
    if plan.process("heat-api-cfn") is not None:
        cfn = view.vip_url("heat-api-cfn")
        ini.set("DEFAULT", "heat_metadata_server_url", cfn)
        ini.set("DEFAULT", "heat_waitcondition_server_url", f"{cfn}/v1/waitcondition")
    ini.set("DEFAULT", "auth_encryption_key", view.password(HEAT_AUTH_KEY_SECRET),
            "Encrypts the credentials Heat keeps in its database: the same on every node\n"
            "(any engine may resume any stack); 32 characters, as Heat requires.")
    ini.set("DEFAULT", "stack_user_domain_name", HEAT_STACK_DOMAIN,
            "Users Heat makes for a stack's servers live in their own domain.")
    ini.set("DEFAULT", "stack_domain_admin", HEAT_DOMAIN_ADMIN)
    ini.set("DEFAULT", "stack_domain_admin_password", view.password(HEAT_DOMAIN_ADMIN_SECRET))
    ini.set("DEFAULT", "region_name_for_services", REGION)
    ini.set("clients", "endpoint_type", "internalURL",
            "The engines call the other services through the internal VIP.")
    workers = view.ctx.sizing.rpc_workers
    if workers is not None and "heat-engine" in view.processes:
        ini.set("DEFAULT", "num_engine_workers", workers, "Sizing profile.")
    ini.set("clients_keystone", "auth_uri", view.keystone_url)
    # The CloudFormation API checks EC2-signed requests with Keystone (its catalog's identity
    # endpoint, found with Heat's own user).
    _endpoint(view, ini, "ec2authtoken", None)
    # The user trusts name as trustee: unscoped (a trust is its own scope, and keystoneauth
    # refuses a project beside it).
    service = view.config.service
    ini.update("trustee", {"auth_url": view.keystone_url, "auth_type": "password",
                           "user_domain_name": "Default", "username": service,
                           "password": view.password(f"service_{service}")})


def ceilometer_partitioned(plan: Plan) -> bool:
    """Whether Ceilometer's central agents partition their work through tooz over Redis
    Sentinel (the cloud's setting, and Sentinels to reach Redis through)."""
    return plan.cloud.settings.ceilometer.coordination == "redis" and _coordination(plan)


def _ceilometer(view: NodeView, ini: IniFile) -> None:
    plan = view.plan
    if ceilometer_partitioned(plan):
        ini.set("coordination", "backend_url", coordination_url(view.ctx),
                "tooz over Redis Sentinel partitions the central agents' work.")
    _keystone_auth(view, ini, "service_credentials")
    ini.set("service_credentials", "interface", "internal",
            "The agents poll the other services through the internal VIP.")
    ini.set("service_credentials", "region_name", REGION)


def _ceilometer_polling(view: NodeView) -> dict[str, Any]:
    """polling.yaml: what this node's agents poll, and how often (the sizing profile)."""
    interval = view.ctx.sizing.ceilometer_polling_interval_s
    sources = []
    if "ceilometer-central" in view.processes:
        meters = [m for service in view.plan.cloud.services
                  for m in CENTRAL_METERS.get(service, ())]
        if meters:         # Ceilometer refuses a source without meters
            sources.append({"name": "central_pollsters", "interval": interval,
                            "meters": meters})
    if "ceilometer-compute" in view.processes:
        sources.append({"name": "compute_pollsters", "interval": interval,
                        "meters": list(COMPUTE_METERS)})
    return {"sources": sources}


def _ceilometer_pipeline(kind: str, path: str) -> YamlBuilder:
    """pipeline.yaml (kind meter) / event_pipeline.yaml (kind event): everything the
    notification agent receives (the agents' samples, the services' notifications) published
    to a file on its node."""
    def build(view: NodeView) -> dict[str, Any]:
        return {"sources": [{"name": f"{kind}_source", f"{kind}s": ["*"],
                             "sinks": [f"{kind}_sink"]}],
                "sinks": [{"name": f"{kind}_sink",
                           "publishers": [f"file://{path}?{_ROTATION}"]}]}
    return build


def _swift(view: NodeView, ini: IniFile) -> None:
    t = view.timings
    ini.set("pipeline:main", "pipeline",
            "catch_errors gatekeeper healthcheck proxy-logging cache listing_formats "
            "authtoken keystoneauth copy dlo versioned_writes proxy-logging proxy-server")
    ini.update("app:proxy-server", {"use": "egg:swift#proxy", "account_autocreate": True})
    for name in ("catch_errors", "gatekeeper", "healthcheck", "proxy-logging",
                 "listing_formats", "copy", "dlo", "versioned_writes"):
        ini.set(f"filter:{name}", "use", f"egg:swift#{name.replace('-', '_')}")
    ini.set("filter:cache", "use", "egg:swift#memcache")
    ini.set("filter:cache", "memcache_servers", memcached_server_list(view.plan),
            "Every memcached instance; swift hashes keys over them.")
    ini.set("filter:cache", "connect_timeout", t.memcache_socket_timeout_s)
    section = "filter:authtoken"
    ini.set(section, "paste.filter_factory", "keystonemiddleware.auth_token:filter_factory")
    ini.set(section, "www_authenticate_uri", view.keystone_url)
    _keystone_auth(view, ini, section)
    ini.set(section, "memcached_servers", memcached_server_list(view.plan))
    ini.set(section, "delay_auth_decision", True)
    ini.update("filter:keystoneauth", {"use": "egg:swift#keystoneauth",
                                       "operator_roles": "admin,member"})


def _listen_on(process: str, section: str, port_name: str, host_key: str = "bind_host",
               port_key: str = "bind_port") -> Listen:
    return Listen(process, section, host_key, port_key, port_name)


SERVICE_CONFIGS: tuple[ServiceConfig, ...] = (
    # Keystone's, Placement's, Glance's, Nova's, Neutron's and Heat's APIs run under a WSGI
    # server that binds the node IP itself (render/wsgi.py): their files have no bind option.
    ServiceConfig("keystone", "etc/keystone/keystone.conf", databases=("keystone",),
                  db_sections=(("database", "keystone"),), extra=_keystone),
    ServiceConfig("glance", "etc/glance/glance-api.conf", databases=("glance",),
                  db_sections=(("database", "glance"),),
                  agent_files=(("glance-registry", "etc/glance/glance-registry.conf",
                                _glance_registry),),
                  extra=_glance),
    # Placement speaks to no bus and keeps no cache of its own (its token cache is
    # keystonemiddleware's, in [keystone_authtoken]).
    ServiceConfig("placement", "etc/placement/placement.conf", databases=("placement",),
                  db_sections=(("placement_database", "placement"),),
                  messaging=False, cache=False, extra=_placement),
    ServiceConfig("nova", "etc/nova/nova.conf", databases=("nova", "nova_api", "nova_cell0"),
                  db_sections=(("database", "nova"), ("api_database", "nova_api")),
                  db_processes=("nova-api", "nova-cert", "nova-scheduler", "nova-conductor",
                                "nova-novncproxy"),
                  extra=_nova),
    ServiceConfig("neutron", "etc/neutron/neutron.conf", databases=("neutron",),
                  db_sections=(("database", "neutron"),), db_processes=("neutron-server",),
                  agent_files=(
                      ("neutron-server", "etc/neutron/plugins/ml2/ml2_conf.ini", _ml2),
                      ("neutron-l3-agent", "etc/neutron/l3_agent.ini", _l3_agent),
                      ("neutron-dhcp-agent", "etc/neutron/dhcp_agent.ini", _dhcp_agent),
                      ("neutron-metadata-agent", "etc/neutron/metadata_agent.ini",
                       _metadata_agent),
                  ),
                  extra=_neutron),
    ServiceConfig("cinder", "etc/cinder/cinder.conf", databases=("cinder",),
                  db_sections=(("database", "cinder"),),
                  listen=(_listen_on("cinder-api", "DEFAULT", "volume",
                                     "osapi_volume_listen", "osapi_volume_listen_port"),),
                  extra=_cinder),
    ServiceConfig("heat", "etc/heat/heat.conf", databases=("heat",),
                  db_sections=(("database", "heat"),),
                  # heat-api and heat-api-cfn run under gunicorn (render/wsgi.py).
                  listen=(_listen_on("heat-api-cloudwatch", "heat_api_cloudwatch",
                                     "cloudwatch"),),
                  extra=_heat),
    # Ceilometer keeps its samples in MongoDB/Gnocchi, not in Galera; here, in files.
    ServiceConfig("ceilometer", "etc/ceilometer/ceilometer.conf",
                  listen=(_listen_on("ceilometer-api", "api", "metering", "host", "port"),),
                  yaml_files=(
                      (("ceilometer-central", "ceilometer-compute"),
                       "etc/ceilometer/polling.yaml", _ceilometer_polling),
                      (("ceilometer-notification",), "etc/ceilometer/pipeline.yaml",
                       _ceilometer_pipeline("meter", CEILOMETER_SAMPLES)),
                      (("ceilometer-notification",), "etc/ceilometer/event_pipeline.yaml",
                       _ceilometer_pipeline("event", CEILOMETER_EVENTS)),
                  ),
                  extra=_ceilometer),
    ServiceConfig("swift", "etc/swift/proxy-server.conf",
                  listen=(_listen_on("swift-proxy", "DEFAULT", "object-store",
                                     "bind_ip", "bind_port"),),
                  extra=_swift, paste=True),
    ServiceConfig("sahara", "etc/sahara/sahara.conf", databases=("sahara",),
                  db_sections=(("database", "sahara"),),
                  listen=(_listen_on("sahara-api", "DEFAULT", "data-processing",
                                     "host", "port"),)),
    ServiceConfig("trove", "etc/trove/trove.conf", databases=("trove",),
                  db_sections=(("database", "trove"),),
                  listen=(_listen_on("trove-api", "DEFAULT", "database-service"),)),
)

_CONFIGS = {c.service: c for c in SERVICE_CONFIGS}


# --------------------------------------------------------------------------------------------
# Public interface


def _enabled_configs(plan: Plan) -> list[ServiceConfig]:
    """The cloud's services, then those the plan adds for them (Placement for Nova)."""
    services: list[str] = list(plan.cloud.services)
    services += sorted({p.service for p in plan.processes} - set(services))
    return [_CONFIGS[s] for s in services if s in _CONFIGS]


def service_databases(plan: Plan) -> dict[str, list[str]]:
    """SQL databases of every enabled service (user = service name, password `db_<service>`);
    the Galera renderer creates them."""
    return {c.service: list(c.databases) for c in _enabled_configs(plan) if c.databases}


def _coordination(plan: Plan) -> bool:
    """Whether tooz coordination through Redis Sentinel is available to the services."""
    return plan.runs("redis-sentinel")


def _token_validators(plan: Plan) -> set[str]:
    """Services whose APIs validate tokens (every service but Keystone itself)."""
    return {c.service for c in _enabled_configs(plan) if c.service != "keystone"}


def secrets_needed(plan: Plan) -> list[SecretSpec]:
    specs = [SecretSpec(RABBIT_SECRET, purpose="RabbitMQ user 'openstack' of every service")]
    for service in service_databases(plan):
        specs.append(SecretSpec(f"db_{service}", purpose=f"Galera user '{service}'"))
    for service in sorted(_token_validators(plan)):
        specs.append(SecretSpec(f"service_{service}", purpose=f"Keystone user '{service}'"))
    if plan.cloud.has_service("keystone"):
        specs.append(SecretSpec(KEYSTONE_ADMIN_SECRET, purpose="Keystone 'admin' (bootstrap)"))
    if _coordination(plan):
        specs.append(SecretSpec(REDIS_PASSWORD_SECRET, purpose="Redis (tooz coordination)"))
    if _metadata_proxy(plan):
        specs.append(SecretSpec(METADATA_SECRET, purpose="Nova/Neutron metadata proxy"))
    if "heat" in {c.service for c in _enabled_configs(plan)}:
        specs.append(SecretSpec(HEAT_AUTH_KEY_SECRET, purpose="Heat's credential store key"))
        specs.append(SecretSpec(HEAT_DOMAIN_ADMIN_SECRET,
                                purpose=f"Keystone user '{HEAT_DOMAIN_ADMIN}' (Heat's domain)"))
    return specs


def _service_processes(plan: Plan, service: str, node: str) -> tuple[str, ...]:
    return tuple(p.process for p in plan.processes if p.service == service and node in p.nodes)


def _header(plan: Plan, config: ServiceConfig, node: str, path: str) -> str:
    return (f"{path.rsplit('/', 1)[-1]} of {config.service} on {node}, cloud {plan.cloud.name}.\n"
            "Rendered by hastack; edit cloud.yaml and re-render instead of this file.")


def _main_file(view: NodeView) -> IniFile:
    config, plan = view.config, view.plan
    ini = IniFile(_header(plan, config, view.node, config.path))
    _listen(view, ini)
    if config.paste:
        if config.extra is not None:
            config.extra(view, ini)
        return ini
    if config.messaging:
        _messaging(view, ini)
    db_processes = config.db_processes
    if config.db_sections and (db_processes is None
                               or any(p in db_processes for p in view.processes)):
        _database(view, ini)
    if config.cache:
        _cache(view, ini)
    api = any(p.frontends for p in plan.processes if p.process in view.processes)
    if config.service != "keystone" and api:
        _keystone_authtoken(view, ini)
    _proxy_headers(view, ini)
    if config.extra is not None:
        config.extra(view, ini)
    return ini


def _files_for(ctx: RenderContext, config: ServiceConfig,
               timings: ClientTimings) -> Iterable[RenderedFile]:
    plan = ctx.plan
    nodes = [n.name for n in plan.cloud.nodes if _service_processes(plan, config.service, n.name)]
    for node in nodes:
        view = NodeView(ctx, config, node, _service_processes(plan, config.service, node),
                        timings)
        yield _file(node, config.path, _main_file(view).text())
        for process, path, build in config.agent_files:
            if process in view.processes:
                ini = IniFile(_header(plan, config, node, path))
                build(view, ini)
                yield _file(node, path, ini.text())
        for processes, path, build_yaml in config.yaml_files:
            if any(p in view.processes for p in processes):
                header = "".join(f"# {line}\n" for line in
                                 _header(plan, config, node, path).splitlines())
                yield _file(node, path, header + yaml.safe_dump(build_yaml(view),
                                                                sort_keys=False))


def _file(node: str, path: str, text: str) -> RenderedFile:
    # Passwords inside: readable by the service's group only (the deployer sets the group).
    return RenderedFile(node=node, path=path, content=text, system=SYSTEM, mode=0o640,
                        owner="root")


def render(ctx: RenderContext) -> list[RenderedFile]:
    timings = client_timings(ctx.budget)
    files: list[RenderedFile] = []
    for config in _enabled_configs(ctx.plan):
        files.extend(_files_for(ctx, config, timings))
    return files
