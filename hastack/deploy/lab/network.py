"""The lab's network: one isolated bridge, one veth per node, nothing routed.

The bridge has no address and IPv6 is off on every host-side link, so the host never speaks on
it; nodes get `eth0` with their address from the cloud file and `lo`, and no default route:
the lab cannot reach anything outside its own subnet, and nothing outside can reach it.
"""

from __future__ import annotations

import json
from pathlib import Path

from hastack.deploy.lab.exec import LabExec, run
from hastack.deploy.lab.names import LabNames, NodeAddress


def _disable_ipv6(link: str) -> None:
    path = Path(f"/proc/sys/net/ipv6/conf/{link}/disable_ipv6")
    if path.exists():
        path.write_text("1\n")


def links() -> list[str]:
    out = run(["ip", "-j", "link", "show"]).stdout
    return [entry["ifname"] for entry in json.loads(out or "[]")]


def ensure_bridge(names: LabNames) -> bool:
    """Create the lab's bridge if missing; True when it was created."""
    if names.bridge in links():
        return False
    run(["ip", "link", "add", names.bridge, "type", "bridge", "stp_state", "0",
         "forward_delay", "0", "mcast_snooping", "0"])
    _disable_ipv6(names.bridge)
    run(["ip", "link", "set", names.bridge, "up"])
    return True


def plug(names: LabNames, address: NodeAddress, node: LabExec) -> None:
    """Give a freshly created node its interface on the bridge, its address and lo."""
    run(["ip", "link", "add", address.veth, "type", "veth", "peer", "name", node.interface,
         "netns", str(node.pid)])
    _disable_ipv6(address.veth)
    run(["ip", "link", "set", address.veth, "master", names.bridge, "up"])
    batch = (f"link set lo up\n"
             f"addr add {address.interface.with_prefixlen} dev {node.interface}\n"
             f"link set {node.interface} up\n")
    node.run(["ip", "-batch", "-"], input=batch)


def set_link(address: NodeAddress, up: bool) -> None:
    """The host side of a node's cable: down, the node sees NO-CARRIER and nothing passes."""
    run(["ip", "link", "set", "dev", address.veth, "up" if up else "down"])


def link_down(address: NodeAddress) -> bool:
    state = Path(f"/sys/class/net/{address.veth}/operstate")
    return state.exists() and "down" in state.read_text()


def remove_links(names: LabNames) -> list[str]:
    """Delete every link of this lab (veths first, the bridge last); returns their names."""
    mine = sorted((link for link in links() if names.owns_link(link)),
                  key=lambda link: link == names.bridge)
    for link in mine:
        run(["ip", "link", "del", link], check=False)
    return mine
