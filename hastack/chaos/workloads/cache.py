"""Cache workload: sets and gets through a pymemcache HashClient over every memcached.

This is how OpenStack services use memcached (oslo.cache, keystonemiddleware): the client
hashes each key to one instance, with no replication, so a lost instance means misses (and
an error or two), not downtime. Each step sets key `seq` and then gets the key set LAG steps
earlier; gets record `result` hit or miss (a miss after a node died is the expected cost, a
wrong value would be a bug and is recorded as a fail).

Client tuning, so that a dead node costs little (pymemcache's defaults would cost far more):
- connect_timeout 0.3 s / timeout 0.5 s: a black-holed node (crashed host, unplugged link)
  costs at most 0.3 s to find out, instead of the OS's connect timeout of minutes; a refused
  connection (process dead, host up) costs nothing.
- retry_attempts 1, retry_timeout 1 s: after the first failure, requests for that node's keys
  return at once (get → miss, set → not stored) for 1 s; one retry, then the node is dropped
  from the hash ring and its keys move to the survivors.
- dead_timeout 10 s: a dropped node is tried again after 10 s, so a restarted memcached is
  back in the ring soon (its keys then miss once more: they live elsewhere now).
- ignore_exc False: a failed call raises, so the failure is recorded as an error instead of
  being disguised as a miss (oslo.cache would set it True; we are measuring, not serving).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Sequence
from typing import Any

from pymemcache.client.hash import HashClient
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

NAME = "cache"
LAG = 5
CLIENT_SETTINGS: dict[str, Any] = {
    "connect_timeout": 0.3, "timeout": 0.5, "retry_attempts": 1, "retry_timeout": 1,
    "dead_timeout": 10, "ignore_exc": False, "use_pooling": False,
}


class CacheWorkload(Workload):
    name = NAME

    def __init__(self, writer: TimelineWriter, servers: Sequence[str],
                 run_id: str | None = None, ttl_s: int = 600):
        super().__init__(writer, run_id)
        if not servers:
            raise ChaosError("cache: give at least one --server HOST:PORT")
        self.servers = [split_host_port(s, 11211) for s in servers]
        self.ttl_s = ttl_s
        self.client = HashClient(self.servers, **CLIENT_SETTINGS)

    def describe(self) -> dict[str, Any]:
        return {"targets": [f"{h}:{p}" for h, p in self.servers], "service": "memcached",
                **{k: v for k, v in CLIENT_SETTINGS.items() if k != "use_pooling"}}

    def key(self, seq: int) -> str:
        return f"hs-{self.run_id}-{seq}"

    def _node_of(self, key: str) -> str | None:
        node = self.client.hasher.get_node(key)
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
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        with TimelineWriter(args.out) as writer:
            workload = CacheWorkload(writer, as_list(args.server), args.run_id)
            issued = workload.run(args.duration, args.rate, stop_on_signals())
            print(json.dumps({"run": workload.run_id, "issued": issued}))
            return 0
    except ChaosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
