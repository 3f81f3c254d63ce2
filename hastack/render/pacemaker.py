"""Render the Corosync/Pacemaker cluster: `corosync.conf`, its `authkey`, and the whole
Pacemaker configuration as one CIB (`etc/pacemaker/cib.xml`, loaded with
`cibadmin --replace --scope configuration --xml-file`).

Stage 4 (render); pure. Renders only when the plan has a corosync cluster: the Pacemaker
architecture (Pacemaker owns the VIPs and clones HAProxy), or a keepalived cloud whose plan
guards A/P processes with Pacemaker (then keepalived keeps the VIPs and Pacemaker runs only the
A/P resources and the fencing devices).

Resource classes: `ocf:heartbeat:IPaddr2` for VIPs (resource-agents), `systemd:<unit>` for
HAProxy and the OpenStack A/P services (their Debian units; no OCF agent ships for them), and
`stonith:` devices per node: `fence_ipmilan` for `fencing: ipmi`, `fence_hastack` for
`fencing: lab` (see `_fence_device`).
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from ipaddress import IPv4Network

from hastack.errors import RenderError
from hastack.plan import Cluster, Plan, PlannedProcess
from hastack.render import RenderContext, RenderedFile
from hastack.render.budget import Budget
from hastack.render.secrets import SecretSpec
from hastack.render.templating import render_template

SYSTEM = "pacemaker"
AUTHKEY_SECRET = "corosync_authkey"
AUTHKEY_PATH = "/etc/corosync/authkey"

# Scores: a resource prefers its planned active node, but stickiness outweighs that
# preference, so a resource that failed over stays where it is (no second outage on failback).
PREFERENCE_SCORE = 50
STICKINESS = 100
MIGRATION_THRESHOLD = 3   # failures on one node before the resource moves away

# Debian unit names where they differ from the catalog's process name.
SYSTEMD_UNITS: dict[str, str] = {
    "ceilometer-central": "ceilometer-agent-central",
    "neutron-lbaas-agent": "neutron-lbaasv2-agent",
}

# Floors below which Corosync turns noisy on a loaded host (membership changes for a hiccup).
MIN_MONITOR_INTERVAL_S = 2
MIN_OP_TIMEOUT_S = 20       # Pacemaker's own default operation timeout
MIN_START_TIMEOUT_S = 60    # OpenStack services under systemd take seconds to start
MIN_RECHECK_INTERVAL_S = 60


@dataclass(frozen=True)
class ClusterTimings:
    """Corosync/Pacemaker timings, all derived from the budget's target.

    Budget has no cluster fields yet; these are the proposed ones (corosync_token_ms,
    pacemaker_monitor_interval_s, ...) and move to `Budget` unchanged when it gains them.
    """

    token_ms: int               # a silent member is lost after token + consensus
    consensus_ms: int
    monitor_interval_s: int     # one failed monitor -> restart (or move) the resource
    monitor_timeout_s: int
    start_timeout_s: int
    stop_timeout_s: int
    recheck_interval_s: int     # fail-safe re-evaluation (time-based rules, failure expiry)
    fence_delay_s: int          # two-node clusters: delay fencing of the preferred survivor

    @property
    def membership_loss_s(self) -> float:
        return (self.token_ms + self.consensus_ms) / 1000


def cluster_timings(budget: Budget) -> ClusterTimings:
    target = budget.target_s
    token = budget.corosync_token_ms
    interval = max(MIN_MONITOR_INTERVAL_S, math.ceil(target))
    return ClusterTimings(
        token_ms=token,
        consensus_ms=budget.corosync_consensus_ms,
        monitor_interval_s=interval,
        monitor_timeout_s=max(MIN_OP_TIMEOUT_S, 4 * interval),
        start_timeout_s=max(MIN_START_TIMEOUT_S, 10 * interval),
        stop_timeout_s=max(MIN_START_TIMEOUT_S, 10 * interval),
        recheck_interval_s=max(MIN_RECHECK_INTERVAL_S, math.ceil(30 * target)),
        # Longer than both sides need to notice the loss, so the undelayed fence lands first.
        fence_delay_s=max(5, math.ceil(2 * (token + int(token * 1.2)) / 1000)),
    )


# --- the cluster as data ------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    name: str
    interval_s: int
    timeout_s: int


@dataclass(frozen=True)
class Primitive:
    id: str
    cls: str
    type: str
    provider: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    meta: tuple[tuple[str, str], ...] = ()
    ops: tuple[Op, ...] = ()
    comment: str = ""


@dataclass(frozen=True)
class Clone:
    id: str
    primitive: Primitive
    meta: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Location:
    id: str
    rsc: str
    node: str
    score: str


@dataclass(frozen=True)
class Colocation:
    id: str
    rsc: str
    with_rsc: str
    score: str


@dataclass(frozen=True)
class Order:
    id: str
    first: str
    then: str
    kind: str


@dataclass
class CibConfig:
    """Everything the CIB's <configuration> holds; built by `cib_config`, rendered by a
    template."""

    properties: list[tuple[str, str]]
    rsc_defaults: list[tuple[str, str]]
    op_defaults: list[tuple[str, str]]
    nodes: list[tuple[int, str]]
    primitives: list[Primitive] = field(default_factory=list)
    clones: list[Clone] = field(default_factory=list)
    locations: list[Location] = field(default_factory=list)
    colocations: list[Colocation] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)


def corosync_cluster(plan: Plan) -> Cluster | None:
    return plan.cluster("corosync")


def fence_password_secret(node: str) -> str:
    return f"fence_ipmi_password_{node}"


def secrets_needed(plan: Plan) -> list[SecretSpec]:
    cluster = corosync_cluster(plan)
    if cluster is None:
        return []
    specs = [SecretSpec(AUTHKEY_SECRET, "key", "Corosync knet authentication/encryption key")]
    if plan.cloud.settings.pacemaker.fencing == "ipmi":
        specs += [
            SecretSpec(fence_password_secret(node), "password",
                       f"IPMI password of {node}'s BMC (replace with the real one)")
            for node in cluster.members
        ]
    return specs


def node_ids(cluster: Cluster) -> dict[str, int]:
    """Corosync node ids, 1-based in member order (keep new nodes at the end of cloud.yaml)."""
    return {name: i for i, name in enumerate(cluster.members, start=1)}


def render(ctx: RenderContext) -> list[RenderedFile]:
    cluster = corosync_cluster(ctx.plan)
    if cluster is None:
        return []
    timings = cluster_timings(ctx.budget)
    conf = corosync_conf(ctx, cluster, timings)
    authkey = _authkey(ctx.secret(AUTHKEY_SECRET))
    cib = render_template(SYSTEM, "cib.xml.j2", cib=cib_config(ctx, cluster, timings),
                          cloud=ctx.plan.cloud.name)
    files: list[RenderedFile] = []
    for node in cluster.members:
        files += [
            RenderedFile(node, "etc/corosync/corosync.conf", conf, SYSTEM),
            RenderedFile(node, "etc/corosync/authkey", authkey, SYSTEM, mode=0o400),
            # 0600: with IPMI fencing the CIB carries the BMC passwords.
            RenderedFile(node, "etc/pacemaker/cib.xml", cib, SYSTEM, mode=0o600),
        ]
    return files


def _authkey(encoded: str) -> bytes:
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise RenderError(f"secret '{AUTHKEY_SECRET}' is not base64") from None
    if len(key) < 128:
        # knet refuses keys shorter than 1024 bits.
        raise RenderError(f"secret '{AUTHKEY_SECRET}' holds {len(key)} bytes; corosync "
                          "needs at least 128")
    return key


def corosync_conf(ctx: RenderContext, cluster: Cluster, timings: ClusterTimings) -> str:
    ids = node_ids(cluster)
    return render_template(
        SYSTEM, "corosync.conf.j2",
        cluster_name=ctx.plan.cloud.name,
        keyfile=AUTHKEY_PATH,
        timings=timings,
        target_s=ctx.budget.target_s,
        nodes=[(name, ctx.address(name), ids[name]) for name in cluster.members],
        two_node=len(cluster.members) == 2,
    )


# --- CIB ------------------------------------------------------------------------------------


def cib_config(ctx: RenderContext, cluster: Cluster, timings: ClusterTimings) -> CibConfig:
    plan = ctx.plan
    fencing = plan.cloud.settings.pacemaker.fencing
    members = cluster.members
    config = CibConfig(
        properties=[
            ("cluster-name", plan.cloud.name),
            # Only `fencing: none` disables STONITH, and the linter flags that cloud.
            ("stonith-enabled", "false" if fencing == "none" else "true"),
            ("no-quorum-policy", "stop"),
            ("cluster-recheck-interval", f"{timings.recheck_interval_s}s"),
            ("symmetric-cluster", "true"),
        ],
        rsc_defaults=[("resource-stickiness", str(STICKINESS)),
                      ("migration-threshold", str(MIGRATION_THRESHOLD))],
        op_defaults=[("timeout", f"{timings.monitor_timeout_s}s")],
        nodes=[(i, name) for name, i in node_ids(cluster).items()],
    )
    if fencing != "none":
        _add_fencing(ctx, config, members, fencing, timings)
    haproxy = plan.process("haproxy")
    if haproxy is not None and haproxy.strategy == "pacemaker":
        _add_haproxy_and_vips(ctx, config, members, haproxy, timings)
    for process in plan.active_passive:
        _add_active_passive(config, members, process, timings)
    return config


def _ops(timings: ClusterTimings, monitor_timeout: int | None = None) -> tuple[Op, ...]:
    return (
        Op("start", 0, timings.start_timeout_s),
        Op("stop", 0, timings.stop_timeout_s),
        Op("monitor", timings.monitor_interval_s, monitor_timeout or timings.monitor_timeout_s),
    )


def _bans(config: CibConfig, rsc: str, members: tuple[str, ...], allowed: tuple[str, ...]):
    for node in members:
        if node not in allowed:
            config.locations.append(Location(f"location-{rsc}-avoids-{node}", rsc, node,
                                             "-INFINITY"))


def _placeable(process: str, nodes: tuple[str, ...], members: tuple[str, ...]) -> tuple[str, ...]:
    allowed = tuple(n for n in nodes if n in members)
    if not allowed:
        raise RenderError(f"Pacemaker must run {process} but none of its nodes "
                          f"({', '.join(nodes)}) is a corosync member ({', '.join(members)})")
    return allowed


def _add_active_passive(config: CibConfig, members: tuple[str, ...], process: PlannedProcess,
                        timings: ClusterTimings) -> None:
    allowed = _placeable(process.process, process.nodes, members)
    rsc = process.process
    unit = SYSTEMD_UNITS.get(rsc, rsc)
    config.primitives.append(Primitive(
        rsc, "systemd", unit, ops=_ops(timings),
        comment=f"A/P {process.service} {rsc}: one instance, preferred on {allowed[0]}",
    ))
    active = process.active_node if process.active_node in allowed else allowed[0]
    config.locations.append(Location(f"location-{rsc}-prefers-{active}", rsc, active,
                                     str(PREFERENCE_SCORE)))
    _bans(config, rsc, members, allowed)


def _add_haproxy_and_vips(ctx: RenderContext, config: CibConfig, members: tuple[str, ...],
                          haproxy: PlannedProcess, timings: ClusterTimings) -> None:
    allowed = _placeable("haproxy", haproxy.nodes, members)
    config.clones.append(Clone(
        "haproxy-clone",
        Primitive("haproxy", "systemd", "haproxy", ops=_ops(timings),
                  comment="HAProxy on every load balancer; the VIPs follow a running one"),
        meta=(("interleave", "true"),),
    ))
    _bans(config, "haproxy-clone", members, allowed)
    for vip in ctx.plan.vips:
        if vip.mechanism != "pacemaker":
            continue
        rsc = f"vip-{vip.name}"
        candidates = tuple(n for n in vip.candidates if n in allowed) or allowed
        config.primitives.append(Primitive(
            rsc, "ocf", "IPaddr2", provider="heartbeat",
            params=(("ip", str(vip.address)),
                    ("cidr_netmask", str(_prefix_for(ctx, vip.address, candidates)))),
            ops=_ops(timings),
            comment=f"{vip.name} VIP {vip.address}: frontends {', '.join(vip.frontends)}",
        ))
        config.locations.append(Location(f"location-{rsc}-prefers-{candidates[0]}", rsc,
                                         candidates[0], str(PREFERENCE_SCORE)))
        _bans(config, rsc, members, candidates)
        config.colocations.append(Colocation(f"colocation-{rsc}-with-haproxy", rsc,
                                             "haproxy-clone", "INFINITY"))
        # Optional: orders a joint start (HAProxy first) without restarting the VIP whenever
        # one HAProxy instance elsewhere restarts, as a Mandatory clone->primitive order would.
        config.orders.append(Order(f"order-haproxy-then-{rsc}", "haproxy-clone", rsc,
                                   "Optional"))


def _prefix_for(ctx: RenderContext, address: object, candidates: tuple[str, ...]) -> int:
    """The prefix of the candidate subnet holding the VIP (IPaddr2 then finds the NIC)."""
    for node in candidates:
        network: IPv4Network = ctx.plan.cloud.node(node).address.network
        if address in network:
            return network.prefixlen
    return ctx.plan.cloud.node(candidates[0]).address.network.prefixlen


def _add_fencing(ctx: RenderContext, config: CibConfig, members: tuple[str, ...],
                 fencing: str, timings: ClusterTimings) -> None:
    for index, node in enumerate(members):
        device = _fence_device(ctx, node, fencing, timings)
        if len(members) == 2 and index == 0:
            # two_node: both survivors race to fence each other; delaying the fencing of
            # the first member (where A/P resources prefer to run) lets it win the race.
            device = Primitive(device.id, device.cls, device.type, device.provider,
                               (*device.params, ("pcmk_delay_base", f"{timings.fence_delay_s}s")),
                               device.meta, device.ops, device.comment)
        config.primitives.append(device)
        # A node never runs the device that fences it: it could not fence itself when hung.
        config.locations.append(Location(f"location-{device.id}-avoids-{node}", device.id,
                                         node, "-INFINITY"))


def _fence_device(ctx: RenderContext, node: str, fencing: str,
                  timings: ClusterTimings) -> Primitive:
    # A fence device's monitor only checks that the BMC/agent answers: no need to hurry.
    monitor = (Op("monitor", timings.recheck_interval_s, timings.monitor_timeout_s),)
    target = (("pcmk_host_list", node), ("pcmk_host_check", "static-list"))
    if fencing == "ipmi":
        # The model has no BMC data yet: the BMC answers at the name `<node>-bmc` (resolvable
        # on every cluster node) for the user `hastack-fence`, whose password is the secret
        # fence_ipmi_password_<node> (replace the generated value with the real one).
        return Primitive(
            f"fence-{node}", "stonith", "fence_ipmilan",
            params=(*target, ("ip", f"{node}-bmc"), ("username", "hastack-fence"),
                    ("password", ctx.secret(fence_password_secret(node))),
                    ("lanplus", "1")),
            ops=monitor, comment=f"IPMI power fencing of {node} through its BMC {node}-bmc",
        )
    # fencing: lab. fence_hastack is the lab's agent (fence-agents API): `off` is the lab's
    # power cut (the node's cable, then SIGKILL of its first process: its namespaces vanish),
    # `on` boots the node again, `status`/`list`/`monitor` ask the lab's power controller.
    # A fence leaves the node off (pcmk_reboot_action=off): the lab's heal or `hastack
    # recover` powers it on through the repair path, so a scenario's measurement never races
    # a reboot it did not ask for.
    return Primitive(
        f"fence-{node}", "stonith", "fence_hastack",
        params=(*target, ("plug", node), ("pcmk_reboot_action", "off")),
        ops=monitor, comment=f"lab power fencing of {node} (the lab's power cut)",
    )
