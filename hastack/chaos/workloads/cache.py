"""Cache workload: sets and gets through a pymemcache HashClient over every memcached.

This is how OpenStack services use memcached (oslo.cache, keystonemiddleware): the client
hashes each key to one instance, with no replication, so a lost instance means misses (and
an error or two), not downtime. Each step sets key `seq` and then gets the key set LAG steps
earlier; gets record `result` hit or miss (a miss after a node died is the expected cost, a
wrong value would be a bug and is recorded as a fail).

The client is the one the rendered services use (`[cache] backend =
dogpile.cache.pymemcache` with oslo.cache's retry client, hastack.render.openstack), with the
same settings, passed in by the runner from the cloud's budget:
- socket timeout (connect and read): a black-holed node (crashed host, unplugged link) costs
  at most this to find out; a refused connection (process dead, host up) costs nothing.
- the HashClient's retry_attempts 1, retry_timeout 0: a node that fails twice in a row
  leaves the hash ring and its keys move to the survivors; it is tried again after
  dead_timeout, so a restarted memcached is back in the ring soon (its keys then miss once
  more: they live elsewhere now).
- the retrying client (attempts, no delay): the request that met the failing node is sent
  again, to where its key now hashes. A graceful memcached restart therefore costs misses,
  not errors; a dead node costs its first request the socket timeout.
- ignore_exc False: a call that fails on every attempt raises, so it is recorded as an error
  instead of being disguised as a miss (oslo.cache swallows it; we are measuring, not
  serving).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pymemcache.client.hash import HashClient
from pymemcache.client.retrying import RetryingClient
from pymemcache.exceptions import MemcacheError

from hastack.chaos import ChaosError
from hastack.chaos.timeline import Outcome, TimelineWriter, short_error
from hastack.chaos.workloads import (
    Workload,
    as_list,
    base_parser,
    setup_logging,
    split_host_port,
    stop_on_signals,
)
from hastack.render.openstack import CACHE_HASHCLIENT_RETRY_ATTEMPTS, CACHE_RETRY_ATTEMPTS

NAME = "cache"
LAG = 5
# Defaults as rendered for the demo cloud; the runner passes the cloud's own.
SOCKET_TIMEOUT_S = 0.5
DEAD_TIMEOUT_S = 30
# The retry policy is the rendered services' own (one source: the renderer).
RETRY_ATTEMPTS = CACHE_RETRY_ATTEMPTS
HASHCLIENT_RETRY_ATTEMPTS = CACHE_HASHCLIENT_RETRY_ATTEMPTS


@dataclass(frozen=True)
class ClientSettings:
    socket_timeout_s: float = SOCKET_TIMEOUT_S
    dead_timeout_s: float = DEAD_TIMEOUT_S
    retry_attempts: int = RETRY_ATTEMPTS

    def ring(self, servers: Sequence[tuple[str, int]]) -> HashClient:
        return HashClient(list(servers), connect_timeout=self.socket_timeout_s,
                          timeout=self.socket_timeout_s,
                          retry_attempts=HASHCLIENT_RETRY_ATTEMPTS, retry_timeout=0,
                          dead_timeout=self.dead_timeout_s, ignore_exc=False,
                          use_pooling=False)

    def retrying(self, ring: HashClient) -> RetryingClient:
        return RetryingClient(ring, attempts=self.retry_attempts, retry_delay=0)


class CacheWorkload(Workload):
    name = NAME

    def __init__(self, writer: TimelineWriter, servers: Sequence[str],
                 run_id: str | None = None, ttl_s: int = 600,
                 settings: ClientSettings | None = None):
        super().__init__(writer, run_id)
        if not servers:
            raise ChaosError("cache: give at least one --server HOST:PORT")
        self.servers = [split_host_port(s, 11211) for s in servers]
        self.ttl_s = ttl_s
        self.settings = settings or ClientSettings()
        self.ring = self.settings.ring(self.servers)
        self.client = self.settings.retrying(self.ring)

    def describe(self) -> dict[str, Any]:
        return {"targets": [f"{h}:{p}" for h, p in self.servers], "service": "memcached",
                "socket_timeout_s": self.settings.socket_timeout_s,
                "dead_timeout_s": self.settings.dead_timeout_s,
                "retry_attempts": self.settings.retry_attempts}

    def key(self, seq: int) -> str:
        return f"hs-{self.run_id}-{seq}"

    def _node_of(self, key: str) -> str | None:
        node = self.ring.hasher.get_node(key)
        return str(node) if node is not None else None

    def step(self, seq: int) -> None:
        key = self.key(seq)
        t0 = self.writer.now()
        target = self._node_of(key)
        outcome: Outcome
        try:
            stored = self.client.set(key, str(seq).encode(), expire=self.ttl_s, noreply=False)
            outcome, error = ("ok", "") if stored else ("fail", "set: not stored")
        except (MemcacheError, OSError) as exc:
            outcome, error = "fail", f"set: {short_error(exc, 60)}"
        self.writer.request(NAME, "set", outcome, t0, self.writer.now() - t0, error, target,
                            id=seq)
        if seq >= LAG:
            self._get(seq - LAG)

    def _get(self, seq: int) -> None:
        key = self.key(seq)
        t0 = self.writer.now()
        target = self._node_of(key)
        outcome: Outcome
        result: str | None
        try:
            value = self.client.get(key)
            if value is None:
                outcome, error, result = "ok", "", "miss"
            elif value == str(seq).encode():
                outcome, error, result = "ok", "", "hit"
            else:
                outcome, error, result = "fail", f"get: wrong value {value[:20]!r}", "wrong"
        except (MemcacheError, OSError) as exc:
            outcome, error, result = "fail", f"get: {short_error(exc, 60)}", None
        self.writer.request(NAME, "get", outcome, t0, self.writer.now() - t0, error, target,
                            id=seq, result=result)

    def teardown(self) -> None:
        with contextlib.suppress(MemcacheError, OSError):
            self.client.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(NAME, "memcached sets and gets through a HashClient.")
    parser.add_argument("--server", action="append", default=[], required=True,
                        help="HOST:PORT, once per memcached (or a comma list)")
    parser.add_argument("--socket-timeout", type=float, default=SOCKET_TIMEOUT_S,
                        help="connect and read timeout, seconds (the services' [cache])")
    parser.add_argument("--dead-timeout", type=float, default=DEAD_TIMEOUT_S,
                        help="seconds before a dropped node is tried again")
    parser.add_argument("--retry-attempts", type=int, default=RETRY_ATTEMPTS,
                        help="tries per request (oslo.cache's retry client)")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        with TimelineWriter(args.out) as writer:
            settings = ClientSettings(args.socket_timeout, args.dead_timeout,
                                      args.retry_attempts)
            workload = CacheWorkload(writer, as_list(args.server), args.run_id,
                                     settings=settings)
            issued = workload.run(args.duration, args.rate, stop_on_signals())
            print(json.dumps({"run": workload.run_id, "issued": issued}))
            return 0
    except ChaosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
