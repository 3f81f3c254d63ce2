"""Keystone token issue in the lab: throughput through the VIP vs one controller, and the cost
of a dead memcached.

    sudo .venv/bin/python bench/keystone_tokens.py [--cloud FILE] throughput [--rounds 5]
    sudo .venv/bin/python bench/keystone_tokens.py [--cloud FILE] dead-memcached [--node ctl3]

The lab must be up (`hastack up`). Load runs inside the lab's client node (its network
namespace; the host has no address on the lab bridge): this file runs itself there in
`worker` mode. throughput: alternating rounds VIP / direct (ctl1) of N seconds with C
concurrent clients each, median tokens/s of each, ratio VIP / direct. dead-memcached:
sequential token issues through the VIP while one node's memcached is (a) stopped (connection
refused) and (b) black-holed (packets dropped: a powered-off node), latency per request.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# --- inside the client node ------------------------------------------------------------------


def _token_body(password: str) -> bytes:
    return json.dumps({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}).encode()


def issue(url: str, body: bytes, timeout: float = 30) -> float:
    """One token issue; returns its latency (raises on failure)."""
    request = urllib.request.Request(f"{url}/auth/tokens", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    t0 = time.monotonic()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()
        if response.status != 201:
            raise RuntimeError(f"HTTP {response.status}")
    return time.monotonic() - t0


def worker_throughput(url: str, password: str, seconds: float, concurrency: int) -> dict[str, Any]:
    body = _token_body(password)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop() -> None:
        while time.monotonic() < deadline:
            try:
                latency = issue(url, body)
                with lock:
                    latencies.append(latency)
            except (OSError, urllib.error.URLError, RuntimeError) as exc:
                with lock:
                    errors.append(str(exc)[:80])
    t0 = time.monotonic()
    threads = [threading.Thread(target=loop) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    return {"url": url, "tokens": len(latencies), "errors": len(errors), "seconds": elapsed,
            "rate": len(latencies) / elapsed,
            "p50_ms": 1000 * statistics.median(latencies) if latencies else None}


def worker_series(url: str, password: str, count: int) -> list[dict[str, Any]]:
    body = _token_body(password)
    rows = []
    for _ in range(count):
        t = time.time()
        try:
            rows.append({"t": t, "ms": 1000 * issue(url, body), "error": ""})
        except (OSError, urllib.error.URLError, RuntimeError) as exc:
            rows.append({"t": t, "ms": 1000 * (time.time() - t), "error": str(exc)[:80]})
    return rows


# --- on the host -----------------------------------------------------------------------------


class LabHandle:
    def __init__(self, cloud_file: Path | None):
        from hastack.deploy import lab
        from hastack.deploy.files import read_secrets
        from hastack.deploy.lab.lab import Lab
        from hastack.model import load_cloud
        path = cloud_file or lab.DEFAULT_CLOUD
        self.lab = Lab(load_cloud(path), str(path))
        self.lab.render(write=False)
        self.lab.attach_running()
        if "client" not in self.lab.nodes:
            sys.exit(f"lab {self.lab.cloud.name} is not up: run `hastack up` first")
        self.password = read_secrets(self.lab.state)["keystone_admin"]

    def url(self, node: str | None = None) -> str:
        from hastack.deploy.systems.keystone import url
        return url(self.lab.site(), node=node)

    def in_client(self, *args: str) -> Any:
        argv = self.lab.nodes["client"].argv([sys.executable, __file__, "worker", *args],
                                             network_only=True)
        out = subprocess.run(argv, input=self.password, capture_output=True, text=True,
                             check=True, timeout=600)
        return json.loads(out.stdout.strip().splitlines()[-1])

    def node_exec(self, node: str, argv: list[str], input: str | None = None) -> None:
        self.lab.nodes[node].run(argv, input=input)


def throughput(handle: LabHandle, rounds: int, seconds: float, concurrency: int,
               direct_node: str) -> None:
    vip, direct = handle.url(), handle.url(direct_node)
    handle.in_client("throughput", vip, "3", str(concurrency))   # warm-up: pools, caches
    results: dict[str, list[dict[str, Any]]] = {"vip": [], "direct": []}
    for i in range(rounds):
        order = [("vip", vip), ("direct", direct)] if i % 2 == 0 else \
            [("direct", direct), ("vip", vip)]
        for name, url in order:
            r = handle.in_client("throughput", url, str(seconds), str(concurrency))
            results[name].append(r)
            print(f"round {i + 1} {name:<6} {r['rate']:6.2f} tokens/s  p50 {r['p50_ms']:.0f} ms"
                  f"  errors {r['errors']}", flush=True)
    med = {k: statistics.median(r["rate"] for r in v) for k, v in results.items()}
    print(f"median tokens/s: VIP {med['vip']:.2f}, direct {direct_node} {med['direct']:.2f}; "
          f"ratio VIP/direct {med['vip'] / med['direct']:.3f} (target >= 0.95)")


def dead_memcached(handle: LabHandle, node: str, count: int) -> None:
    vip = handle.url()

    def series(label: str) -> None:
        rows = handle.in_client("series", vip, str(count))
        t0 = rows[0]["t"]
        after = [r["ms"] for r in rows if r["t"] - t0 >= 1.0 and not r["error"]]
        first = [round(r["ms"]) for r in rows if r["t"] - t0 < 1.0]
        errors = sum(1 for r in rows if r["error"])
        print(f"{label:<34} first second {first} ms; after: median "
              f"{statistics.median(after):.0f} ms, max {max(after):.0f} ms, n={len(after)}, "
              f"errors {errors}", flush=True)
        medians[label] = statistics.median(after)

    medians: dict[str, float] = {}
    handle.in_client("series", vip, "5")
    series("baseline (all memcached up)")
    handle.node_exec(node, ["supervisorctl", "stop", "memcached"])
    try:
        series(f"memcached stopped on {node}")
    finally:
        handle.node_exec(node, ["supervisorctl", "start", "memcached"])
    nft = ["nft", "-f", "-"]
    rules = ("table inet hastack_bench {\n chain input {\n"
             "  type filter hook input priority 0;\n  tcp dport 11211 drop\n }\n}\n")
    handle.node_exec(node, nft, input=rules)
    try:
        series(f"memcached black-holed on {node}")
    finally:
        handle.node_exec(node, ["nft", "delete", "table", "inet", "hastack_bench"])
    base = medians["baseline (all memcached up)"]
    for label, value in medians.items():
        print(f"  {label}: +{value - base:.0f} ms per token vs baseline")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        password = sys.stdin.read().strip()
        mode, url = sys.argv[2], sys.argv[3]
        if mode == "throughput":
            print(json.dumps(worker_throughput(url, password, float(sys.argv[4]),
                                               int(sys.argv[5]))))
        else:
            print(json.dumps(worker_series(url, password, int(sys.argv[4]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cloud", type=Path, default=None)
    sub = parser.add_subparsers(dest="mode", required=True)
    tp = sub.add_parser("throughput")
    tp.add_argument("--rounds", type=int, default=5)
    tp.add_argument("--seconds", type=float, default=5.0)
    tp.add_argument("--concurrency", type=int, default=4)
    tp.add_argument("--direct", default="ctl1")
    dm = sub.add_parser("dead-memcached")
    dm.add_argument("--node", default="ctl3")
    dm.add_argument("--count", type=int, default=30)
    args = parser.parse_args()
    handle = LabHandle(args.cloud)
    if args.mode == "throughput":
        throughput(handle, args.rounds, args.seconds, args.concurrency, args.direct)
    else:
        dead_memcached(handle, args.node, args.count)


if __name__ == "__main__":
    main()
