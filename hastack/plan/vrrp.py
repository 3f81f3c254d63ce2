"""VRRP virtual router IDs of every VIP of every region, per L2 segment (stage 2, plan).

One place decides the VRIDs: the keepalived renderer writes them and the linter checks them
against the other VRRP speakers of each segment, so the two cannot disagree. A VIP's segment
is the declared `segments:` entry it falls in, else the subnet of the node addresses around it.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from hastack.model.cloud import Cloud, Vips

VRID_COUNT = 255   # VRIDs are 1..255 (one byte; RFC 5798)


@dataclass(frozen=True)
class VrrpInstance:
    """One VIP's VRRP instance: the VRID every candidate of that VIP uses."""

    region: str
    vip: str
    address: ipaddress.IPv4Address
    segment: ipaddress.IPv4Network | None
    vrid: int
    pinned: bool          # given in the cloud file (an existing deployment), not derived


def virtual_router_ids(cloud: str, vips: list[str], taken: Iterable[int] = ()) -> dict[str, int]:
    """A VRID in 1..255 per VIP, from a hash of the cloud and VIP names: stable across
    re-renders, different for two clouds sharing a segment (unless the hash collides), never
    equal for two VIPs of one cloud nor to one already `taken` on the segment (a collision
    takes the next free id)."""
    used = set(taken)
    ids: dict[str, int] = {}
    for name in vips:
        digest = hashlib.sha256(f"{cloud}/{name}".encode()).digest()
        vrid = int.from_bytes(digest[:4], "big") % VRID_COUNT + 1
        for _ in range(VRID_COUNT):
            if vrid not in used:
                break
            vrid = vrid % VRID_COUNT + 1
        ids[name] = vrid
        used.add(vrid)
    return ids


def plan_vrrp(cloud: Cloud) -> tuple[VrrpInstance, ...]:
    """Every region's VRRP instances. Pinned VRIDs are kept as given (the linter reports a
    clash); derived ones avoid the pinned ones and the declared neighbours of their segment.
    The home region's derived VRIDs hash `cloud/vip`, as single-region clouds always have."""
    # A declared segment wins over the node subnets it overlaps (it says who else is there).
    subnets = [s.subnet for s in cloud.segments] + sorted(
        {n.address.network for n in cloud.nodes}, key=lambda s: s.prefixlen, reverse=True)

    def segment(address: ipaddress.IPv4Address) -> ipaddress.IPv4Network | None:
        return next((s for s in subnets if address in s), None)

    regions: list[tuple[str, str, Vips, dict[str, int]]] = [
        (cloud.region, cloud.name, cloud.vips, cloud.settings.keepalived.virtual_router_ids)]
    regions += [(r.name, f"{cloud.name}/{r.name}", r.vips, r.virtual_router_ids)
                for r in cloud.regions]
    taken: dict[ipaddress.IPv4Network | None, set[int]] = {}
    for declared in cloud.segments:
        taken.setdefault(declared.subnet, set()).update(
            vrid for n in declared.neighbours for vrid in n.virtual_router_ids)
    for _, _, vips, pins in regions:
        for name, address in vips.items():
            if name in pins:
                taken.setdefault(segment(address), set()).add(pins[name])
    instances: list[VrrpInstance] = []
    for region, seed, vips, pins in regions:
        for name, address in vips.items():
            where = segment(address)
            if name in pins:
                instances.append(VrrpInstance(region, name, address, where, pins[name], True))
                continue
            vrid = virtual_router_ids(seed, [name], taken.setdefault(where, set()))[name]
            taken[where].add(vrid)
            instances.append(VrrpInstance(region, name, address, where, vrid, False))
    return tuple(instances)
