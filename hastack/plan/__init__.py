"""Stage 2: the plan — which process runs on which node, in which mode, guarded by what.

Pure: a Cloud and the catalog in, an immutable Plan out. Checks, render and the lab read the
plan; nothing here knows about files or namespaces.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from ipaddress import IPv4Address
from typing import Any

from hastack.catalog import (
    Catalog,
    HealthCheck,
    Mode,
    Port,
    ProcessSpec,
    SeedNote,
    Strategy,
    condition_holds,
    load_catalog,
    setting_value,
)
from hastack.errors import CatalogError
from hastack.model.cloud import HOME_REGION, Architecture, Cloud, Node, Role
from hastack.plan.layout import (
    CellPlan,
    FailureDomains,
    control_plane_cloud,
    failure_domains,
    plan_cells,
    shared_services,
)
from hastack.plan.vrrp import VrrpInstance, plan_vrrp

# Where VIPs are announced from: the load balancers (or controllers that collapse them).
VIP_ROLE = Role.loadbalancer


@dataclass(frozen=True)
class Frontend:
    """An HAProxy listener on one or more VIPs, balancing a process across nodes."""

    name: str
    process: str
    port: int
    mode: str                      # http | tcp
    balance: str                   # roundrobin | single-writer
    vips: tuple[str, ...]
    check: HealthCheck
    backends: tuple[str, ...]      # node names; for single-writer the first is the writer

    @property
    def single_writer(self) -> bool:
        return self.balance == "single-writer"


@dataclass(frozen=True)
class PlannedProcess:
    service: str
    process: str
    mode: Mode
    strategy: Strategy
    nodes: tuple[str, ...]
    ports: tuple[Port, ...]
    health: HealthCheck
    guards: tuple[str, ...]
    cluster: str | None
    seeds: tuple[SeedNote, ...]
    frontends: tuple[Frontend, ...] = ()
    retired: str | None = None          # removed upstream (catalog): never run

    @property
    def active_node(self) -> str | None:
        """For A/P processes, the node Pacemaker prefers; None for A/A."""
        return self.nodes[0] if self.mode == "A/P" and self.nodes else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "process": self.process,
            "mode": self.mode,
            "strategy": self.strategy,
            "nodes": list(self.nodes),
            "active": self.active_node,
            "guards": list(self.guards),
            "ports": [p.port for p in self.ports],
            "health": self.health.model_dump(exclude_none=True),
            "cluster": self.cluster,
        }


@dataclass(frozen=True)
class PlannedVip:
    name: str
    address: IPv4Address
    mechanism: str                 # keepalived | pacemaker
    candidates: tuple[str, ...]    # nodes that may hold it, in priority order
    frontends: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": str(self.address),
            "mechanism": self.mechanism,
            "candidates": list(self.candidates),
            "frontends": list(self.frontends),
        }


@dataclass(frozen=True)
class Cluster:
    """A quorum-based cluster: its voting members (arbitrators vote but hold no data)."""

    name: str
    members: tuple[str, ...]
    arbitrators: tuple[str, ...] = ()

    @property
    def voters(self) -> int:
        return len(self.members) + len(self.arbitrators)

    def as_dict(self) -> dict[str, Any]:
        return {"members": list(self.members), "arbitrators": list(self.arbitrators),
                "voters": self.voters}


@dataclass(frozen=True)
class Plan:
    """One region's control plane (`cloud` holds its nodes and VIPs). The plan of the home
    region, which `make_plan` returns, also carries the other regions' plans (`regions`)."""

    cloud: Cloud
    catalog: Catalog
    processes: tuple[PlannedProcess, ...]
    vips: tuple[PlannedVip, ...]
    clusters: tuple[Cluster, ...] = field(default=())
    # Processes the cloud enables but no node can run (e.g. nova-compute without compute nodes).
    unplaced: tuple[tuple[str, str], ...] = field(default=())   # (process, reason)
    region: str = HOME_REGION
    # The whole cloud file (every region, cell, rack and segment); `cloud` when it is one.
    whole: Cloud | None = None
    cells: tuple[CellPlan, ...] = ()
    # Services this region uses from the home region (a shared Keystone, Glance).
    shared: tuple[str, ...] = ()
    # Every region's VRRP instances and the racks, PDUs and zones of every node.
    vrrp: tuple[VrrpInstance, ...] = ()
    domains: FailureDomains | None = None
    regions: tuple[Plan, ...] = ()

    @property
    def full_cloud(self) -> Cloud:
        return self.whole or self.cloud

    @property
    def control_planes(self) -> tuple[Plan, ...]:
        """This region's plan and every other region's."""
        return (self, *self.regions)

    @property
    def layered(self) -> bool:
        """The cloud file uses regions, cells, racks, zones or segments."""
        c = self.full_cloud
        return bool(c.partitioned or c.racks or c.zones or c.segments)

    def router_ids(self) -> dict[str, int]:
        """This region's VRID per VIP name (from plan.vrrp, which the linter checks)."""
        return {v.vip: v.vrid for v in self.vrrp if v.region == self.region}

    @cached_property
    def _by_name(self) -> dict[str, PlannedProcess]:
        return {p.process: p for p in self.processes}

    def process(self, name: str) -> PlannedProcess | None:
        return self._by_name.get(name)

    def runs(self, name: str) -> bool:
        return name in self._by_name

    def nodes_running(self, name: str) -> tuple[str, ...]:
        planned = self._by_name.get(name)
        return planned.nodes if planned else ()

    def port(self, process: str, name: str | None = None) -> int:
        """The port of a process called `name` (else its first): as planned, else as the
        catalog has it. The one lookup of a port that render, deploy and chaos share."""
        planned = self.process(process)
        for ports in ((planned.ports if planned else ()), self.catalog.process(process).ports):
            for port in ports:
                if name is None or port.name == name:
                    return port.port
        raise CatalogError(f"catalog: {process} has no port {name or '(none)'}")

    def cluster(self, name: str) -> Cluster | None:
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        return None

    def vip(self, name: str) -> PlannedVip | None:
        for vip in self.vips:
            if vip.name == name:
                return vip
        return None

    @property
    def frontends(self) -> tuple[Frontend, ...]:
        return tuple(f for p in self.processes for f in p.frontends)

    @property
    def pacemaker_cluster(self) -> bool:
        return self.cluster("corosync") is not None

    @property
    def active_passive(self) -> tuple[PlannedProcess, ...]:
        return tuple(p for p in self.processes if p.mode == "A/P" and p.strategy == "pacemaker")

    def nodes_of(self, node: str) -> tuple[PlannedProcess, ...]:
        """Every process planned on one node."""
        return tuple(p for p in self.processes if node in p.nodes)

    def as_dict(self) -> dict[str, Any]:
        shape: dict[str, Any] = {
            "cloud": self.cloud.name,
            "architecture": self.cloud.architecture.value,
            "processes": [p.as_dict() for p in self.processes],
            "vips": {v.name: v.as_dict() for v in self.vips},
            "clusters": {c.name: c.as_dict() for c in self.clusters},
            "unplaced": [{"process": p, "reason": r} for p, r in self.unplaced],
        }
        if not self.layered:
            return shape
        shape["region"] = self.region
        shape["shared_from_home_region"] = list(self.shared)
        shape["cells"] = {c.name: c.as_dict() for c in self.cells}
        if self.cells:
            api = self.cluster("galera")
            # Nova's cell0 (instances that failed to schedule) lives in the API database;
            # the super-conductor runs on the control plane.
            shape["cell0"] = {"database": list(api.members) if api else [],
                              "super_conductor": list(self.nodes_running("nova-conductor"))}
        shape["vrrp"] = {v.vip: v.vrid for v in self.vrrp if v.region == self.region}
        if self.region == self.full_cloud.region:
            if self.domains is not None:
                shape["zones"] = {z.name: z.as_dict() for z in self.domains.zones}
            shape["regions"] = {r.region: r.as_dict() for r in self.regions}
        return shape


def make_plan(cloud: Cloud, catalog: Catalog | None = None) -> Plan:
    """Plan every region's control plane and cells; the home region's plan carries the rest.
    A cloud with one region and no cells is planned exactly as it always was."""
    catalog = catalog or load_catalog()
    vrrp = plan_vrrp(cloud)
    domains = failure_domains(cloud)
    plans = []
    for region in (cloud.region, *(r.name for r in cloud.regions)):
        control = _place(control_plane_cloud(cloud, region), catalog)
        galera, rabbitmq = control.cluster("galera"), control.cluster("rabbitmq")
        cells = plan_cells(
            cloud, region, control.nodes_running("nova-conductor"),
            galera.members if galera else (), rabbitmq.members if rabbitmq else (),
            control.nodes_running("nova-compute"),
        ) if cloud.has_service("nova") else ()
        plans.append(replace(control, region=region, whole=cloud, cells=cells,
                             shared=shared_services(cloud, region), vrrp=vrrp,
                             domains=domains))
    return replace(plans[0], regions=tuple(plans[1:]))


def _place(cloud: Cloud, catalog: Catalog) -> Plan:
    """Place every catalog process of one control plane onto its nodes, say what guards it."""
    placer = _Placer(cloud, catalog)

    # Pacemaker runs when the architecture is pacemaker or any planned process needs it;
    # the rows that depend on that are placed in a second pass.
    first = [spec for spec in catalog.processes if not spec.needs_pacemaker_cluster()]
    effective = [e for spec in first if (e := placer.effective(spec, pacemaker_cluster=False))]
    pacemaker_cluster = cloud.architecture is Architecture.pacemaker or any(
        e.strategy == "pacemaker" for e in effective
    )
    second = [spec for spec in catalog.processes if spec.needs_pacemaker_cluster()]
    effective += [_with_strategy_nodes(e, effective) for spec in second
                  if (e := placer.effective(spec, pacemaker_cluster))]
    order = {spec.process: i for i, spec in enumerate(catalog.processes)}
    effective.sort(key=lambda e: order[e.spec.process])

    unplaced = tuple(
        (e.spec.process, f"no node has role {' or '.join(r.value for r in e.roles)}")
        for e in effective if not e.nodes
    )
    effective = [e for e in effective if e.nodes]
    clusters = _clusters(cloud, effective)
    vip_holders = placer.nodes_for((VIP_ROLE,))
    mechanism = "pacemaker" if cloud.architecture is Architecture.pacemaker else "keepalived"
    processes = tuple(_planned(cloud, e, clusters, mechanism) for e in effective)
    frontend_names = {name: [f.name for p in processes for f in p.frontends if name in f.vips]
                      for name, _ in cloud.vips.items()}
    vips = tuple(
        PlannedVip(name, address, mechanism, vip_holders, tuple(frontend_names[name]))
        for name, address in cloud.vips.items()
    )
    return Plan(cloud, catalog, processes, vips, tuple(clusters.values()), unplaced)


@dataclass(frozen=True)
class _Effective:
    """A catalog row after the cloud's overrides, with the nodes it lands on."""

    spec: ProcessSpec
    mode: Mode
    strategy: Strategy
    roles: tuple[Role, ...]
    nodes: tuple[str, ...]


def _with_strategy_nodes(e: _Effective, others: list[_Effective]) -> _Effective:
    """Add the nodes of every process guarded by `also_with_strategy` (cluster members must
    include every node that runs a resource of the cluster)."""
    strategy = e.spec.also_with_strategy
    if strategy is None:
        return e
    extra = [n for o in others if o.strategy == strategy for n in o.nodes]
    nodes = tuple(dict.fromkeys([*e.nodes, *extra]))
    return _Effective(e.spec, e.mode, e.strategy, e.roles, nodes)


class _Placer:
    def __init__(self, cloud: Cloud, catalog: Catalog):
        self.cloud = cloud
        self.collapsed = set(catalog.roles.controller_collapses)
        self._by_role: dict[Role, tuple[str, ...]] = {
            role: tuple(n.name for n in cloud.nodes if role in n.roles) for role in Role
        }

    def effective(self, spec: ProcessSpec, pacemaker_cluster: bool) -> _Effective | None:
        if spec.enabled_when is None:
            if not self.cloud.has_service(spec.service):
                return None
        elif not condition_holds(spec.enabled_when, self.cloud, pacemaker_cluster):
            return None
        mode, strategy, roles = spec.mode, spec.strategy, spec.roles
        for override in spec.overrides:
            if condition_holds(override.when, self.cloud, pacemaker_cluster):
                mode = override.set.mode or mode
                strategy = override.set.strategy or strategy
                roles = override.set.roles or roles
        if spec.placed_on_setting:
            nodes: tuple[str, ...] = (setting_value(self.cloud, spec.placed_on_setting),)
        elif spec.place_on_all_roles:
            wanted = set(roles)
            nodes = tuple(n.name for n in self.cloud.nodes
                          if wanted & set(n.roles) or self._collapses(n, wanted))
        else:
            nodes = self.nodes_for(roles)
        return _Effective(spec, mode, strategy, roles, nodes)

    def nodes_for(self, roles: tuple[Role, ...]) -> tuple[str, ...]:
        """Nodes carrying the first role that any node carries; controllers stand in for a
        collapsible role nobody carries."""
        for role in roles:
            if self._by_role[role]:
                return self._by_role[role]
        for role in roles:
            if role in self.collapsed:
                return self._by_role[Role.controller]
        return ()

    def _collapses(self, node: Node, wanted: set[Role]) -> bool:
        return Role.controller in node.roles and any(
            role in self.collapsed and not self._by_role[role] for role in wanted
        )


def _clusters(cloud: Cloud, effective: list[_Effective]) -> dict[str, Cluster]:
    members: dict[str, list[str]] = {}
    arbitrators: dict[str, list[str]] = {}
    for e in effective:
        if e.spec.cluster is None:
            continue
        target = arbitrators if e.spec.placed_on_setting else members
        bucket = target.setdefault(e.spec.cluster, [])
        bucket.extend(n for n in e.nodes if n not in bucket)
    names = list(dict.fromkeys([*members, *arbitrators]))
    return {
        name: Cluster(name, tuple(members.get(name, ())), tuple(arbitrators.get(name, ())))
        for name in names
    }


def _planned(cloud: Cloud, e: _Effective, clusters: dict[str, Cluster],
             vip_mechanism: str) -> PlannedProcess:
    spec = e.spec
    frontends = tuple(
        Frontend(
            name=f.name, process=spec.process, port=f.port, mode=f.mode, balance=f.balance,
            vips=tuple(v for v in f.vips if any(v == name for name, _ in cloud.vips.items())),
            check=f.check, backends=e.nodes,
        )
        for f in spec.frontends
    )
    guards = _guards(cloud, e, frontends, clusters, vip_mechanism)
    return PlannedProcess(
        service=spec.service, process=spec.process, mode=e.mode, strategy=e.strategy,
        nodes=e.nodes, ports=spec.ports, health=spec.health, guards=guards,
        cluster=spec.cluster, seeds=spec.seeds, frontends=frontends, retired=spec.retired,
    )


def _guards(cloud: Cloud, e: _Effective, frontends: tuple[Frontend, ...],
            clusters: dict[str, Cluster], vip_mechanism: str) -> tuple[str, ...]:
    """Human-readable list of what keeps this process reachable."""
    guards: list[str] = []
    vip_addresses = dict(cloud.vips.items())
    for f in frontends:
        where = ", ".join(f"{vip} {vip_addresses[vip]}:{f.port}" for vip in f.vips)
        if f.single_writer and f.backends:
            writer, *backups = f.backends
            guards.append(f"HAProxy {f.name} on {where}: single writer {writer}, "
                          f"backups {', '.join(backups) or 'none'}; "
                          f"{f.check.kind} check :{f.check.port or f.port}")
        else:
            guards.append(f"HAProxy {f.name} on {where} -> {len(f.backends)} back ends, "
                          f"{f.check.kind} check")
    if e.spec.cluster and e.spec.cluster in clusters:
        cluster = clusters[e.spec.cluster]
        extra = f" + {len(cluster.arbitrators)} arbitrator" if cluster.arbitrators else ""
        guards.append(f"{cluster.name} cluster of {len(cluster.members)} members{extra}")
    settings = cloud.settings
    if e.spec.client_list:
        guards.append(f"client-side list of {len(e.nodes)} instances ({e.spec.client_list})")
    by_strategy = {
        "keepalived": lambda: f"{vip_mechanism} moves VIPs "
                              f"{', '.join(name for name, _ in cloud.vips.items())}",
        "pacemaker": lambda: (
            f"Pacemaker resource, active on {e.nodes[0] if e.nodes else '-'}"
            if e.mode == "A/P" else f"Pacemaker clone on {len(e.nodes)} nodes, VIPs colocated"
        ) + f", fencing {settings.pacemaker.fencing}",
        "rpc": lambda: f"{len(e.nodes)} instances on one RPC topic over RabbitMQ",
        "dhcp-agents": lambda: f"each network on {settings.neutron.dhcp_agents_per_network} "
                               f"of {len(e.nodes)} DHCP agents",
        "l3-ha": lambda: f"each router on {settings.neutron.min_l3_agents_per_router}-"
                         f"{settings.neutron.max_l3_agents_per_router} of {len(e.nodes)} L3 "
                         "agents, VRRP on 169.254.192.0/18",
        "tooz": lambda: f"workload partitioned by tooz over Redis Sentinel "
                        f"({settings.ceilometer.coordination})",
        "per-node": lambda: "one per node, serves that node",
        "none": lambda: "not guarded",
    }
    describe = by_strategy.get(e.strategy)
    if describe is not None and not (e.strategy == "keepalived" and e.spec.process == "keepalived"):
        guards.append(describe())
    return tuple(guards)
