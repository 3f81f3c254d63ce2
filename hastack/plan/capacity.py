"""The load each cluster takes from the cloud's size, against its limit (stage 2, plan).

Pure: a Plan and the bundled capacity data (hastack/catalog/capacity.yaml) in, one
`ClusterLoad` per cell, message bus, database, frontend and segment out. The cloud file's
`capacity:` overrides any limit or workload assumption. Read by `hastack plan --capacity`
and the linter's capacity rules.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from hastack.catalog import Capacity, Limit, load_capacity
from hastack.model.cloud import Cloud
from hastack.plan import Plan


@dataclass(frozen=True)
class ClusterLoad:
    """One cluster's load against one limit."""

    scope: str         # "phx/cell1", "phx", "segment 198.18.0.0/24"
    limit_id: str      # a key of capacity.yaml's limits
    load: float
    limit: float
    warn_at: float     # the share of the limit past which the linter warns
    limit_data: Limit

    @property
    def used(self) -> float:
        return self.load / self.limit

    @property
    def headroom(self) -> float:
        return self.limit - self.load

    @property
    def state(self) -> str:
        if self.load > self.limit:
            return "over"
        return "near" if self.used >= self.warn_at else "ok"


class _Numbers:
    """Bundled limits and workload, with the cloud file's overrides applied."""

    def __init__(self, cloud: Cloud, capacity: Capacity):
        overrides = cloud.capacity
        self.capacity = capacity
        self.warn_at = overrides.warn_at or capacity.warn_at
        self.limits = {key: getattr(overrides, key) or limit.value
                       for key, limit in capacity.limits.items()}
        self.workload = {key: getattr(overrides, key) or getattr(capacity.workload, key)
                         for key in type(capacity.workload).model_fields}

    def interval(self, value: float | str) -> float:
        return float(self.workload[value]) if isinstance(value, str) else value

    def load(self, scope: str, limit_id: str, load: float) -> ClusterLoad:
        return ClusterLoad(scope, limit_id, load, float(self.limits[limit_id]), self.warn_at,
                           self.capacity.limits[limit_id])


def cluster_loads(plan: Plan) -> tuple[ClusterLoad, ...]:
    """Every cluster of every region: computes per cell, messages and writes per second on
    each RabbitMQ and Galera cluster, database-frontend connections, VRIDs per segment and
    HA routers per project."""
    numbers = _Numbers(plan.full_cloud, load_capacity())
    loads: list[ClusterLoad] = []
    for control in plan.control_planes:
        loads += _region_loads(control, numbers)
    loads += _segment_loads(plan, numbers)
    return tuple(loads)


def _region_loads(control: Plan, n: _Numbers) -> list[ClusterLoad]:
    region = control.region
    # Per report kind: how many nodes send it, on the region's bus or their cell's.
    cell_of = {node: cell for cell in control.cells if cell.own for node in cell.computes}
    region_msgs: float = 0.0
    region_writes: float = 0.0
    cell_msgs: defaultdict[str, float] = defaultdict(float)
    cell_writes: defaultdict[str, float] = defaultdict(float)
    for report in n.capacity.reports:
        per_node = 1 / n.interval(report.interval)
        for node in control.nodes_running(report.process):
            cell = cell_of.get(node) if report.bus == "cell" else None
            if cell is None:
                region_msgs += report.messages * per_node
                region_writes += report.writes * per_node
            else:
                cell_msgs[cell.name] += report.messages * per_node
                cell_writes[cell.name] += report.writes * per_node
    loads: list[ClusterLoad] = []
    for cell in control.cells:
        scope = f"{region}/{cell.name}"
        loads.append(n.load(scope, "computes_per_cell", len(cell.computes)))
        if cell.own:
            loads.append(n.load(scope, "rabbitmq_messages_per_second", cell_msgs[cell.name]))
            loads.append(n.load(scope, "galera_writes_per_second", cell_writes[cell.name]))
    if control.runs("rabbitmq"):
        loads.append(n.load(region, "rabbitmq_messages_per_second", region_msgs))
    if control.runs("mariadb-galera"):
        loads.append(n.load(region, "galera_writes_per_second", region_writes))
        loads.append(n.load(region, "haproxy_frontend_connections",
                            _database_connections(control, n)))
    neutron = control.cloud.settings.neutron
    if control.runs("neutron-l3-agent") and neutron.l3_ha:
        loads.append(n.load(region, "ha_routers_per_ha_network",
                            n.workload["ha_routers_per_project"]))
    return loads


def _database_connections(control: Plan, n: _Numbers) -> float:
    """Connections the database frontend may be asked for: one pool per worker of every
    database-using process instance of the control plane (a cell's own conductors use the
    cell's database, not this one)."""
    per_instance = n.workload["workers_per_process"] * n.workload["database_pool_per_worker"]
    instances = sum(len(control.nodes_running(p)) for p in n.capacity.database_clients)
    return float(instances * per_instance)


def _segment_loads(plan: Plan, n: _Numbers) -> list[ClusterLoad]:
    """VRIDs in use per L2 segment: this cloud's VIPs plus the declared neighbours'."""
    used: dict[str, set[tuple[str, int]]] = {}
    for instance in plan.vrrp:
        used.setdefault(str(instance.segment), set()).add((instance.region, instance.vrid))
    for segment in plan.full_cloud.segments:
        for neighbour in segment.neighbours:
            used.setdefault(str(segment.subnet), set()).update(
                (neighbour.name, vrid) for vrid in neighbour.virtual_router_ids)
    if not plan.runs("keepalived"):
        return []
    return [n.load(f"segment {segment}", "vrrp_instances_per_segment", len(ids))
            for segment, ids in sorted(used.items())]


