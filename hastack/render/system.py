"""Per-node system files: /etc/hosts, /etc/hostname and the HA-relevant sysctls.

Stage 4 (render), first of the systems: RabbitMQ (Erlang node names) and Galera need every peer
to resolve by name, HAProxy on a VIP candidate must bind an address it does not hold yet, and
the kernel's TCP timers decide how long a connection to a vanished peer lingers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hastack.plan import Plan
from hastack.render import RenderContext, RenderedFile
from hastack.render.budget import Budget
from hastack.render.secrets import SecretSpec

SYSTEM = "system"
SYSCTL_PATH = "etc/sysctl.d/60-hastack.conf"
HEADER = "# Rendered by hastack for {node} (cloud {cloud}); edit cloud.yaml and re-render.\n"


@dataclass(frozen=True)
class Sysctl:
    key: str
    value: int
    why: str


@dataclass(frozen=True)
class KeepaliveTimings:
    """TCP keepalive for idle connections, derived from the Budget until it carries them.

    An idle connection to a crashed peer (a pooled DB connection held by HAProxy for a dead API
    node, an idle client) is otherwise kept for 2 h 11 min, holding a Galera connection slot."""

    time_s: int
    interval_s: int
    probes: int


def keepalive_timings(budget: Budget) -> KeepaliveTimings:
    # Probe as often as oslo.db retries, give up after as many probes as HAProxy's fall count,
    # and start after one AMQP heartbeat window of silence (the bus's own idea of "dead").
    return KeepaliveTimings(
        time_s=max(10, budget.amqp_heartbeat_timeout_s * 5),
        interval_s=max(1, math.ceil(budget.db_retry_interval_s)),
        probes=max(2, budget.haproxy_fall + 1),
    )


def secrets_needed(plan: Plan) -> list[SecretSpec]:
    return []


def vip_candidates(plan: Plan) -> set[str]:
    """Nodes that may hold a VIP (keepalived or Pacemaker moves it onto them)."""
    return {node for vip in plan.vips for node in vip.candidates}


def sysctls(plan: Plan, budget: Budget, node: str) -> list[Sysctl]:
    keepalive = keepalive_timings(budget)
    settings: list[Sysctl] = []
    if node in vip_candidates(plan):
        settings.append(Sysctl(
            "net.ipv4.ip_nonlocal_bind", 1,
            "HAProxy binds the VIPs before (and while) another node holds them."))
    settings += [
        Sysctl("net.ipv4.tcp_retries2", budget.tcp_retries2,
               f"Give up on an established connection to a vanished peer after about "
               f"{budget.tcp_give_up_s:g} s (budget) instead of ~15 min."),
        Sysctl("net.ipv4.tcp_keepalive_time", keepalive.time_s,
               "Probe idle connections (pooled DB and cache connections, HAProxy tcpka)\n"
               "so a crashed peer frees its slots in minutes, not after 2 h."),
        Sysctl("net.ipv4.tcp_keepalive_intvl", keepalive.interval_s,
               "Seconds between keepalive probes."),
        Sysctl("net.ipv4.tcp_keepalive_probes", keepalive.probes,
               "Unanswered probes before the connection is dropped."),
    ]
    return settings


def _sysctl_conf(ctx: RenderContext, node: str) -> str:
    lines = [HEADER.format(node=node, cloud=ctx.plan.cloud.name).rstrip("\n")]
    for setting in sysctls(ctx.plan, ctx.budget, node):
        lines += [""] + [f"# {line}" for line in setting.why.splitlines()]
        lines.append(f"{setting.key} = {setting.value}")
    return "\n".join(lines) + "\n"


def _host_lines(ctx: RenderContext) -> list[str]:
    """Every node by address, the same on every node (computed once per render)."""
    addresses = [(str(n.ip), n.name) for n in ctx.plan.cloud.nodes]
    width = max(len(ip) for ip, _ in addresses)
    return [f"{ip:<{width}} {name}" for ip, name in addresses]


def _hosts(ctx: RenderContext, node: str, host_lines: list[str]) -> str:
    cloud = ctx.plan.cloud
    lines = [
        HEADER.format(node=node, cloud=cloud.name).rstrip("\n"),
        "127.0.0.1 localhost",
        "::1 localhost ip6-localhost ip6-loopback",
        "",
        "# Every node by its own address, never 127.0.1.1: Erlang (RabbitMQ) and Galera",
        "# advertise the address their name resolves to.",
    ]
    return "\n".join(lines + host_lines) + "\n"


def render(ctx: RenderContext) -> list[RenderedFile]:
    files: list[RenderedFile] = []
    host_lines = _host_lines(ctx)
    for node in ctx.plan.cloud.nodes:
        name = node.name
        files += [
            RenderedFile(name, "etc/hosts", _hosts(ctx, name, host_lines), SYSTEM),
            RenderedFile(name, "etc/hostname", f"{name}\n", SYSTEM),
            RenderedFile(name, SYSCTL_PATH, _sysctl_conf(ctx, name), SYSTEM),
        ]
    return files
