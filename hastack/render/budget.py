"""One HA timing budget: every failover timing derived from `settings.failover.target_seconds`.

Deployment tools scatter these numbers across roles (one ships HAProxy `inter 2000 rise 2
fall 5`, another `inter 12000 fall 3`, i.e. 36 s to mark a back end down). Here they come from
one target, and `hastack render` prints the result: which mechanism detects what, after how long.

Pure: a Cloud in, a Budget out. Renderers read their numbers from the Budget, never invent them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from hastack.model.cloud import Cloud

# Floors below which a mechanism turns noisy on a loaded host (false failovers).
MIN_VRRP_ADVERT_S = 0.1        # VRRPv3 counts in centiseconds
MIN_HAPROXY_INTER_MS = 200
MIN_GALERA_SUSPECT_S = 2.0     # below this, a busy node is evicted for a scheduling hiccup
MIN_RABBIT_TICKTIME_S = 4      # Erlang ticks at net_ticktime/4; smaller values flap
MIN_COROSYNC_TOKEN_MS = 1000   # below this, totem reforms membership on a scheduling hiccup
MIN_SENTINEL_DOWN_AFTER_MS = 1000


@dataclass(frozen=True)
class Timing:
    """One line of the budget: a mechanism, what it detects, its settings, its detection time."""

    mechanism: str
    detects: str
    settings: str
    detection_s: float


@dataclass(frozen=True)
class Budget:
    target_s: float
    # VRRP (keepalived): a backup takes over after 3 missed adverts plus its skew time.
    vrrp_advert_s: float
    vrrp_track_interval_s: int
    vrrp_track_fall: int
    # HAProxy health checks: a back end is down after `fall` failed checks `inter` apart.
    haproxy_inter_ms: int
    haproxy_fall: int
    haproxy_rise: int
    haproxy_connect_timeout_ms: int
    # Galera group communication: a silent member is suspected, then evicted.
    galera_suspect_s: float
    galera_inactive_s: float
    galera_keepalive_s: float
    galera_inactive_check_s: float
    # A membership change (a member leaving or joining) is given this long to be installed;
    # past it the members gather again, and repeated expiries end in non-Primary singletons.
    galera_install_s: float
    # RabbitMQ/Erlang: a silent peer is declared down between 0.75 and 1.25 x net_ticktime.
    rabbit_net_ticktime_s: int
    # Clients (oslo.db / oslo.messaging): how fast they notice and retry.
    db_retry_interval_s: int
    db_connect_timeout_s: int
    amqp_heartbeat_timeout_s: int
    amqp_retry_interval_s: int
    # Kernel: established TCP connections to a vanished peer give up after tcp_retries2.
    tcp_retries2: int
    # Corosync totem: a silent member is declared lost after token + consensus.
    corosync_token_ms: int
    # Redis Sentinel: a silent master is subjectively down after down-after-milliseconds.
    sentinel_down_after_ms: int
    # memcached clients (oslo.cache, keystonemiddleware): a server that does not answer
    # within the socket timeout is skipped for dead_retry seconds.
    memcache_socket_timeout_s: int
    memcache_dead_retry_s: int

    @property
    def corosync_consensus_ms(self) -> int:
        return int(self.corosync_token_ms * 1.2)

    @property
    def vrrp_failover_s(self) -> float:
        """Master-down interval of the highest-priority backup (skew for priority ~ 254)."""
        return round(3 * self.vrrp_advert_s + self.vrrp_advert_s * (256 - 254) / 256, 2)

    @property
    def haproxy_down_s(self) -> float:
        return round(self.haproxy_inter_ms * self.haproxy_fall / 1000, 2)

    @property
    def rabbit_down_s(self) -> float:
        return 1.25 * self.rabbit_net_ticktime_s

    @property
    def tcp_give_up_s(self) -> float:
        """Time for the kernel to abandon a connection (RTO from 200 ms, doubling, 120 s cap)."""
        total, rto = 0.0, 0.2
        for _ in range(self.tcp_retries2 + 1):
            total += rto
            rto = min(rto * 2, 120.0)
        return round(total, 1)

    def timings(self) -> list[Timing]:
        return [
            Timing("keepalived VRRP", "VIP holder lost (node crash, partition)",
                   f"advert_int {self.vrrp_advert_s}", self.vrrp_failover_s),
            Timing("keepalived track_script", "HAProxy dead on the VIP holder",
                   f"interval {self.vrrp_track_interval_s} fall {self.vrrp_track_fall}",
                   float(self.vrrp_track_interval_s * self.vrrp_track_fall)),
            Timing("HAProxy checks", "API or Galera back end down",
                   f"inter {self.haproxy_inter_ms}ms fall {self.haproxy_fall} "
                   f"rise {self.haproxy_rise}", self.haproxy_down_s),
            Timing("Galera EVS", "cluster member silent (writes stall until evicted)",
                   f"evs.suspect_timeout PT{self.galera_suspect_s:g}S", self.galera_suspect_s),
            Timing("RabbitMQ net_ticktime", "cluster peer silent",
                   f"net_ticktime {self.rabbit_net_ticktime_s}", self.rabbit_down_s),
            Timing("oslo.messaging heartbeat", "broker connection dead (client side)",
                   f"heartbeat_timeout_threshold {self.amqp_heartbeat_timeout_s}",
                   float(self.amqp_heartbeat_timeout_s)),
            Timing("oslo.db", "database connection lost, retried",
                   f"retry_interval {self.db_retry_interval_s}, "
                   f"connect_timeout {self.db_connect_timeout_s}",
                   float(self.db_retry_interval_s)),
            Timing("Corosync totem", "cluster member lost (Pacemaker then fences and fails over)",
                   f"token {self.corosync_token_ms} consensus {self.corosync_consensus_ms}",
                   (self.corosync_token_ms + self.corosync_consensus_ms) / 1000),
            Timing("Redis Sentinel", "Redis master down (then a replica is promoted)",
                   f"down-after-milliseconds {self.sentinel_down_after_ms}",
                   self.sentinel_down_after_ms / 1000),
            Timing("memcached clients", "memcached instance dead (skipped, keys rehashed)",
                   f"socket_timeout {self.memcache_socket_timeout_s}, "
                   f"dead_retry {self.memcache_dead_retry_s}",
                   float(self.memcache_socket_timeout_s)),
            Timing("kernel TCP", "established connection to a vanished peer",
                   f"net.ipv4.tcp_retries2 {self.tcp_retries2}", self.tcp_give_up_s),
        ]


def make_budget(cloud: Cloud) -> Budget:
    if cloud.settings.failover.profile == "kolla-ansible":
        return kolla_ansible_defaults(cloud)
    return budget_for_target(cloud.settings.failover.target_seconds)


def kolla_ansible_defaults(cloud: Cloud) -> Budget:
    """The timings a default Kolla-Ansible deployment runs with (its keepalived and HAProxy
    roles, and the daemons' own defaults elsewhere), for side-by-side measurement."""
    derived = budget_for_target(cloud.settings.failover.target_seconds)
    return replace(
        derived,
        vrrp_advert_s=1.0,                 # keepalived role: advert_int 1
        vrrp_track_interval_s=2,
        vrrp_track_fall=1,
        haproxy_inter_ms=2000,             # haproxy role: inter 2000 rise 2 fall 5
        haproxy_fall=5,
        haproxy_rise=2,
        haproxy_connect_timeout_ms=10000,
        galera_suspect_s=5.0,              # Galera's defaults
        galera_inactive_s=15.0,
        galera_keepalive_s=1.0,
        galera_inactive_check_s=1.0,
        galera_install_s=7.5,
        rabbit_net_ticktime_s=60,          # Erlang's default
        db_retry_interval_s=10,            # oslo.db's default
        amqp_heartbeat_timeout_s=60,       # oslo.messaging's default
        tcp_retries2=15,                   # the kernel's default
    )


def budget_for_target(target: float) -> Budget:
    # VIP: three adverts plus skew should take about a third of the target.
    advert = max(MIN_VRRP_ADVERT_S, round(target / 10, 2))
    # Back ends: detection within half the target, with two failed checks (one is noise).
    fall = 2
    inter_ms = max(MIN_HAPROXY_INTER_MS, int(target * 1000 / 2 / fall) // 50 * 50)
    suspect = max(MIN_GALERA_SUSPECT_S, float(math.ceil(target)))
    ticktime = max(MIN_RABBIT_TICKTIME_S, math.ceil(2 * target))
    return Budget(
        target_s=target,
        vrrp_advert_s=advert,
        vrrp_track_interval_s=1,
        vrrp_track_fall=max(1, math.ceil(target / 2)),
        haproxy_inter_ms=inter_ms,
        haproxy_fall=fall,
        haproxy_rise=3,
        haproxy_connect_timeout_ms=max(500, int(target * 1000 / 2)),
        galera_suspect_s=suspect,
        galera_inactive_s=suspect * 5,
        galera_keepalive_s=round(suspect / 4, 2),
        galera_inactive_check_s=round(suspect / 4, 2),
        # A member rejoining on a busy host may take seconds to answer the install message:
        # with install at inactive / 2 = 2 s, a crashed member's rejoin expired three times
        # and split the survivors into non-Primary singletons (lab, rabbit-node-crash).
        # Galera keeps install below inactive, so both grow; detection does not, since the
        # survivors evict a silent member once they all suspect it (suspect_timeout).
        galera_install_s=suspect * 3.75,
        rabbit_net_ticktime_s=ticktime,
        db_retry_interval_s=max(1, math.ceil(target / 2)),
        db_connect_timeout_s=max(1, math.ceil(target)),
        amqp_heartbeat_timeout_s=max(4, math.ceil(2 * target)),
        amqp_retry_interval_s=1,
        tcp_retries2=5 if target <= 5 else 8,
        # Membership reforms (token + 1.2 x token) within the target.
        corosync_token_ms=max(MIN_COROSYNC_TOKEN_MS, int(target * 1000 / 2.2) // 50 * 50),
        # Like HAProxy's checks: detection within half the target.
        sentinel_down_after_ms=max(MIN_SENTINEL_DOWN_AFTER_MS, int(target * 1000 / 2)),
        # A live memcached on the LAN answers within HAProxy's back-end connect timeout.
        memcache_socket_timeout_s=max(1, math.ceil(max(500, int(target * 1000 / 2)) / 1000)),
        # Skip a dead server for ten times the time RabbitMQ needs to declare a peer down:
        # each retry of a still-dead server costs one socket timeout on one request.
        memcache_dead_retry_s=max(30, 10 * ticktime),
    )
