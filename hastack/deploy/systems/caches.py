"""memcached, Redis and Sentinel: started on their nodes; who is the Redis master.

Stage 5 (deploy), one system, written only against `NodeExec`. Sentinel rewrites its own
configuration file, so it runs on a writable copy made once per data directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hastack.deploy.base import NodeExec
from hastack.deploy.site import Site, running, start
from hastack.deploy.systems import parallel, wait_listening

MEMCACHED, REDIS, SENTINEL = "memcached", "redis", "redis-sentinel"
# Redis and Sentinel rewrite their configuration (Sentinel's CONFIG REWRITE records who is
# master after a failover): each runs on a writable copy, made from the rendered file once, so
# that a later `up`, which puts the rendered files back, never undoes a failover.
REDIS_CONF = "/var/lib/redis/redis.conf"
RENDERED_REDIS_CONF = "etc/redis/redis.conf"
SENTINEL_CONF = "/var/lib/redis/sentinel.conf"
RENDERED_SENTINEL_CONF = "etc/redis/sentinel.conf"
_WRITABLE_COPIES = {REDIS: (RENDERED_REDIS_CONF, REDIS_CONF),
                    SENTINEL: (RENDERED_SENTINEL_CONF, SENTINEL_CONF)}
START_TIMEOUT_S = 30
_MONITOR = re.compile(r"^sentinel monitor (\S+)", re.M)


def bring_up(site: Site) -> list[str]:
    actions = []
    for process in (MEMCACHED, REDIS, SENTINEL):
        port = site.plan.port(process)

        def boot(node: NodeExec, process: str = process, port: int = port) -> list[str]:
            if process in _WRITABLE_COPIES:
                _writable_copy(site, node, *_WRITABLE_COPIES[process])
            action = start(node, process, site.steps)
            wait_listening(node, process, port, START_TIMEOUT_S)
            return [action]

        actions += parallel(boot, [n for n in site.members(process) if not running(n, process)])
    return actions


def _writable_copy(site: Site, node: NodeExec, rendered_path: str, copy: str) -> None:
    rendered = site.rendered(node.name, rendered_path)
    if rendered is not None and not node.exists(copy):
        node.write(copy, rendered.encode(), 0o640, "redis")


@dataclass(frozen=True)
class RedisView:
    master: str | None
    sentinels: tuple[str, ...]      # nodes whose Sentinel listens

    def to_json(self) -> dict[str, object]:
        return {"master": self.master, "sentinels": list(self.sentinels)}


def memcached_servers(site: Site) -> list[str]:
    """host:port of every memcached that listens."""
    port = site.plan.port(MEMCACHED) if site.plan.runs(MEMCACHED) else 0
    return [f"{n.address.ip}:{port}" for n in site.members(MEMCACHED) if port in n.listening()]


def redis_view(site: Site) -> RedisView | None:
    if not site.plan.runs(REDIS):
        return None
    sentinels = site.members(SENTINEL)
    port = site.plan.port(SENTINEL) if sentinels else 0
    master = None
    conf = site.rendered(sentinels[0].name, RENDERED_SENTINEL_CONF) if sentinels else None
    match = _MONITOR.search(conf or "")
    if sentinels and match:
        out = sentinels[0].run(["redis-cli", "-p", str(port), "sentinel",
                                "get-master-addr-by-name", match.group(1)],
                               check=False, timeout=5).stdout.split()
        by_ip = {str(n.ip): n.name for n in site.cloud.nodes}
        master = by_ip.get(out[0]) if out else None
    return RedisView(master, tuple(s.name for s in sentinels if port in s.listening()))
