"""The lab's network: one isolated bridge, one veth per node, nothing routed.

The bridge has no address and IPv6 is off on every host-side link, so the host never speaks on
it; nodes get `eth0` with their address from the cloud file and `lo`, and no default route:
the lab cannot reach anything outside its own subnet, and nothing outside can reach it.
"""

from __future__ import annotations

import json
from pathlib import Path

from hastack.deploy.lab.names import LabNames, NodeAddress
from hastack.deploy.lab.run import nsenter, run


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


def plug(names: LabNames, node: NodeAddress, init_pid: int) -> None:
    """Give a freshly created node its eth0 on the bridge, its address and lo."""
    run(["ip", "link", "add", node.veth, "type", "veth", "peer", "name", "eth0",
         "netns", str(init_pid)])
    _disable_ipv6(node.veth)
    run(["ip", "link", "set", node.veth, "master", names.bridge, "up"])
    batch = (f"link set lo up\n"
             f"addr add {node.interface.with_prefixlen} dev eth0\n"
             f"link set eth0 up\n")
    run(nsenter(init_pid, ["ip", "-batch", "-"], namespaces=("-n",)), input=batch)


def addresses(init_pid: int) -> list[str]:
    """IPv4 addresses on the node's eth0."""
    out = run(nsenter(init_pid, ["ip", "-j", "-4", "addr", "show", "dev", "eth0"],
                      namespaces=("-n",)), check=False).stdout
    try:
        data = json.loads(out or "[]")
    except ValueError:
        return []
    return [a["local"] for entry in data for a in entry.get("addr_info", [])]


def remove_links(names: LabNames) -> list[str]:
    """Delete every link of this lab (veths first, the bridge last); returns their names."""
    mine = sorted((link for link in links() if names.owns_link(link)),
                  key=lambda link: link == names.bridge)
    for link in mine:
        run(["ip", "link", "del", link], check=False)
    return mine
