"""memcached, Redis and Sentinel: started on their nodes; who is the Redis master, and who
are the live members of a tooz group it holds.

Stage 5 (deploy), one system, written only against `NodeExec`. Sentinel rewrites its own
configuration file, so it runs on a writable copy made once per data directory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hastack.deploy.base import NodeExec
from hastack.deploy.site import Site, running, start
from hastack.deploy.systems import parallel, wait_listening
from hastack.errors import HastackError

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
    # tooz group -> its live members, as the master holds them (None: the master did not
    # answer).
    groups: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"master": self.master, "sentinels": list(self.sentinels),
                "tooz_groups": {g: None if m is None else list(m)
                                for g, m in self.groups.items()}}


# tooz's Redis driver keeps a group as the hash `_tooz_group:<group>` (a field per member and
# a `__created__` marker) and each member's liveness as the key `_tooz_beats:<member>`, which
# expires when the member stops heartbeating (tooz.drivers.redis). A member whose beat
# expired is gone, as tooz's own get_members counts it; read in one script, at one instant.
_TOOZ_GROUP, _TOOZ_BEAT, _TOOZ_CREATED = "_tooz_group:", "_tooz_beats:", "__created__"
_LIVE_MEMBERS = ("local live = {} "
                 "for _, m in ipairs(redis.call('HKEYS', KEYS[1])) do "
                 "if m ~= ARGV[2] and redis.call('EXISTS', ARGV[1] .. m) == 1 then "
                 "table.insert(live, m) end end return live")
_REQUIREPASS = re.compile(r"^requirepass\s+(\S+)", re.M)


def memcached_servers(site: Site) -> list[str]:
    """host:port of every memcached that listens."""
    port = site.plan.port(MEMCACHED) if site.plan.runs(MEMCACHED) else 0
    return [f"{n.address.ip}:{port}" for n in site.members(MEMCACHED) if port in n.listening()]


def redis_view(site: Site, groups: Sequence[str] = ()) -> RedisView | None:
    """Who the Sentinels call master, which Sentinels listen, and the live members of the
    tooz `groups`."""
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
    return RedisView(master, tuple(s.name for s in sentinels if port in s.listening()),
                     {g: tooz_members(site, master, g) for g in groups})


def _quoted(arg: str) -> str:
    """One argument of a redis-cli input line (double quotes, backslash escapes)."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def tooz_members(site: Site, master: str | None, group: str) -> tuple[str, ...] | None:
    """The live members of a tooz group, read on the Redis master (None: no master, or it
    did not answer). The password is the one rendered into the master's redis.conf; it goes
    to redis-cli on its standard input (an AUTH line before the script), never on a command
    line or in an environment a remote shell would spell out."""
    node = next((n for n in site.members(REDIS) if n.name == master), None)
    if node is None:
        return None
    found = _REQUIREPASS.search(site.rendered(node.name, RENDERED_REDIS_CONF) or "")
    lines = [f"AUTH {_quoted(found.group(1))}"] if found else []
    lines.append(" ".join(_quoted(a) for a in ("EVAL", _LIVE_MEMBERS, "1",
                                                f"{_TOOZ_GROUP}{group}", _TOOZ_BEAT,
                                                _TOOZ_CREATED)))
    argv = ["redis-cli", "--no-auth-warning", "--raw", "-h", str(node.address.ip),
            "-p", str(site.plan.port(REDIS))]
    try:
        result = node.run(argv, input="\n".join(lines) + "\n", check=False, timeout=5)
    except HastackError:
        return None
    out = result.stdout.splitlines()
    if found:
        if not out or out[0] != "OK":          # the AUTH line's answer
            return None
        out = out[1:]
    if result.returncode != 0 or any(line.startswith(("ERR", "NOAUTH", "WRONGPASS"))
                                     for line in out):
        return None
    return tuple(sorted(line for line in out if line))
