"""What only an existing cloud's files reveal: how HAProxy checks Galera, how fast it notices
a dead back end, how keepalived's VRRP instances behave and collide, which brokers and
memcached instances clients are told about, and client timeouts that stall requests.

The model has no words for these (hastack renders them right by construction), so they are
checked here on the imported facts, one function per rule, each finding at its file and
line. The linter's own rules (quorum, DHCP agents, L3 HA, Galera writers, ...) run on the
imported model in `hastack.importers.finish`.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from hastack.catalog import cite
from hastack.checks import Finding, Severity
from hastack.importers import CloudFacts, ImportFinding, Origin, Setting
from hastack.render.budget import budget_for_target

KOLLA_DEFAULT_VRID = 51


@dataclass(frozen=True)
class ImportRule:
    id: str
    severity: Severity
    summary: str
    source: str
    check: Callable[[CloudFacts, ImportRule], Iterator[ImportFinding]]

    def finding(self, origin: Origin, subject: str, message: str, fix: str,
                severity: Severity | None = None) -> ImportFinding:
        return ImportFinding(origin, Finding(self.id, severity or self.severity, subject,
                                             message, fix, self.source))


IMPORT_RULES: list[ImportRule] = []


def import_rule(id: str, severity: Severity, summary: str, source: str
                ) -> Callable[[Callable[[CloudFacts, ImportRule], Iterator[ImportFinding]]],
                              Callable[[CloudFacts, ImportRule], Iterator[ImportFinding]]]:
    def register(check: Callable[[CloudFacts, ImportRule], Iterator[ImportFinding]]
                 ) -> Callable[[CloudFacts, ImportRule], Iterator[ImportFinding]]:
        IMPORT_RULES.append(ImportRule(id, severity, summary, source, check))
        return check
    return register


def check_files(facts: CloudFacts) -> list[ImportFinding]:
    return [f for r in IMPORT_RULES for f in r.check(facts, r)]


@import_rule("galera-backend-check", "error",
             "HAProxy checks a Galera back end with mysql-check or a bare TCP connect",
             cite(("003", "Galera behind HAProxy with one active back end"),
                  ("001", "direct writes to one replica")))
def galera_backend_check(facts: CloudFacts, r: ImportRule) -> Iterator[ImportFinding]:
    for backend in facts.backends:
        if not backend.galera or backend.check not in ("mysql-check", "tcp"):
            continue
        how = ("option mysql-check only completes a MySQL handshake"
               if backend.check == "mysql-check" else
               "a TCP connect check only sees that mariadbd listens")
        yield r.finding(
            backend.check_origin, backend.name,
            f"{how}: a Galera node that left the Primary Component (partitioned, desynced, "
            "donating) still passes, so HAProxy keeps sending it connections that fail with "
            "'WSREP has not yet prepared node for application use'",
            "check wsrep_local_state over HTTP (clustercheck on port 9200: `option httpchk`, "
            "`server ... check port 9200`), as hastack renders it",
        )


@import_rule("haproxy-slow-checks", "warning",
             "HAProxy detects a dead back end only after more than the failover target",
             "hastack's failover budget (settings.failover.target_seconds); "
             + cite(("003", "SLA")))
def haproxy_slow_checks(facts: CloudFacts, r: ImportRule) -> Iterator[ImportFinding]:
    target = facts.failover_target_s
    budget = budget_for_target(target)
    for backend in facts.backends:
        slow = [s for s in backend.servers if s.checked and s.inter_ms * s.fall / 1000 > target]
        if not slow:
            continue
        s = slow[0]
        down = s.inter_ms * s.fall / 1000
        default = f" ({s.timing_from_default})" if s.timing_from_default else ""
        yield r.finding(
            s.origin, backend.name,
            f"a dead back end is marked down only after {down:g} s (inter {s.inter_ms:g}ms x "
            f"fall {s.fall}){default}, over the {target:g} s failover target: until then "
            f"every connection HAProxy sends it fails; a recovered one returns after "
            f"rise {s.rise} x inter = {s.inter_ms * s.rise / 1000:g} s",
            f"inter {budget.haproxy_inter_ms}ms fall {budget.haproxy_fall} rise "
            f"{budget.haproxy_rise} ({budget.haproxy_down_s:g} s, what `hastack render` "
            f"derives from a {target:g} s target)",
        )


@import_rule("vrrp-preempt", "warning",
             "a keepalived VRRP instance takes the VIP back when a node returns (no nopreempt)",
             "keepalived.conf(5) (nopreempt); "
             + cite(("000", "Keepalived and network partitions")))
def vrrp_preempt(facts: CloudFacts, r: ImportRule) -> Iterator[ImportFinding]:
    for v in facts.vrrp:
        if v.nopreempt and v.state != "MASTER":
            continue
        why = ("nopreempt is ignored with state MASTER" if v.nopreempt
               else "without nopreempt")
        yield r.finding(
            v.origin, f"{v.node}/{v.name}",
            f"{why}: when the higher-priority node comes back, it takes the VIP "
            "again, a second failover (connections reset) for a node that may be flapping",
            "state BACKUP and nopreempt on every node of the instance",
        )


@import_rule("vrrp-vrid-clash", "error",
             "two VRRP instances on one segment share a virtual_router_id",
             cite(("000", "Keepalived and network partitions"))
             + "; Kolla-Ansible keepalived_virtual_router_id (default 51)")
def vrrp_vrid_clash(facts: CloudFacts, r: ImportRule) -> Iterator[ImportFinding]:
    # One instance's peers share its VRID by design; a clash is the same VRID on the same
    # segment for other VIPs (another instance, another cloud).
    by_segment: dict[tuple[str, int], dict[frozenset[str], list[int]]] = defaultdict(dict)
    for index, v in enumerate(facts.vrrp):
        segment = str(v.vips[0].network) if v.vips else v.interface
        by_segment[(segment, v.vrid)].setdefault(frozenset(str(a.ip) for a in v.vips),
                                                 []).append(index)
    for (segment, vrid), groups in sorted(by_segment.items()):
        if len(groups) < 2:
            continue
        first, *others = sorted(groups.items(), key=lambda g: min(g[1]))
        for vips, indices in others:
            v = facts.vrrp[indices[0]]
            theirs = facts.vrrp[first[1][0]]
            yield r.finding(
                v.vrid_origin, f"{v.node}/{v.name}",
                f"virtual_router_id {vrid} on {segment} is also used by {theirs.name} "
                f"({theirs.vrid_origin}) for {', '.join(sorted(first[0]))}: the routers see "
                f"one VRRP group, one master for both, and {', '.join(sorted(vips))} or the "
                "other VIP goes unserved (or adverts are dropped and both claim it)",
                "give every instance on a segment its own virtual_router_id (1-255)",
            )
    for v in facts.vrrp:
        if v.vrid != KOLLA_DEFAULT_VRID:
            continue
        whose = f"{v.default_vrid_of}'s default" if v.default_vrid_of else "Kolla-Ansible's default"
        yield r.finding(
            v.vrid_origin, f"{v.node}/{v.name}",
            f"virtual_router_id 51 is {whose} keepalived_virtual_router_id: any other "
            "Kolla-Ansible cloud left at its default on this segment joins the same VRRP "
            "group and fights for the VIP",
            "choose a VRID unique on the segment (keepalived_virtual_router_id in "
            "globals.yml, or virtual_router_id)",
            severity="warning",
        )


@import_rule("transport-url-single-node", "error",
             "a service's transport_url names one RabbitMQ node",
             cite(("001", "RabbitMQ mirrored queues with client-side node lists"),
                  ("000", "RabbitMQ: clients list every node")))
def transport_url_single_node(facts: CloudFacts, r: ImportRule) -> Iterator[ImportFinding]:
    cluster = len(facts.rabbitmq_nodes)
    for url in facts.transport_urls:
        if len(url.servers) != 1:
            continue
        size = f"of a {cluster}-node cluster " if cluster > 1 else ""
        yield r.finding(
            url.origin, url.option,
            f"names one RabbitMQ node {size}({url.servers[0]}): when it fails this service "
            "loses its message bus although the cluster survives, and its RPCs fail until "
            "that node returns",
            "list every RabbitMQ node: rabbit://user:pass@host1:5672,user:pass@host2:5672,"
            "user:pass@host3:5672/",
        )


@import_rule("memcached-list-incomplete", "warning",
             "a memcached server list misses an instance the other files name",
             cite(("003", "memcached client hashing"), ("000", "memcached: client list")))
def memcached_list_incomplete(facts: CloudFacts, r: ImportRule) -> Iterator[ImportFinding]:
    known = dict(facts.memcached_instances)
    for listed in facts.memcached_lists:
        for server in listed.servers:
            known.setdefault(_host_port(server, 11211), listed.origin)
    for listed in facts.memcached_lists:
        mine = {_host_port(s, 11211) for s in listed.servers}
        missing = sorted(set(known) - mine)
        if not missing:
            continue
        yield r.finding(
            listed.origin, listed.option,
            f"lists {len(mine)} of {len(known)} memcached instances (missing "
            f"{', '.join(f'{m} ({known[m]})' for m in missing)}): clients with different "
            "lists hash keys to different servers, so what one service caches (a token "
            "check, a revocation) another never sees, and its share of the cache is lost",
            "give every client the same full list of memcached instances",
        )


@import_rule("memcached-client-stall", "warning",
             "oslo.cache / keystonemiddleware timeouts that stall requests on a dead memcached",
             cite(("003", "memcached client hashing; SLA several minutes"))
             + "; oslo.cache and keystonemiddleware options")
def memcached_client_stall(facts: CloudFacts, r: ImportRule) -> Iterator[ImportFinding]:
    budget = budget_for_target(facts.failover_target_s)
    for timeout, dead_retry in facts.cache_timeouts:
        if timeout.value > budget.memcache_socket_timeout_s:
            yield r.finding(
                timeout.origin, timeout.option,
                f"{timeout.option} = {timeout.value:g}{_default(timeout)}: each request that "
                f"meets a dead memcached instance waits {timeout.value:g} s before the client "
                "gives up on it",
                f"{timeout.option} = {budget.memcache_socket_timeout_s} (a live memcached on "
                "the LAN answers in milliseconds)",
            )
        if dead_retry is not None and dead_retry.value < budget.memcache_dead_retry_s:
            yield r.finding(
                dead_retry.origin, dead_retry.option,
                f"{dead_retry.option} = {dead_retry.value:g}{_default(dead_retry)}: a dead "
                f"instance is tried again every {dead_retry.value:g} s, and every retry stalls "
                f"a request for {timeout.option} ({timeout.value:g} s) while it is down",
                f"{dead_retry.option} = {budget.memcache_dead_retry_s} or more",
            )


def _default(setting: Setting) -> str:
    return f" (not set: {setting.default_of}'s default)" if setting.default_of else ""


def _host_port(server: str, default_port: int) -> str:
    server = server.strip().removeprefix("inet:")
    if server.startswith("["):
        host, _, port = server[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
    with contextlib.suppress(ValueError):
        host = str(ipaddress.ip_address(host))
    return f"{host}:{port or default_port}"
