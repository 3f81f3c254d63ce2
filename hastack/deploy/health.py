"""What a deployment is doing now, typed: per node and system, and the anomalies that matter.

Stage 5 (deploy), read-only. Every observation comes from the one implementation in its
system module (`loadbalancing.vip_holders`, `HAProxyAdmin`, `galera.member_status`,
`rabbitmq.view`, `caches.redis_view`, `keystone.health`); this module gathers them at once
and names what is wrong as typed `Anomaly` values, so a caller (recovery ignoring what it
left out on purpose) filters by kind and node, never by matching strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hastack.deploy.base import ServiceState
from hastack.deploy.site import Site
from hastack.deploy.systems import (
    caches,
    galera,
    keystone,
    loadbalancing,
    openstack,
    pacemaker,
    rabbitmq,
)
from hastack.deploy.systems.keystone import KeystoneView
from hastack.deploy.systems.loadbalancing import HAProxyView
from hastack.deploy.systems.pacemaker import ClusterView
from hastack.deploy.systems.rabbitmq import RabbitView
from hastack.errors import LabError


class Kind(StrEnum):
    NODE_DOWN = "node-down"
    SERVICE = "service"                  # a planned service is not RUNNING
    VIP = "vip"                          # a VIP without exactly one holder
    GALERA_NO_PRIMARY = "galera-no-primary"
    GALERA_SIZE = "galera-size"
    GALERA_MEMBER = "galera-member"      # a member not Synced
    GALERA_NO_WRITER = "galera-no-writer"
    RABBIT_MEMBERS = "rabbitmq-members"
    RABBIT_PARTITION = "rabbitmq-partition"
    KEYSTONE_NODE = "keystone-node"
    KEYSTONE_VIP = "keystone-vip"
    PACEMAKER_QUORUM = "pacemaker-quorum"      # no member answers, or no quorum
    PACEMAKER_MEMBER = "pacemaker-member"      # a reachable member not online
    PACEMAKER_RESOURCE = "pacemaker-resource"  # a resource not started, or a failed action
    API_BACKEND = "api-backend"          # HAProxy finds a running API's back end DOWN
    RPC_SERVICE = "rpc-service"  # an OpenStack RPC service (Nova's, Heat's) not reporting
    TOOZ_GROUP = "tooz-group"    # a tooz group whose live members are not the running agents


@dataclass(frozen=True)
class Anomaly:
    kind: Kind
    message: str
    node: str | None = None
    service: str | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class NodeView:
    alive: bool
    services: Mapping[str, ServiceState]
    details: Mapping[str, Any] = field(default_factory=dict)   # the deployer's (pid, address)

    def to_json(self) -> dict[str, Any]:
        return {"alive": self.alive, **self.details,
                "programs": {s: str(state) if self.alive else "NODE DOWN"
                             for s, state in self.services.items()}}


@dataclass(frozen=True)
class GaleraView:
    members: Mapping[str, galera.MemberStatus]
    writer: str | None

    @property
    def primary(self) -> bool:
        return any(m.primary for m in self.members.values())

    @property
    def size(self) -> int:
        return max((m.size for m in self.members.values() if m.primary), default=0)

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "primary": self.primary, "writer": self.writer,
                "members": {n: {"state": m.state, "cluster_status": m.cluster_status,
                                "size": m.size} for n, m in self.members.items()}}


@dataclass(frozen=True)
class Health:
    cloud: str
    anomalies: tuple[Anomaly, ...]
    vips: Mapping[str, str]
    vip_holders: Mapping[str, list[str]]
    nodes: Mapping[str, NodeView]
    haproxy: HAProxyView
    galera: GaleraView | None = None
    rabbitmq: RabbitView | None = None
    memcached: tuple[str, ...] = ()
    redis: caches.RedisView | None = None
    keystone: KeystoneView | None = None
    pacemaker: ClusterView | None = None
    # OpenStack service -> its service list (None: no Galera member answered for it).
    services: Mapping[str, tuple[openstack.RpcService, ...] | None] = field(
        default_factory=dict)
    clouds_yaml: str | None = None
    skipped: tuple[tuple[str, str, str], ...] = ()
    state_dir: str = ""

    @property
    def healthy(self) -> bool:
        return not self.anomalies

    def to_json(self) -> dict[str, Any]:
        def opt(value: Any) -> Any:
            return value.to_json() if value is not None else None
        return {
            "cloud": self.cloud, "healthy": self.healthy,
            "anomalies": [str(a) for a in self.anomalies],
            "vips": dict(self.vips), "vip_holders": dict(self.vip_holders),
            "galera": opt(self.galera), "rabbitmq": opt(self.rabbitmq),
            "memcached": list(self.memcached), "redis": opt(self.redis),
            "keystone": opt(self.keystone), "pacemaker": opt(self.pacemaker),
            "services": {name: None if rows is None else [s.to_json() for s in rows]
                         for name, rows in self.services.items()},
            "clouds_yaml": self.clouds_yaml,
            "haproxy": self.haproxy.to_json(),
            "nodes": {n: v.to_json() for n, v in self.nodes.items()},
            "skipped": [{"process": p, "nodes": n, "reason": r} for p, n, r in self.skipped],
            "state_dir": self.state_dir,
        }


def collect(site: Site, details: Mapping[str, Mapping[str, Any]] | None = None) -> Health:
    """Every observation at once, then the anomalies. `details` adds the deployer's facts
    per node (the lab: pid and address) to the node views."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        nodes_f = pool.submit(_nodes, site, details or {})
        holders_f = pool.submit(loadbalancing.vip_holders, site)
        galera_f = pool.submit(galera.statuses, site)
        rabbit_f = pool.submit(rabbitmq.view, site)
        redis_f = pool.submit(caches.redis_view, site, tuple(openstack.tooz_groups(site)))
        keystone_f = pool.submit(keystone.health, site)
        memcached_f = pool.submit(caches.memcached_servers, site)
        pacemaker_f = pool.submit(pacemaker.cluster_view, site)
        services_f = pool.submit(openstack.rpc_services, site)
        holders = holders_f.result()
        haproxy = loadbalancing.haproxy_view(site, holders)
        nodes = nodes_f.result()
        members = galera_f.result()
        galera_view = GaleraView(members, haproxy.galera_writer()) \
            if site.plan.runs(galera.PROCESS) else None
        rabbit, redis, ks = rabbit_f.result(), redis_f.result(), keystone_f.result()
        memcached = tuple(memcached_f.result())
        cluster = pacemaker_f.result()
        services = services_f.result()
    anomalies = [Anomaly(Kind.NODE_DOWN, f"node {n} is not running", node=n)
                 for n in site.unreachable]
    anomalies += _service_anomalies(nodes)
    anomalies += [Anomaly(Kind.VIP, f"VIP {name} held by {len(h)} nodes "
                                    f"({', '.join(h) or 'none'})")
                  for name, h in holders.items() if len(h) != 1]
    if galera_view is not None:
        anomalies += _galera_anomalies(site, galera_view)
    if rabbit is not None:
        expected = len(site.plan.nodes_running(rabbitmq.PROCESS))
        if len(rabbit.running) != expected:
            anomalies.append(Anomaly(Kind.RABBIT_MEMBERS, f"RabbitMQ: {len(rabbit.running)} "
                                                          f"of {expected} members running"))
        if rabbit.partitions:
            anomalies.append(Anomaly(Kind.RABBIT_PARTITION,
                                     f"RabbitMQ: partitioned {rabbit.partitions}"))
    if ks is not None:
        anomalies += _keystone_anomalies(ks)
    if site.members(pacemaker.COROSYNC):
        anomalies += _pacemaker_anomalies(site, cluster)
    anomalies += _api_backend_anomalies(site, nodes, haproxy)
    anomalies += _rpc_service_anomalies(site, nodes, services)
    anomalies += _tooz_group_anomalies(site, nodes, redis)
    clouds_yaml = keystone.clouds_yaml_path(site)
    return Health(
        cloud=site.cloud.name, anomalies=tuple(anomalies),
        vips={name: str(ip) for name, ip in site.cloud.vips.items()}, vip_holders=holders,
        nodes=nodes, haproxy=haproxy, galera=galera_view, rabbitmq=rabbit,
        memcached=memcached, redis=redis, keystone=ks, pacemaker=cluster, services=services,
        clouds_yaml=str(clouds_yaml) if ks is not None and clouds_yaml.exists() else None,
        skipped=tuple(site.skipped), state_dir=str(site.state))


def _nodes(site: Site, details: Mapping[str, Mapping[str, Any]]) -> dict[str, NodeView]:
    views: dict[str, NodeView] = {}
    for name in [*(n.name for n in site.cloud.nodes),
                 *([site.client.name] if site.client is not None else [])]:
        node = site.client if site.client is not None and name == site.client.name \
            else site.nodes.get(name)
        planned = list(site.planned_services(name))
        if node is None:
            views[name] = NodeView(False, {s: ServiceState.UNKNOWN for s in planned})
            continue
        try:
            states = node.services.states()
        except LabError:
            states = {s: ServiceState.UNKNOWN for s in planned}
        views[name] = NodeView(True, states, details.get(name, {}))
    return views


def _service_anomalies(nodes: Mapping[str, NodeView]) -> list[Anomaly]:
    return [Anomaly(Kind.SERVICE, f"{name}: {service} is "
                                  f"{state if view.alive else 'NODE DOWN'}",
                    node=name, service=service)
            for name, view in nodes.items() for service, state in view.services.items()
            if not view.alive or state is not ServiceState.RUNNING]


def _galera_anomalies(site: Site, view: GaleraView) -> list[Anomaly]:
    found = []
    expected = len(site.plan.nodes_running(galera.PROCESS))
    if not view.primary:
        found.append(Anomaly(Kind.GALERA_NO_PRIMARY, "Galera: no primary component"))
    if view.size != expected:
        found.append(Anomaly(Kind.GALERA_SIZE,
                             f"Galera: cluster size {view.size}, {expected} planned"))
    for name, member in view.members.items():
        if member.state != "Synced":
            found.append(Anomaly(Kind.GALERA_MEMBER,
                                 f"Galera: {name} is {member.state or 'down'}", node=name))
    if site.plan.runs(loadbalancing.HAPROXY) and view.writer is None:
        found.append(Anomaly(Kind.GALERA_NO_WRITER,
                             "Galera: HAProxy has no UP server to send writes to"))
    return found


def _api_backend_anomalies(site: Site, nodes: Mapping[str, NodeView],
                           haproxy: HAProxyView) -> list[Anomaly]:
    """A back end HAProxy finds DOWN although its program runs there: the API is up as a
    process but does not answer its health check."""
    found = []
    for frontend in site.plan.frontends:
        servers = haproxy.backends.get(frontend.name, {})
        for node, state in servers.items():
            view = nodes.get(node)
            programs = openstack.programs_of(frontend.process)
            if view is None or not view.alive or state.up:
                continue
            if any(view.services.get(p) is ServiceState.RUNNING for p in programs):
                found.append(Anomaly(Kind.API_BACKEND, f"HAProxy {frontend.name}: {node} is "
                                     f"{state.status}", node=node, service=frontend.process))
    return found


def _rpc_service_anomalies(
        site: Site, nodes: Mapping[str, NodeView],
        services: Mapping[str, tuple[openstack.RpcService, ...] | None]) -> list[Anomaly]:
    """Every planned RPC service of a live node that its service list does not show up."""
    found = []
    for table in openstack.SERVICE_TABLES:
        if table.service not in services:
            continue
        rows = services[table.service]
        if rows is None:
            found.append(Anomaly(Kind.RPC_SERVICE, f"{table.title}: no Galera member answers "
                                                   "for its services"))
            continue
        reported = {(s.binary, s.host): s for s in rows}
        for process in table.binaries:
            for node in site.plan.nodes_running(process):
                view = nodes.get(node)
                if view is None or not view.alive:
                    continue                 # NODE_DOWN says it
                service = reported.get((process, node))
                if service is None or not service.up:
                    state = "not registered" if service is None else \
                        f"down (last report {service.age_s} s ago)"
                    found.append(Anomaly(Kind.RPC_SERVICE, f"{table.title}: {process} on "
                                         f"{node} is {state}", node=node, service=process))
    return found


def _tooz_group_anomalies(site: Site, nodes: Mapping[str, NodeView],
                          redis: caches.RedisView | None) -> list[Anomaly]:
    """A tooz group whose live members are not as many as the agents running: one too many
    is a dead agent whose membership has not expired yet (its share is polled by nobody until
    it does); one too few has not joined (the others' rings leave it out, so what it polls
    they poll too). Counts only: a dead member and a missing agent at once cancel out."""
    if redis is None:
        return []
    found = []
    for group, process in openstack.tooz_groups(site).items():
        members = redis.groups.get(group)
        if members is None:
            found.append(Anomaly(Kind.TOOZ_GROUP, f"tooz group {group}: no Redis master "
                                                  "answers", service=process))
            continue
        running = [n for n in site.plan.nodes_running(process)
                   if (view := nodes.get(n)) is not None and view.alive
                   and view.services.get(process) is ServiceState.RUNNING]
        if len(members) != len(running):
            found.append(Anomaly(Kind.TOOZ_GROUP, f"tooz group {group}: {len(members)} live "
                                 f"members, {len(running)} {process} running",
                                 service=process))
    return found


def _pacemaker_anomalies(site: Site, view: ClusterView | None) -> list[Anomaly]:
    if view is None:
        return [Anomaly(Kind.PACEMAKER_QUORUM, "Pacemaker: no member's crm_mon answers")]
    found = []
    if not view.quorate:
        found.append(Anomaly(Kind.PACEMAKER_QUORUM,
                             f"Pacemaker: no quorum (as {view.reporter} sees it)"))
    for node in site.members(pacemaker.COROSYNC):
        if node.name not in view.online:
            found.append(Anomaly(Kind.PACEMAKER_MEMBER,
                                 f"Pacemaker: {node.name} is not online", node=node.name))
    found += [Anomaly(Kind.PACEMAKER_RESOURCE, f"Pacemaker: {r.id} is {r.role}"
                      + (" (failed)" if r.failed else ""))
              for r in view.primitives_not_started()]
    found += [Anomaly(Kind.PACEMAKER_RESOURCE, f"Pacemaker: failed {action}")
              for action in view.failed_actions]
    return found


def _keystone_anomalies(view: KeystoneView) -> list[Anomaly]:
    found = [Anomaly(Kind.KEYSTONE_NODE, f"Keystone: {name} does not answer GET /v3 "
                                         f"({check.status or check.detail})", node=name)
             for name, check in view.nodes.items() if not check.healthy]
    if not view.vip.healthy:
        found.append(Anomaly(Kind.KEYSTONE_VIP, "Keystone: no answer on the VIP "
                                                f"({view.vip.status or view.vip.detail})"))
    return found
