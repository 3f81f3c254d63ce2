"""What the lab is doing now: per node and component, and the anomalies that matter for HA.

Read-only. Sources: supervisord (is the process up), `ip -4 addr` in each node (who holds each
VIP), HAProxy's stats socket `show stat` (back-end states, the Galera writer), Galera's wsrep
status variables, `rabbitmqctl cluster_status --formatter json`, listening sockets, Sentinel.
"""

from __future__ import annotations

import csv
import io
import re
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hastack.deploy.lab import components, openstack
from hastack.deploy.lab.lab import Lab, LabNode, listening_ports
from hastack.deploy.lab.names import CLIENT
from hastack.deploy.lab.nodes import node_path
from hastack.deploy.lab.programs import programs_on, skipped
from hastack.deploy.lab.run import nsenter, run
from hastack.errors import LabError

GALERA_BACKEND = "galera"


def collect(lab: Lab) -> dict[str, Any]:
    missing = lab.attach_running()
    anomalies = [f"node {name} is not running" for name in missing]
    with ThreadPoolExecutor(max_workers=8) as pool:
        nodes_f = pool.submit(_nodes, lab)
        vips_f = pool.submit(components.vip_holders, lab)
        galera_f = pool.submit(_galera, lab)
        rabbit_f = pool.submit(_rabbitmq, lab)
        redis_f = pool.submit(_redis, lab)
        keystone_f = pool.submit(openstack.keystone_health, lab)
        nodes, vip_holders = nodes_f.result(), vips_f.result()
        haproxy = _haproxy(lab, vip_holders)
        galera, rabbit, redis = galera_f.result(), rabbit_f.result(), redis_f.result()
        keystone = keystone_f.result()
    for node, info in nodes.items():
        for program, state in info["programs"].items():
            if state != "RUNNING":
                anomalies.append(f"{node}: {program} is {state}")
    for name, holders in vip_holders.items():
        if len(holders) != 1:
            anomalies.append(f"VIP {name} held by {len(holders)} nodes "
                             f"({', '.join(holders) or 'none'})")
    if galera is not None:
        galera["writer"] = _writer(haproxy)
        expected = len(lab.plan.nodes_running("mariadb-galera"))
        if not galera["primary"]:
            anomalies.append("Galera: no primary component")
        if galera["size"] != expected:
            anomalies.append(f"Galera: cluster size {galera['size']}, {expected} planned")
        for node, member in galera["members"].items():
            if member.get("state") != "Synced":
                anomalies.append(f"Galera: {node} is {member.get('state') or 'down'}")
        if lab.plan.runs("haproxy") and galera["writer"] is None:
            anomalies.append("Galera: HAProxy has no UP server to send writes to")
    if rabbit is not None:
        expected = len(lab.plan.nodes_running("rabbitmq"))
        if len(rabbit["running"]) != expected:
            anomalies.append(f"RabbitMQ: {len(rabbit['running'])} of {expected} members running")
        if rabbit["partitions"]:
            anomalies.append(f"RabbitMQ: partitioned {rabbit['partitions']}")
    if keystone is not None:
        for node, health in keystone["nodes"].items():
            if not health["healthy"]:
                anomalies.append(f"Keystone: {node} does not answer GET /v3 "
                                 f"({health['status'] or health['detail']})")
        vip = keystone["vip"]
        if not vip["healthy"]:
            anomalies.append(f"Keystone: no answer on the VIP ({vip['status'] or vip['detail']})")
    clouds_yaml = openstack.clouds_yaml_path(lab)
    memcached = [f"{lab.nodes[n].address.interface.ip}:11211"
                 for n in lab.plan.nodes_running("memcached")
                 if n in lab.nodes and 11211 in listening_ports(lab.nodes[n].pid)]
    return {
        "cloud": lab.cloud.name,
        "healthy": not anomalies,
        "anomalies": anomalies,
        "vips": {name: str(ip) for name, ip in lab.cloud.vips.items()},
        "vip_holders": vip_holders,
        "galera": galera,
        "rabbitmq": rabbit,
        "memcached": memcached,
        "redis": redis,
        "keystone": keystone,
        "clouds_yaml": str(clouds_yaml) if keystone is not None and clouds_yaml.exists()
        else None,
        "haproxy": haproxy,
        "nodes": nodes,
        "skipped": [{"process": p, "nodes": n, "reason": r} for p, n, r in skipped(lab.plan)],
        "state_dir": str(lab.state),
    }


def _nodes(lab: Lab) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name in lab.node_names():
        node = lab.nodes.get(name)
        if node is None:
            planned = {p.name: "NODE DOWN" for p in programs_on(lab.plan, name)}
            result[name] = {"alive": False, "programs": planned}
            continue
        try:
            programs = node.supervisor.states()
        except LabError:
            programs = {p.name: "UNKNOWN" for p in programs_on(lab.plan, name)}
        result[name] = {"alive": True, "pid": node.pid, "address": str(node.address.interface),
                        "programs": programs}
    return result


def _members(lab: Lab, process: str) -> list[LabNode]:
    return [lab.nodes[n] for n in lab.plan.nodes_running(process) if n in lab.nodes]


def _galera(lab: Lab) -> dict[str, Any] | None:
    planned = lab.plan.nodes_running("mariadb-galera")
    if not planned:
        return None
    members = _members(lab, "mariadb-galera")
    with ThreadPoolExecutor(max_workers=len(members) or 1) as pool:
        statuses = dict(zip([m.name for m in members],
                            pool.map(components.wsrep_status, members), strict=True))
    view: dict[str, dict[str, Any]] = {name: {"state": s.get("wsrep_local_state_comment"),
                   "cluster_status": s.get("wsrep_cluster_status"),
                   "size": int(s.get("wsrep_cluster_size", 0) or 0)}
            for name, s in statuses.items()}
    primaries = [v for v in view.values() if v["cluster_status"] == "Primary"]
    return {"size": max((v["size"] for v in primaries), default=0),
            "primary": bool(primaries), "writer": None, "members": view}


def _rabbitmq(lab: Lab) -> dict[str, Any] | None:
    if not lab.plan.nodes_running("rabbitmq"):
        return None
    members = [m for m in _members(lab, "rabbitmq")
               if m.supervisor.states().get("rabbitmq") == "RUNNING"]
    with ThreadPoolExecutor(max_workers=len(members) or 1) as pool:
        views = list(pool.map(components.rabbit_cluster_status, members))
    running: set[str] = set()
    partitions: dict[str, Any] = {}
    for member, view in zip(members, views, strict=True):
        if not view:
            continue
        running.update(str(n) for n in view.get("running_nodes", []))
        if view.get("partitions"):
            partitions[member.name] = view["partitions"]
    names = {components.rabbit_nodename(lab, n): n for n in lab.plan.nodes_running("rabbitmq")}
    return {"running": sorted(names.get(r, r) for r in running), "partitions": partitions,
            "nodenames": sorted(running)}


def _redis(lab: Lab) -> dict[str, Any] | None:
    sentinels = _members(lab, "redis-sentinel")
    if not lab.plan.runs("redis"):
        return None
    master = None
    conf = lab.rendered(sentinels[0].name, "etc/redis/sentinel.conf") if sentinels else None
    match = re.search(r"^sentinel monitor (\S+)", conf or "", re.M)
    if sentinels and match:
        out = run(nsenter(sentinels[0].pid, ["redis-cli", "-p", "26379", "sentinel",
                                             "get-master-addr-by-name", match.group(1)]),
                  check=False, timeout=5).stdout.split()
        by_ip = {str(n.ip): n.name for n in lab.cloud.nodes}
        master = by_ip.get(out[0]) if out else None
    return {"master": master,
            "sentinels": [s.name for s in sentinels if 26379 in listening_ports(s.pid)]}


def _stats_socket(lab: Lab, node: str) -> str | None:
    cfg = lab.rendered(node, "etc/haproxy/haproxy.cfg") or ""
    match = re.search(r"^\s*stats socket (\S+)", cfg, re.M)
    return match.group(1) if match else None


def _admin(lab: Lab, node: LabNode, command: str) -> str:
    """The answer of `node`'s HAProxy stats socket to `command`; "" when unreachable."""
    path = _stats_socket(lab, node.name)
    if path is None:
        return ""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(3)
            sock.connect(str(node_path(node.pid, path)))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError:
        return ""
    return b"".join(chunks).decode(errors="replace")


def show_stat(lab: Lab, node: LabNode) -> list[dict[str, str]]:
    text = _admin(lab, node, "show stat").lstrip("# ")
    return list(csv.DictReader(io.StringIO(text))) if text else []


def galera_stuck_server(lab: Lab, node: LabNode) -> str | None:
    """The server of the Galera stick table's entry (`show table galera`), if it has one."""
    found = re.search(r"server_key=(\S+)", _admin(lab, node, f"show table {GALERA_BACKEND}"))
    return found.group(1) if found else None


def _haproxy(lab: Lab, vip_holders: dict[str, list[str]]) -> dict[str, Any]:
    """Back-end states as seen by the HAProxy that receives the internal VIP's traffic."""
    holders = vip_holders.get("internal") or []
    candidates = holders + [n for n in lab.plan.nodes_running("haproxy") if n not in holders]
    for name in candidates:
        node = lab.nodes.get(name)
        if node is None:
            continue
        rows = show_stat(lab, node)
        if not rows:
            continue
        backends: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row.get("svname") in ("FRONTEND", "BACKEND"):
                continue
            backends.setdefault(row["pxname"], {})[row["svname"]] = {
                "status": row.get("status"), "backup": row.get("bck") == "1"}
        return {"seen_from": name, "backends": backends,
                "galera_stuck_to": galera_stuck_server(lab, node)}
    return {"seen_from": None, "backends": {}, "galera_stuck_to": None}


def _writer(haproxy: dict[str, Any]) -> str | None:
    """The server HAProxy sends Galera writes to: the stick table's server while it is UP (no
    failback), else the active UP server, else the first UP backup (HAProxy uses only one
    backup unless `option allbackups`)."""
    servers = haproxy.get("backends", {}).get(GALERA_BACKEND, {})
    up = [name for name, s in servers.items() if str(s["status"]).startswith("UP")]
    if haproxy.get("galera_stuck_to") in up:
        return str(haproxy["galera_stuck_to"])
    active = [name for name in up if not servers[name]["backup"]]
    return (active or up or [None])[0]


def node_names_for_exec(lab: Lab) -> list[str]:
    return [*[n.name for n in lab.cloud.nodes], CLIENT]
