"""Generate a large cloud file for benchmarks: N nodes, every service, split host groups; with
`regions` and `cells`, a cloud of several regions (each its own control plane, the others
sharing the first's Keystone and Glance) whose compute nodes are split into Nova cells, every
node in a rack and every rack in one of three availability zones per region.

    python bench/generate.py 1000 > /tmp/big.yaml
    python bench/generate.py 10000 3 20 > /tmp/big.yaml
"""

from __future__ import annotations

import ipaddress
import sys

SERVICES = ["keystone", "glance", "nova", "neutron", "cinder", "horizon", "heat",
            "ceilometer", "swift", "sahara", "trove"]
# (role, share of the nodes); the rest are compute nodes.
GROUPS = [("loadbalancer", 3), ("controller", 5), ("database", 3), ("messaging", 3),
          ("network", 20), ("storage", 30)]
REGION_NAMES = ["phx", "rdu", "ams", "sin", "syd"]
RACK_SIZE = 40
ZONES_PER_REGION = 3
CELL_CONDUCTORS = 3   # controllers of a cell: its conductors, database and message bus


def cloud_yaml(node_count: int, regions: int = 1, cells: int = 0) -> str:
    if regions == 1 and cells == 0:
        return _single_region(node_count)
    return _multi_region(node_count, regions, cells)


def _single_region(node_count: int) -> str:
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


def _multi_region(node_count: int, region_count: int, cell_count: int) -> str:
    names = REGION_NAMES[:region_count]
    control = sum(count for _, count in GROUPS)
    cell_region = [names[i % region_count] for i in range(cell_count)]
    computes = node_count - control * region_count - CELL_CONDUCTORS * cell_count
    node_lines: list[str] = []
    racks: dict[str, str] = {}     # rack -> zone
    vips: dict[str, tuple[str, str]] = {}
    region_hosts = {}
    for r, region in enumerate(names):
        hosts = ipaddress.IPv4Network(f"10.{r}.0.0/16").hosts()
        vips[region] = (str(next(hosts)), str(next(hosts)))
        region_hosts[region] = hosts
    placed = {region: 0 for region in names}

    def node(region: str, name: str, roles: str, cell: str | None = None,
             compute: bool = False) -> None:
        index = placed[region]
        placed[region] += 1
        # Control planes (a region's, a cell's) put one node per rack, one rack per zone;
        # compute nodes fill racks of RACK_SIZE in turn.
        if compute:
            rack = f"{region}-cmp-r{index // RACK_SIZE}"
        else:
            rack = f"{region}-r{index % ZONES_PER_REGION}"
        racks.setdefault(rack, f"{region}-az{len(racks) % ZONES_PER_REGION}")
        where = "" if region == names[0] else f", region: {region}"
        in_cell = f", cell: {cell}" if cell else ""
        node_lines.append(f"  - {{name: {name}, address: {next(region_hosts[region])}/16, "
                          f"roles: [{roles}]{where}{in_cell}, rack: {rack}}}")

    for region in names:
        for role, count in GROUPS:
            for i in range(count):
                node(region, f"{region}-{role[:3]}{i}", role)
    for c, region in enumerate(cell_region):
        for i in range(CELL_CONDUCTORS):
            node(region, f"{region}-c{c}-ctl{i}", "controller", f"cell{c + 1}")
    for i in range(computes):
        c = i % max(1, cell_count)
        region = cell_region[c] if cell_count else names[i % region_count]
        node(region, f"cmp{i}", "compute", f"cell{c + 1}" if cell_count else None, True)

    lines = ["name: big", f"region: {names[0]}", "architecture: keepalived", "nodes:",
             *node_lines,
             "vips:", f"  internal: {vips[names[0]][0]}", f"  public: {vips[names[0]][1]}",
             f"services: [{', '.join(SERVICES)}]",
             "settings:", "  monitoring: {enabled: true}",
             # Fewer API workers than the default assumption: 5 controllers' database pools
             # then fit the frontend's maxconn.
             "capacity: {workers_per_process: 2}",
             "regions:"]
    for region in names[1:]:
        lines += [f"  - name: {region}",
                  f"    vips: {{internal: {vips[region][0]}, public: {vips[region][1]}}}",
                  "    shares: [keystone, glance]",
                  "    keystone_federation: true"]
    lines.append("cells:")
    lines += [f"  - {{name: cell{c + 1}, region: {region}}}"
              for c, region in enumerate(cell_region)]
    lines.append("racks:")
    lines += [f"  - {{name: {rack}, pdu: {rack}-pdu, zone: {zone}}}"
              for rack, zone in racks.items()]
    lines.append("zones:")
    lines += [f"  - {{name: {zone}}}" for zone in dict.fromkeys(racks.values())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:4]]
    sys.stdout.write(cloud_yaml(*(args or [1000])))
