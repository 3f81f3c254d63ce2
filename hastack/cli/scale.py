"""What `hastack plan` prints for clouds beyond one control plane: regions and what they
share, Nova cells with their conductors, database and message bus, availability zones, and
(`--capacity`) the load of every cluster against its limit. Tables fit in 80 columns."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from hastack.plan import Plan
from hastack.plan.capacity import ClusterLoad, cluster_loads

STATE_STYLE = {"ok": "green", "near": "yellow", "over": "bold red"}


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1), title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _names(names: tuple[str, ...], limit: int = 3) -> str:
    if len(names) <= limit:
        return ", ".join(names) or "-"
    return f"{', '.join(names[:limit])} +{len(names) - limit}"


def print_layout(console: Console, plan: Plan) -> None:
    """Regions, cells and zones; printed after the per-region process tables."""
    cloud = plan.full_cloud
    regions = _table("regions", "region", "nodes", "VIP internal", "shares from home", "link")
    for control in plan.control_planes:
        declared = next((r for r in cloud.regions if r.name == control.region), None)
        link = "-" if declared is None else declared.link + (
            ", federated" if declared.keystone_federation else "")
        regions.add_row(control.region + (" (home)" if declared is None else ""),
                        str(len(control.cloud.nodes)), str(control.cloud.vips.internal),
                        ", ".join(control.shared) or "-", link)
    console.print(regions)
    cells = _table("Nova cells (cell0 and the super-conductor: the region's API database "
                   "and conductors)", "cell", "computes", "conductors", "database", "bus")
    for control in plan.control_planes:
        for cell in control.cells:
            conductors = _names(cell.conductors)
            if cell.conductors_on_control_plane:
                conductors += " (control plane)"
            shared = "" if cell.own else " (control plane)"
            cells.add_row(f"{cell.region}/{cell.name}", f"{len(cell.computes):,}", conductors,
                          _names(cell.database.members) + shared,
                          _names(cell.message_bus.members) + shared)
    console.print(cells)
    if plan.domains is not None and plan.domains.zones:
        zones = _table("availability zones", "zone", "kind", "racks", "nodes", "computes")
        for z in plan.domains.zones:
            zones.add_row(z.name, z.kind, _names(z.racks), f"{len(z.nodes):,}",
                          f"{len(z.computes):,}")
        console.print(zones)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def print_capacity(console: Console, plan: Plan) -> None:
    """One row per cluster and limit: load, limit, share used and headroom."""
    loads = cluster_loads(plan)
    table = _table("capacity: load from the cloud's size against each limit",
                   "cluster", "limit on", "load", "limit", "used", "headroom")
    for column in ("load", "limit", "used", "headroom"):
        next(c for c in table.columns if c.header == column).justify = "right"
    for load in loads:
        # A segment is known by its subnet; the "limit on" column says it is VRRP's.
        table.add_row(load.scope.removeprefix("segment "), load.limit_data.short,
                      _number(load.load), _number(load.limit), _used(load),
                      _number(load.headroom))
    console.print(table)
    worst = [load for load in loads if load.state != "ok"]
    console.print(f"{len(worst)} of {len(loads)} near or past their limit; "
                  "`hastack check` says what to do, `capacity:` in the cloud file overrides "
                  "a limit", highlight=False)


def _used(load: ClusterLoad) -> str:
    return f"[{STATE_STYLE[load.state]}]{load.used:.0%}[/]"
