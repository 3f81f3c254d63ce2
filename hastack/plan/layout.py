"""Where the cloud's control planes, cells and failure domains are (stage 2, plan).

Pure: from a Cloud, the nodes each region's control plane is planned on (`control_plane_cloud`),
the racks, PDUs and availability zones of every node, and, once a region's control plane is
planned, its Nova cells: which nodes run each cell's conductors, database and message bus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hastack.model.cloud import Cloud, Node, Role

# The cell every region has when it declares none: on the control plane's database and bus.
DEFAULT_CELL = "cell1"


@dataclass(frozen=True)
class ClusterMembers:
    """A quorum cluster of a cell (or of a control plane) by its voting nodes."""

    kind: str                      # galera | rabbitmq
    members: tuple[str, ...]

    @property
    def voters(self) -> int:
        return len(self.members)


@dataclass(frozen=True)
class CellPlan:
    """A Nova cells v2 cell: its computes, conductors, database and message bus. A cell of
    its own (`own`) has its own clusters; the region's default cell1 uses the control plane's."""

    name: str
    region: str
    own: bool
    computes: tuple[str, ...]
    conductors: tuple[str, ...]
    conductors_on_control_plane: bool
    database: ClusterMembers
    message_bus: ClusterMembers

    def as_dict(self) -> dict[str, Any]:
        return {"region": self.region, "own": self.own, "computes": len(self.computes),
                "conductors": list(self.conductors),
                "database": list(self.database.members),
                "message_bus": list(self.message_bus.members)}


@dataclass(frozen=True)
class ZonePlan:
    """An availability zone: its racks and nodes (computes are what users see in it)."""

    name: str
    kind: str
    racks: tuple[str, ...]
    nodes: tuple[str, ...]
    computes: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "racks": list(self.racks), "nodes": len(self.nodes),
                "computes": len(self.computes)}


@dataclass(frozen=True)
class FailureDomains:
    """Racks, PDUs and zones of every node that has them."""

    rack: dict[str, str]
    pdu: dict[str, str]
    zone: dict[str, str]
    zones: tuple[ZonePlan, ...]


def failure_domains(cloud: Cloud) -> FailureDomains:
    racks = {r.name: r for r in cloud.racks}
    rack: dict[str, str] = {}
    pdu: dict[str, str] = {}
    zone: dict[str, str] = {}
    for node in cloud.nodes:
        if node.rack is not None:
            rack[node.name] = node.rack
            if racks[node.rack].pdu is not None:
                pdu[node.name] = racks[node.rack].pdu  # type: ignore[assignment]
        where = node.zone or (racks[node.rack].zone if node.rack else None)
        if where is not None:
            zone[node.name] = where
    by_zone: dict[str, list[Node]] = {z.name: [] for z in cloud.zones}
    for node in cloud.nodes:
        if node.name in zone:
            by_zone[zone[node.name]].append(node)
    zones = tuple(
        ZonePlan(z.name, z.kind, tuple(r.name for r in cloud.racks if r.zone == z.name),
                 tuple(n.name for n in by_zone[z.name]),
                 tuple(n.name for n in by_zone[z.name] if n.has_role(Role.compute)))
        for z in cloud.zones
    )
    return FailureDomains(rack, pdu, zone, zones)


def shared_services(cloud: Cloud, region: str) -> tuple[str, ...]:
    """Services a region uses from the home region instead of running them."""
    for other in cloud.regions:
        if other.name == region:
            return tuple(s for s in other.shares if cloud.has_service(s))
    return ()


def control_plane_cloud(cloud: Cloud, region: str) -> Cloud:
    """The part of the cloud one region's control plane is planned from: the region's nodes
    but the nodes of its cells' own databases, buses and conductors (its compute nodes stay:
    they run nova-compute and the Neutron agents), its VIPs, its services minus the shared
    ones. A cloud with one region and no cells is its own control plane."""
    if not cloud.partitioned:
        return cloud
    nodes = tuple(n for n in cloud.nodes if cloud.region_of(n) == region
                  and (n.cell is None or n.has_role(Role.compute)))
    update: dict[str, Any] = {"nodes": nodes}
    if region != cloud.region:
        other = next(r for r in cloud.regions if r.name == region)
        update["vips"] = other.vips
        shared = shared_services(cloud, region)
        update["services"] = tuple(s for s in cloud.services if s not in shared)
    return cloud.model_copy(update=update)


def plan_cells(cloud: Cloud, region: str, conductors: tuple[str, ...],
               database: tuple[str, ...], message_bus: tuple[str, ...],
               computes: tuple[str, ...]) -> tuple[CellPlan, ...]:
    """The region's cells. `conductors`, `database` and `message_bus` are the control plane's
    nova-conductor nodes (the super-conductor), Galera and RabbitMQ members: the default cell
    uses them, and a cell without controller nodes runs its conductors there."""
    declared = [c for c in cloud.cells if (c.region or cloud.region) == region]
    if not declared:
        return (CellPlan(DEFAULT_CELL, region, False, computes, conductors, True,
                         ClusterMembers("galera", database),
                         ClusterMembers("rabbitmq", message_bus)),)
    members: dict[str, dict[Role, list[str]]] = {c.name: {} for c in declared}
    for node in cloud.nodes:
        if node.cell in members:
            for role in node.roles:
                members[node.cell].setdefault(role, []).append(node.name)
    cells = []
    for cell in declared:
        by_role = members[cell.name]
        controllers = tuple(by_role.get(Role.controller, ()))
        db = tuple(by_role.get(Role.database, ())) or controllers
        bus = tuple(by_role.get(Role.messaging, ())) or controllers
        cells.append(CellPlan(
            cell.name, region, True, tuple(by_role.get(Role.compute, ())),
            controllers or conductors, not controllers,
            ClusterMembers("galera", db), ClusterMembers("rabbitmq", bus)))
    return tuple(cells)
