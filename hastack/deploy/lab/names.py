"""Deterministic names and addresses of one lab: its bridge, its links, its client node.

Pure (no I/O). Every host-visible object of a lab is named `hs-<tag>` or `hs-<tag>.<n>`, so
`down` can find leftovers of a crashed run by name alone, and two labs never share a name.
Interface names are at most 15 characters (IFNAMSIZ - 1).
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from hastack.errors import LabError
from hastack.model.cloud import Cloud

PREFIX = "hs-"
CLIENT = "client"
IFNAMSIZ = 15
# The lab's traffic never leaves these ranges (RFC 2544 benchmarking, Neutron's L3 HA range).
LAB_RANGES = (ipaddress.IPv4Network("198.18.0.0/15"), ipaddress.IPv4Network("169.254.192.0/18"))


def lab_tag(cloud_name: str) -> str:
    """The cloud name if it fits, else a stable abbreviation (5 characters + 4 hex)."""
    if len(cloud_name) <= 9:
        return cloud_name
    return cloud_name[:5] + hashlib.sha1(cloud_name.encode()).hexdigest()[:4]


@dataclass(frozen=True)
class LabNames:
    cloud: str

    @property
    def tag(self) -> str:
        return lab_tag(self.cloud)

    @property
    def bridge(self) -> str:
        return f"{PREFIX}{self.tag}"

    def veth(self, index: int | None) -> str:
        """Host side of a node's veth; `None` is the client. '.' cannot occur in a cloud name,
        so one lab's links never match another lab's prefix."""
        name = f"{self.bridge}.{'c' if index is None else index}"
        if len(name) > IFNAMSIZ:
            raise LabError(f"interface name {name} is longer than {IFNAMSIZ} characters")
        return name

    def owns_link(self, link: str) -> bool:
        return link == self.bridge or link.startswith(self.bridge + ".")


@dataclass(frozen=True)
class NodeAddress:
    name: str
    interface: ipaddress.IPv4Interface
    veth: str


def lab_addresses(cloud: Cloud) -> list[NodeAddress]:
    """Every lab node (the cloud's nodes, then the client) with its address and host link.

    Refuses any address outside the lab ranges, so the lab can never talk to a real network."""
    names = LabNames(cloud.name)
    problems = [f"node {n.name} address {n.ip}" for n in cloud.nodes if not _in_lab(n.ip)]
    problems += [f"VIP {name} {ip}" for name, ip in cloud.vips.items() if not _in_lab(ip)]
    if problems:
        raise LabError("the lab only uses 198.18.0.0/15: " + ", ".join(problems)
                       + " is outside it")
    nodes = [NodeAddress(n.name, n.address, names.veth(i)) for i, n in enumerate(cloud.nodes)]
    if any(n.name == CLIENT for n in cloud.nodes):
        raise LabError(f"a cloud node may not be named '{CLIENT}': the lab's client uses it")
    return [*nodes, NodeAddress(CLIENT, client_address(cloud), names.veth(None))]


def client_address(cloud: Cloud) -> ipaddress.IPv4Interface:
    """The highest usable host of the first node's subnet that no node or VIP uses."""
    first = cloud.nodes[0].address
    used = {n.ip for n in cloud.nodes} | {ip for _, ip in cloud.vips.items()}
    for host in reversed(list(first.network.hosts())):
        if host not in used:
            return ipaddress.IPv4Interface(f"{host}/{first.network.prefixlen}")
    raise LabError(f"no free address for the client node in {first.network}")


def _in_lab(ip: ipaddress.IPv4Address) -> bool:
    return any(ip in net for net in LAB_RANGES)
