"""HAProxy and keepalived: starting them, who holds each VIP, where HAProxy sends writes.

Stage 5 (deploy), one system. The one implementation of each of these observations, used by
`up`, `status` and the chaos samplers alike:

- `vip_holders`: VIP name -> the nodes that have its address (`NodeExec.addresses`).
- `HAProxyAdmin`: the admin (stats) socket of one node's HAProxy — `show stat` and
  `show table` — at the path the rendered haproxy.cfg declares.
- `galera_writer`: the server HAProxy sends Galera writes to, from `show stat` and the
  Galera stick table.

A planned restart takes a node out of every load balancer first (`drain`) and puts it back
after (`readmit`), so no client request is sent to a service that is about to stop.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hastack.deploy.base import NodeExec, wait_until
from hastack.deploy.site import Site, running, start
from hastack.deploy.systems import parallel
from hastack.errors import LabError

HAPROXY = "haproxy"
KEEPALIVED = "keepalived"
HAPROXY_CFG = "etc/haproxy/haproxy.cfg"
GALERA_BACKEND = "galera"
SINGLE_HOLDER_TIMEOUT_S = 10
# How long a drain waits for the requests in flight on a node's back ends to finish; API
# requests take milliseconds, so this only bounds a stuck one.
DRAIN_TIMEOUT_S = 10
# After the VIP has a new holder, the old holder's HAProxy still answers the requests clients
# sent it before the new holder's gratuitous ARP reached them; it stops only after those.
VIP_HANDOVER_SETTLE_S = 0.5
_STATS_SOCKET = re.compile(r"^\s*stats socket (\S+)", re.M)
_STICK_SERVER = re.compile(r"server_key=(\S+)")


def bring_up(site: Site) -> list[str]:
    """HAProxy then keepalived on their nodes, until each VIP has exactly one holder. Under
    Pacemaker (HAProxy a clone, the VIPs IPaddr2 resources) Pacemaker starts both."""
    actions = []
    for service in (HAPROXY, KEEPALIVED):
        if _managed_by_pacemaker(site, service):
            continue
        todo = [n for n in site.members(service) if not running(n, service)]
        actions += parallel(lambda n, s=service: [start(n, s, site.steps)], todo)  # type: ignore[misc]
    if site.plan.runs(KEEPALIVED):
        with site.steps.timed("-", KEEPALIVED, "each VIP held by exactly one node"):
            single = wait_until(lambda: _single_holders(site), SINGLE_HOLDER_TIMEOUT_S, 0.1)
        if not single:
            raise LabError(f"VIPs not held by exactly one node after "
                           f"{SINGLE_HOLDER_TIMEOUT_S} s: {vip_holders(site)}")
    return actions


def _managed_by_pacemaker(site: Site, service: str) -> bool:
    process = site.plan.process(service)
    return process is not None and process.strategy == "pacemaker"


def vip_holders(site: Site) -> dict[str, list[str]]:
    """VIP name -> the reachable nodes holding its address, sorted."""
    by_address = {str(ip): name for name, ip in site.cloud.vips.items()}
    held: dict[str, list[str]] = {name: [] for name in by_address.values()}
    for node in list(site.nodes.values()):
        for address in node.addresses() & set(by_address):
            held[by_address[address]].append(node.name)
    return {name: sorted(nodes) for name, nodes in held.items()}


def _single_holders(site: Site) -> bool:
    return all(len(h) == 1 for h in vip_holders(site).values())


# --- HAProxy's admin socket ----------------------------------------------------------------


@dataclass(frozen=True)
class ServerState:
    status: str           # UP, DOWN, MAINT, "UP 1/2" ...
    backup: bool

    @property
    def up(self) -> bool:
        return self.status.startswith("UP")


@dataclass(frozen=True)
class HAProxyView:
    """Back-end states as one HAProxy sees them."""

    seen_from: str | None
    backends: Mapping[str, Mapping[str, ServerState]] = field(default_factory=dict)
    galera_stuck_to: str | None = None

    def galera_writer(self) -> str | None:
        """The stick table's server while it is UP (no failback), else the first UP active
        server, else the first UP backup (HAProxy uses one backup unless `allbackups`)."""
        servers = self.backends.get(GALERA_BACKEND, {})
        up = [name for name, s in servers.items() if s.up]
        if self.galera_stuck_to in up:
            return self.galera_stuck_to
        active = [name for name in up if not servers[name].backup]
        chosen = active or up
        return chosen[0] if chosen else None

    def to_json(self) -> dict[str, object]:
        return {"seen_from": self.seen_from, "galera_stuck_to": self.galera_stuck_to,
                "backends": {b: {s: {"status": st.status, "backup": st.backup}
                                 for s, st in servers.items()}
                             for b, servers in self.backends.items()}}


class HAProxyAdmin:
    """One node's HAProxy admin socket."""

    def __init__(self, site: Site, node: NodeExec):
        match = _STATS_SOCKET.search(site.rendered(node.name, HAPROXY_CFG) or "")
        self.node = node
        self.path = match.group(1) if match else None

    def command(self, command: str) -> str:
        if self.path is None:
            return ""
        return self.node.unix_request(self.path, command.encode() + b"\n").decode(
            errors="replace")

    def show_stat(self) -> list[dict[str, str]]:
        text = self.command("show stat").lstrip("# ")
        return list(csv.DictReader(io.StringIO(text))) if text else []

    def stuck_server(self, table: str = GALERA_BACKEND) -> str | None:
        found = _STICK_SERVER.search(self.command(f"show table {table}"))
        return found.group(1) if found else None

    def servers_of(self, node: str) -> list[dict[str, str]]:
        """`show stat` rows of the servers named `node` (one per back end it serves)."""
        return [row for row in self.show_stat() if row.get("svname") == node]

    def view(self) -> HAProxyView | None:
        rows = self.show_stat()
        if not rows:
            return None
        backends: dict[str, dict[str, ServerState]] = {}
        for row in rows:
            if row.get("svname") in ("FRONTEND", "BACKEND"):
                continue
            backends.setdefault(row["pxname"], {})[row["svname"]] = ServerState(
                str(row.get("status", "")), row.get("bck") == "1")
        return HAProxyView(self.node.name, backends, self.stuck_server())


def haproxy_view(site: Site, holders: Mapping[str, Sequence[str]],
                 vip: str = "internal") -> HAProxyView:
    """Back ends as seen by the HAProxy that receives `vip`'s traffic (the holder's), else
    by the first HAProxy that answers."""
    first = list(holders.get(vip) or [])
    for name in first + [n for n in site.plan.nodes_running(HAPROXY) if n not in first]:
        node = site.nodes.get(name)
        view = HAProxyAdmin(site, node).view() if node is not None else None
        if view is not None:
            return view
    return HAProxyView(None)


def galera_writer(site: Site, holders: Mapping[str, Sequence[str]] | None = None,
                  vip: str = "internal") -> str | None:
    """The Galera member the internal VIP's HAProxy sends writes to; None while the VIP has
    not exactly one holder or HAProxy has no UP server."""
    holders = holders if holders is not None else vip_holders(site)
    current = list(holders.get(vip) or [])
    if len(current) != 1 or current[0] not in site.nodes:
        return None
    view = HAProxyAdmin(site, site.nodes[current[0]]).view()
    return view.galera_writer() if view else None


# --- planned maintenance: a node out of every load balancer and back -------------------------


def drain(site: Site, node: str) -> list[str]:
    """Give away the VIPs `node` holds, send no new request to its back ends, in every
    HAProxy, and wait for the ones in flight to finish.

    The VIPs go first, and completely: keepalived stops on the holder, the VIPs appear on
    another node, and only then does anything behind them move. Stopping HAProxy before the
    clients' ARP caches follow would reset the requests in flight through it and send the
    clients' next SYNs to a node that no longer answers for the address.

    HTTP back ends go to `drain` (new requests elsewhere, open ones finish). The Galera back
    end goes to `maint` and its sessions are shut down: its clients hold long-lived
    connections, which would otherwise stay on the old writer until MariaDB stops under
    them. Their next request reconnects and the stick table moves every load balancer's
    writer to the next member in the same instant, before anything stops."""
    actions = _hand_over_vips(site, node)
    admins = _admins(site)
    for admin in admins:
        for row in admin.servers_of(node):
            backend = row["pxname"]
            if backend == GALERA_BACKEND:
                admin.command(f"set server {backend}/{node} state maint")
                admin.command(f"shutdown sessions server {backend}/{node}")
            else:
                admin.command(f"set server {backend}/{node} state drain")
        actions.append(f"{admin.node.name}: {node} drained")
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline and _sessions_on(admins, node):
        time.sleep(0.1)
    left = _sessions_on(admins, node)
    if left:
        actions.append(f"{node}: {left} session(s) still open after {DRAIN_TIMEOUT_S} s; "
                       "they end when its services stop")
    return actions


def _hand_over_vips(site: Site, node: str) -> list[str]:
    held = [vip for vip, holders in vip_holders(site).items() if node in holders]
    lab_node = site.nodes.get(node)
    if not held or lab_node is None or not running(lab_node, KEEPALIVED):
        return []
    with site.steps.timed(node, KEEPALIVED, f"hand over {', '.join(held)} VIP"):
        lab_node.services.stop(KEEPALIVED)

        def moved() -> bool:
            holders = vip_holders(site)
            return all(len(holders[v]) == 1 and node not in holders[v] for v in held)
        if not wait_until(moved, SINGLE_HOLDER_TIMEOUT_S, 0.05):
            raise LabError(f"{node}: its VIPs did not move to another node within "
                           f"{SINGLE_HOLDER_TIMEOUT_S} s of stopping keepalived: "
                           f"{vip_holders(site)}")
        time.sleep(VIP_HANDOVER_SETTLE_S)
    holders = vip_holders(site)
    return [f"{node}: VIP {vip} handed over to {holders[vip][0]}" for vip in held]


def readmit(site: Site, node: str) -> list[str]:
    """Undo `drain`: `node`'s servers `ready` again in every HAProxy. Their health checks
    decide from then on; the Galera stick table keeps the current writer (no failback)."""
    actions = []
    for admin in _admins(site):
        for row in admin.servers_of(node):
            admin.command(f"set server {row['pxname']}/{node} state ready")
        actions.append(f"{admin.node.name}: {node} ready")
    return actions


def _admins(site: Site) -> list[HAProxyAdmin]:
    return [HAProxyAdmin(site, site.nodes[n]) for n in site.plan.nodes_running(HAPROXY)
            if n in site.nodes and running(site.nodes[n], HAPROXY)]


def _sessions_on(admins: Sequence[HAProxyAdmin], node: str) -> int:
    return sum(int(row.get("scur") or 0) for admin in admins for row in admin.servers_of(node))
