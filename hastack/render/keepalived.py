"""Render keepalived: one `keepalived.conf` per load balancer of the keepalived architecture
(stage 4, render). In the pacemaker architecture the VIPs are Pacemaker IPaddr2 resources and
keepalived is not planned, so nothing is rendered.

One VRRP instance per VIP, with the VRID the plan gives it (hastack.plan.vrrp, which the
linter checks against the segment's other VRRP speakers), in one sync group per node (the VIPs
move together). Every node starts as BACKUP with `nopreempt` (a recovered node does not take
the VIP back: no needless second failover); priorities fall in the plan's candidate order. The
VIP holder drops to FAULT, releasing the VIP, as soon as HAProxy is gone.

VRRP version and authentication: keepalived 2.2.7 (`keepalived -t`) rejects `authentication`
under VRRPv3 ("VRRP version 3 does not support authentication") and rounds VRRPv2 adverts to
whole seconds ("VRRPv2 advertisement interval 0.2s must be an integer"). So a budget whose
advert interval is a whole number of seconds gets VRRPv2 with PASS authentication, and a faster
budget (the default: 0.2 s) gets VRRPv3 without it; the VIP then moves in well under a second.

VRRPv3 has no authentication, and VRRPv2's PASS is a cleartext password: any host on the
segment could win an election. So every node also gets an nftables table (`VRRP_FILTER`) that
accepts VRRP only from the other candidates of its VIPs.

Why `vrrp_script` and not `vrrp_track_process`: track_process listens to the kernel's process
events connector, which exists only in the initial network namespace (a NETLINK_CONNECTOR
socket in any other netns gets ECONNREFUSED, keepalived issue #1469); in a lab node or a
container the instance would sit in FAULT for ever. A pidof probe works everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from hastack.errors import RenderError
from hastack.plan import Plan, PlannedVip
from hastack.render import RenderContext, RenderedFile
from hastack.render.budget import Budget, make_budget
from hastack.render.secrets import SecretSpec
from hastack.render.templating import render_template

SYSTEM = "keepalived"
CONFIG_PATH = "etc/keepalived/keepalived.conf"
# nftables: VRRP accepted from the node's peers only. Loaded with `nft -f` (the file flushes
# its own table first, so loading it again replaces the rules).
VRRP_FILTER = "etc/nftables.d/hastack-vrrp.nft"
VRRP_TABLE = "hastack_vrrp"
VRRP_SECRET = "keepalived_vrrp_auth"

# Highest priority goes to the first candidate; 254 is the highest a non-owner may use, and
# the budget's failover time assumes a backup's skew at about that priority.
TOP_PRIORITY = 254
PRIORITY_STEP = 10

# Is HAProxy alive on this node? pidof reads the node's own /proc (PID namespace in the lab).
HAPROXY_ALIVE_SCRIPT = "/usr/bin/pgrep -x haproxy"

# Gratuitous ARP: a second burst this long after becoming master (for switches that missed
# the first), and a refresh while master. ARP hygiene, not failure detection; the budget has
# no field for them yet.
GARP_MASTER_DELAY_S = 1
GARP_MASTER_REFRESH_S = 60


@dataclass(frozen=True)
class Instance:
    """One vrrp_instance as one node sees it."""

    name: str
    vip: str
    prefix: int
    virtual_router_id: int
    priority: int
    unicast_src_ip: str | None
    unicast_peers: tuple[str, ...]


def vrrp_version(budget: Budget) -> int:
    """2 when the advert interval is whole seconds (PASS authentication possible), else 3."""
    advert = budget.vrrp_advert_s
    return 2 if advert >= 1 and float(advert).is_integer() else 3


def secrets_needed(plan: Plan) -> list[SecretSpec]:
    if not plan.runs(SYSTEM) or vrrp_version(make_budget(plan.cloud)) != 2:
        return []
    return [SecretSpec(VRRP_SECRET, "vrrp", "VRRPv2 PASS authentication of the VIP instances")]


def render(ctx: RenderContext) -> list[RenderedFile]:
    nodes = ctx.plan.nodes_running(SYSTEM)
    if not nodes:
        return []
    version = vrrp_version(ctx.budget)
    auth_pass = ctx.secret(VRRP_SECRET) if version == 2 else None
    router_ids = ctx.plan.router_ids()
    multicast = ctx.plan.cloud.settings.keepalived.mode == "multicast"
    track_haproxy = ctx.plan.runs("haproxy")
    files = []
    for node in nodes:
        instances = [
            _instance(ctx, vip, node, router_ids[vip.name], multicast)
            for vip in ctx.plan.vips if node in vip.candidates
        ]
        content = render_template(
            SYSTEM, "keepalived.conf.j2",
            cloud=ctx.plan.cloud.name, node=node, version=version, auth_pass=auth_pass,
            interface=ctx.plan.cloud.node(node).interface, budget=ctx.budget,
            advert_int=f"{ctx.budget.vrrp_advert_s:g}",
            multicast=multicast, track_haproxy=track_haproxy and node in
            ctx.plan.nodes_running("haproxy"), haproxy_script=HAPROXY_ALIVE_SCRIPT,
            garp_master_delay=GARP_MASTER_DELAY_S, garp_master_refresh=GARP_MASTER_REFRESH_S,
            instances=instances,
        )
        # 0600: with VRRPv2 the file holds the authentication password.
        files.append(RenderedFile(node=node, path=CONFIG_PATH, content=content, system=SYSTEM,
                                  mode=0o600))
        files.append(RenderedFile(node=node, path=VRRP_FILTER, system=SYSTEM,
                                  content=vrrp_filter(ctx, node)))
    return files


def vrrp_filter(ctx: RenderContext, node: str) -> str:
    """An nftables table that drops VRRP (IP protocol 112) from anyone but the node's peers:
    the other candidates of the VIPs it may hold."""
    peers = sorted({ctx.address(n) for vip in ctx.plan.vips if node in vip.candidates
                    for n in vip.candidates if n != node})
    allowed = f"ip saddr {{ {', '.join(peers)} }} accept\n    " if peers else ""
    return (f"# VRRP of cloud {ctx.plan.cloud.name} on {node}: only from its peers (VRRPv3 has\n"
            f"# no authentication). Rendered by hastack: do not edit.\n"
            f"table inet {VRRP_TABLE} {{}}\n"
            f"flush table inet {VRRP_TABLE}\n"
            f"table inet {VRRP_TABLE} {{\n"
            f"  chain input {{\n"
            f"    type filter hook input priority 0; policy accept;\n"
            f"    ip protocol vrrp jump vrrp\n"
            f"  }}\n"
            f"  chain vrrp {{\n"
            f"    {allowed}drop\n"
            f"  }}\n"
            f"}}\n")


def priorities(candidates: tuple[str, ...]) -> dict[str, int]:
    """Strictly decreasing priorities in candidate order: 254, 244, 234..."""
    if len(candidates) > TOP_PRIORITY:
        raise RenderError(f"{len(candidates)} VRRP candidates: at most {TOP_PRIORITY} fit")
    step = min(PRIORITY_STEP, (TOP_PRIORITY - 1) // max(1, len(candidates) - 1))
    return {node: TOP_PRIORITY - i * step for i, node in enumerate(candidates)}


def _instance(ctx: RenderContext, vip: PlannedVip, node: str, vrid: int,
              multicast: bool) -> Instance:
    cloud = ctx.plan.cloud
    peers = () if multicast else tuple(ctx.address(n) for n in vip.candidates if n != node)
    return Instance(
        name=f"{cloud.name}-{vip.name}",
        vip=str(vip.address),
        prefix=cloud.node(node).address.network.prefixlen,
        virtual_router_id=vrid,
        priority=priorities(vip.candidates)[node],
        unicast_src_ip=None if multicast else ctx.address(node),
        unicast_peers=peers,
    )
