"""Render Redis with Sentinel: `etc/redis/redis.conf` and `etc/redis/sentinel.conf` on every
node running them (ceilometer's tooz coordination backend; RDO keepalived: "App cluster
(Sentinel)").

Stage 4 (render); pure. The first Redis node starts as the master, the others replicate it;
Sentinels on the same nodes elect a new master by majority when it is lost. Clients reach the
current master through the Sentinels (`sentinel_url`, tooz's backend_url).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import quote

from hastack.plan import Plan
from hastack.render import RenderContext, RenderedFile
from hastack.render.budget import Budget
from hastack.render.secrets import SecretSpec
from hastack.render.templating import render_template

SYSTEM = "redis"
REDIS = "redis"
SENTINEL = "redis-sentinel"
PASSWORD_SECRET = "redis_password"
MAXMEMORY = "64mb"      # tooz coordination data (members, locks, heartbeats) is tiny

# A tooz member that stops heartbeating (a crashed Ceilometer central agent) leaves its group
# after this long, and the survivors take its share of the work at their next poll. tooz
# heartbeats every half of it, so a live member must stall 5 s to be dropped. (tooz's
# default, 30 s, leaves a dead agent's resources unpolled for half a minute.)
TOOZ_MEMBERSHIP_TIMEOUT_S = 10

# Sentinels ping every instance once a second: a shorter down-after only adds false failovers.
MIN_SENTINEL_FAILOVER_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class SentinelTimings:
    """Sentinel timings derived from the budget's target. Budget has no Sentinel fields yet;
    these are the proposed ones (sentinel_down_after_ms, sentinel_failover_timeout_ms)."""

    down_after_ms: int          # master silent this long -> subjectively down
    failover_timeout_ms: int    # bounds one failover attempt (and the retry after 2x)
    replica_max_lag_s: int      # a master without a fresh enough replica refuses writes


def sentinel_timings(budget: Budget) -> SentinelTimings:
    # Like HAProxy's checks: detection within half the target; the election and promotion
    # that follow take about a second more.
    down_after = budget.sentinel_down_after_ms
    return SentinelTimings(
        down_after_ms=down_after,
        failover_timeout_ms=max(MIN_SENTINEL_FAILOVER_TIMEOUT_MS, 10 * down_after),
        # Replicas acknowledge every second; lag must exceed detection so a healthy master
        # never refuses writes, yet bound what an isolated old master can accept.
        replica_max_lag_s=max(2, math.ceil(2 * down_after / 1000)),
    )


def master_name(plan: Plan) -> str:
    """The name Sentinel monitors the master under: the cloud's name."""
    return plan.cloud.name


def sentinel_quorum(voters: int) -> int:
    """Sentinels that must agree the master is down: a majority, so a partitioned minority
    never promotes a second master."""
    return voters // 2 + 1


def sentinel_url(plan: Plan, password: str) -> str:
    """tooz's backend_url: the first Sentinel, the others as fallbacks, the master's
    password (tooz uses it for the master; Sentinels themselves take no password) and how
    long a silent member stays in its groups."""
    addresses = [f"{plan.cloud.node(n).ip}:{plan.port('redis-sentinel')}"
                 for n in plan.nodes_running(SENTINEL)]
    if not addresses:
        raise ValueError("the plan runs no Redis Sentinel")
    first, *fallbacks = addresses
    query = [f"sentinel={quote(master_name(plan), safe='')}"]
    query += [f"sentinel_fallback={a}" for a in fallbacks]
    query.append(f"membership_timeout={TOOZ_MEMBERSHIP_TIMEOUT_S}")
    return f"redis://:{quote(password, safe='')}@{first}?{'&'.join(query)}"


def secrets_needed(plan: Plan) -> list[SecretSpec]:
    if not plan.runs(REDIS):
        return []
    return [SecretSpec(PASSWORD_SECRET, "password", "Redis requirepass/masterauth (tooz)")]


def render(ctx: RenderContext) -> list[RenderedFile]:
    plan = ctx.plan
    if not plan.runs(REDIS):
        return []
    password = ctx.secret(PASSWORD_SECRET)
    timings = sentinel_timings(ctx.budget)
    redis_nodes = plan.nodes_running(REDIS)
    master = redis_nodes[0]
    # A master keeps accepting writes only with a majority of the Redis nodes behind it.
    min_replicas = (len(redis_nodes) - 1) // 2
    files = [
        RenderedFile(
            node, "etc/redis/redis.conf",
            render_template(
                SYSTEM, "redis.conf.j2", address=ctx.address(node), port=plan.port("redis"),
                password=password, master=None if node == master else ctx.address(master),
                maxmemory=MAXMEMORY, min_replicas=min_replicas, timings=timings,
            ),
            SYSTEM, mode=0o640, owner="redis",
        )
        for node in redis_nodes
    ]
    sentinels = plan.nodes_running(SENTINEL)
    files += [
        RenderedFile(
            node, "etc/redis/sentinel.conf",
            render_template(
                SYSTEM, "sentinel.conf.j2", address=ctx.address(node),
                port=plan.port("redis-sentinel"), master_name=master_name(plan),
                master=ctx.address(master), master_port=plan.port("redis"),
                quorum=sentinel_quorum(len(sentinels)), password=password, timings=timings,
            ),
            SYSTEM, mode=0o640, owner="redis",
        )
        for node in sentinels
    ]
    return files
