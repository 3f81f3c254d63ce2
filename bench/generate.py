"""Generate a large cloud file for benchmarks: N nodes, every service, split host groups.

    python bench/generate.py 1000 > /tmp/big.yaml
"""

from __future__ import annotations

import ipaddress
import sys

SERVICES = ["keystone", "glance", "nova", "neutron", "cinder", "horizon", "heat",
            "ceilometer", "swift", "sahara", "trove"]
# (role, share of the nodes); the rest are compute nodes.
GROUPS = [("loadbalancer", 3), ("controller", 5), ("database", 3), ("messaging", 3),
          ("network", 20), ("storage", 30)]


def cloud_yaml(node_count: int) -> str:
    network = ipaddress.IPv4Network("198.18.0.0/16")
    hosts = network.hosts()
    vip_internal, vip_public = next(hosts), next(hosts)
    lines = [
        "name: big",
        "architecture: keepalived",
        "nodes:",
    ]
    counter = 0
    for role, count in GROUPS:
        for i in range(count):
            counter += 1
            lines.append(f"  - {{name: {role[:3]}{i}, address: {next(hosts)}/16, "
                         f"roles: [{role}]}}")
    for i in range(node_count - counter):
        lines.append(f"  - {{name: cmp{i}, address: {next(hosts)}/16, roles: [compute]}}")
    lines += [
        "vips:",
        f"  internal: {vip_internal}",
        f"  public: {vip_public}",
        f"services: [{', '.join(SERVICES)}]",
        "settings:",
        "  monitoring: {enabled: true}",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(cloud_yaml(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
