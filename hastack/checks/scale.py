"""The linter's rules for clouds beyond one control plane: failure domains (racks, PDUs,
availability zones) under quorum clusters, regions sharing a Keystone, capacity limits of
cells and regions, VRRP router IDs on shared segments.

Pure, like `rules.py`: a Plan in, findings out; they run once on the whole cloud (scope
"cloud") and read the plan's cells, failure domains, VRRP instances and cluster loads.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

from hastack.catalog import cite
from hastack.checks import Finding, Rule, rule
from hastack.checks.rules import QUORUM_CLUSTERS
from hastack.plan import Plan
from hastack.plan.capacity import cluster_loads

# Kolla-Ansible's default keepalived_virtual_router_id: every Kolla cloud that keeps it uses 51.
KOLLA_DEFAULT_VRID = 51


@dataclass(frozen=True)
class QuorumGroup:
    """A quorum cluster anywhere in the cloud, named like the other rules' subjects: 'galera'
    in a one-region cloud, 'phx/galera', 'phx/cell3/rabbitmq'."""

    label: str
    voters: tuple[str, ...]


def quorum_groups(plan: Plan) -> list[QuorumGroup]:
    several = len(plan.control_planes) > 1 or any(c.own for p in plan.control_planes
                                                  for c in p.cells)
    groups = []
    for control in plan.control_planes:
        where = f"{control.region}/" if several else ""
        groups += [QuorumGroup(f"{where}{c.name}", c.members + c.arbitrators)
                   for c in control.clusters if c.name in QUORUM_CLUSTERS]
        for cell in control.cells:
            if cell.own:
                groups += [QuorumGroup(f"{control.region}/{cell.name}/{c.kind}", c.members)
                           for c in (cell.database, cell.message_bus)]
    return groups


def _losing(group: QuorumGroup, domain: dict[str, str]) -> list[tuple[str, tuple[str, ...]]]:
    """The domains (racks, PDUs, zones) whose loss leaves the group without a majority, with
    the voters in each."""
    if not group.voters or any(v not in domain for v in group.voters):
        return []
    inside: dict[str, list[str]] = {}
    for voter in group.voters:
        inside.setdefault(domain[voter], []).append(voter)
    majority = len(group.voters) // 2 + 1
    return [(name, tuple(voters)) for name, voters in sorted(inside.items())
            if len(group.voters) - len(voters) < majority]


ARCHITECTS_AZ = ("001", "Availability Zones: racks form a natural boundary, the failure of a "
                        "top of rack switch or a PDU")


@rule("quorum-in-one-rack", "error",
      "a quorum cluster's loss of one rack or one PDU takes its majority",
      cite(ARCHITECTS_AZ, ("001", "quorum needs at least three nodes")), scope="cloud")
def quorum_in_one_rack(plan: Plan, r: Rule) -> Iterator[Finding]:
    domains = plan.domains
    if domains is None:
        return
    for group in quorum_groups(plan):
        seen: set[tuple[str, ...]] = set()
        for kind, domain in (("rack", domains.rack), ("PDU", domains.pdu)):
            for name, voters in _losing(group, domain):
                if voters in seen:
                    continue      # one PDU per rack: the rack's finding says it all
                seen.add(voters)
                count = len(voters)
                yield r.finding(
                    group.label,
                    f"{count} of its {len(group.voters)} voters ({', '.join(voters)}) are in "
                    f"{kind} {name}: losing that {kind} loses the majority and stops the "
                    "cluster",
                    f"spread the members over at least 3 {kind}s, at most "
                    f"{(len(group.voters) - 1) // 2} in any one",
                )


@rule("zone-loss-takes-quorum", "error",
      "losing one availability zone takes a quorum cluster's majority",
      cite(("001", "Availability Zones expose failure zones to the user")), scope="cloud")
def zone_loss_takes_quorum(plan: Plan, r: Rule) -> Iterator[Finding]:
    if plan.domains is None:
        return
    failure_zones = {z.name for z in plan.domains.zones if z.kind == "failure"}
    zone = {n: z for n, z in plan.domains.zone.items() if z in failure_zones}
    for group in quorum_groups(plan):
        for name, voters in _losing(group, zone):
            count = len(voters)
            yield r.finding(
                group.label,
                f"{count} of its {len(group.voters)} voters are in availability zone {name}: "
                "the zone users are told is a failure domain takes the control plane down "
                "with it",
                "place the members in at least 3 zones (or an arbitrator in a third), at most "
                f"{(len(group.voters) - 1) // 2} in any one",
            )


@rule("shared-keystone-over-wan", "error",
      "a region uses another region's Keystone across a WAN without federation",
      cite(("001", "Regions: shared Keystone and Glance, Keystone federation across "
                   "regions")), scope="cloud")
def shared_keystone_over_wan(plan: Plan, r: Rule) -> Iterator[Finding]:
    cloud = plan.full_cloud
    for region in cloud.regions:
        if "keystone" not in region.shares or region.link != "wan":
            continue
        if region.keystone_federation:
            continue
        subject = f"{region.name}/keystone"
        if region.trade_off:
            yield r.finding(subject, f"uses {cloud.region}'s Keystone across the WAN, a "
                            f"documented trade-off: {region.trade_off}",
                            "keep the trade-off reviewed; federation removes it",
                            severity="info")
            continue
        yield r.finding(
            subject,
            f"every token of region {region.name} is issued and validated by {cloud.region}'s "
            "Keystone across the WAN: a WAN outage stops the region's APIs although its own "
            "control plane is up, and every call pays the round trip",
            f"run Keystone in {region.name} with federation (regions[].keystone_federation: "
            "true), or document the accepted trade-off (regions[].trade_off: ...)",
        )


@rule("capacity-limit", "error",
      "a cell, message bus, database, frontend or segment is near or past its limit",
      cite(("001", "success scenarios: the message bus is typically the limiting factor in "
                   "the size of regions or cells; every system has its limits")),
      scope="cloud")
def capacity_limit(plan: Plan, r: Rule) -> Iterator[Finding]:
    for load in cluster_loads(plan):
        if load.state == "ok":
            continue
        data = load.limit_data
        where = f"{load.load:,.0f} {data.unit} against a limit of {load.limit:,.0f}"
        fix = data.past
        if load.limit_id == "computes_per_cell":
            cells = math.ceil(load.load / (load.limit * load.warn_at))
            fix += f" (these {load.load:,.0f} compute nodes fit {cells} cells below the warning)"
        if load.state == "over":
            finding = r.finding(load.scope, f"{data.what}: {where}", fix)
        else:
            finding = r.finding(load.scope, f"{data.what}: {where} ({load.used:.0%}, warning "
                                            f"from {load.warn_at:.0%})",
                                f"plan for it before it is reached: {fix}", severity="warning")
        # Where the number comes from, besides where the rule does.
        yield replace(finding, source=f"{finding.source}; the limit: {data.source}")


@rule("vrid-collision", "error",
      "two VRRP instances on one segment share a virtual router ID",
      cite(("000", "Keepalived and network partitions"),
           ("004", "L3 agent: VRRP between router replicas")), scope="cloud")
def vrid_collision(plan: Plan, r: Rule) -> Iterator[Finding]:
    if not any(p.runs("keepalived") for p in plan.control_planes):
        return
    cloud = plan.full_cloud
    owners: dict[tuple[str, int], list[str]] = {}
    for instance in plan.vrrp:
        owners.setdefault((str(instance.segment), instance.vrid), []).append(
            f"{cloud.name} {instance.region} {instance.vip} VIP")
    for segment in cloud.segments:
        for neighbour in segment.neighbours:
            for vrid in neighbour.virtual_router_ids:
                owners.setdefault((str(segment.subnet), vrid), []).append(neighbour.name)
    for (segment_name, vrid), names in sorted(owners.items()):
        if len(names) > 1:
            yield r.finding(
                f"segment {segment_name}",
                f"VRID {vrid} is used by {' and '.join(names)}: their adverts mix and each "
                "may take or drop the other's address",
                "give each VRRP instance on the segment its own VRID (drop the pin in "
                "virtual_router_ids, or move one of them)",
            )
        elif vrid == KOLLA_DEFAULT_VRID and names[0].startswith(f"{cloud.name} "):
            yield r.finding(
                f"segment {segment_name}",
                f"{names[0]} uses VRID {vrid}, Kolla-Ansible's default "
                "keepalived_virtual_router_id: any Kolla cloud left at its default on this "
                "segment clashes with it",
                "pick another VRID, or declare the segment's other VRRP users under "
                "segments: so that hastack avoids theirs",
                severity="warning",
            )
