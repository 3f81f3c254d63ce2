"""The Redis + Sentinel renderer: replicas of the first node, a majority quorum, tooz's
Sentinel URL, and the rendered configs run by the real redis-server and redis-sentinel inside
throw-away network namespaces."""

from __future__ import annotations

import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from hastack.plan import Plan
from hastack.render import RenderContext, RenderedFile
from hastack.render import redis as rd
from hastack.render.budget import MIN_SENTINEL_DOWN_AFTER_MS, make_budget
from tests.conftest import EXAMPLE_NAMES, example_plan, plan_from_text, require_program
from tests.netns import netns_with, started

PASSWORD = "s3cretPassw0rd"
REDIS_EXAMPLES = [n for n in (*EXAMPLE_NAMES, "broken") if example_plan(n).runs("redis")]


def render_redis(plan: Plan) -> list[RenderedFile]:
    return rd.render(RenderContext(plan, make_budget(plan.cloud), {"redis_password": PASSWORD}))


def directives(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line and not line.startswith("#")]


def file_of(files: list[RenderedFile], node: str, path: str) -> str:
    content = next(f.content for f in files if f.node == node and f.path == path)
    assert isinstance(content, str)
    return content


def test_nothing_without_ceilometer() -> None:
    plan = example_plan("split-roles")
    assert not plan.runs("redis")
    assert render_redis(plan) == [] and rd.secrets_needed(plan) == []


@pytest.mark.parametrize("name", REDIS_EXAMPLES)
def test_replicas_point_at_the_first_node(name: str) -> None:
    plan = example_plan(name)
    first, *others = plan.nodes_running("redis")
    files = render_redis(plan)
    first_conf = directives(file_of(files, first, "etc/redis/redis.conf"))
    assert not [d for d in first_conf if d[0] == "replicaof"]
    for node in others:
        conf = directives(file_of(files, node, "etc/redis/redis.conf"))
        assert ["replicaof", str(plan.cloud.node(first).ip), "6379"] in conf
        assert ["masterauth", PASSWORD] in conf and ["requirepass", PASSWORD] in conf
        assert ["bind", str(plan.cloud.node(node).ip), "127.0.0.1"] in conf
        assert ["daemonize", "no"] in conf and ["appendonly", "yes"] in conf


@pytest.mark.parametrize("name", REDIS_EXAMPLES)
def test_sentinel_quorum_is_a_majority(name: str) -> None:
    plan = example_plan(name)
    sentinels = plan.nodes_running("redis-sentinel")
    first = plan.nodes_running("redis")[0]
    timings = rd.sentinel_timings(make_budget(plan.cloud))
    for node in sentinels:
        conf = directives(file_of(render_redis(plan), node, "etc/redis/sentinel.conf"))
        monitor = next(d for d in conf if d[:2] == ["sentinel", "monitor"])
        quorum = int(monitor[5])
        assert monitor[2:5] == [plan.cloud.name, str(plan.cloud.node(first).ip), "6379"]
        assert quorum > len(sentinels) / 2 and quorum <= len(sentinels)
        assert ["sentinel", "down-after-milliseconds", plan.cloud.name,
                str(timings.down_after_ms)] in conf
        assert ["sentinel", "announce-ip", str(plan.cloud.node(node).ip)] in conf
    assert [rd.sentinel_quorum(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]


def test_down_after_follows_the_budget() -> None:
    fast = rd.sentinel_timings(make_budget(example_plan("demo").cloud))
    slow_plan = plan_from_text(
        "name: slow\nnodes: [{name: a, address: 198.18.9.1, roles: [controller]}]\n"
        "vips: {internal: 198.18.9.100}\nservices: [ceilometer]\n"
        "settings: {failover: {target_seconds: 10}}\n")
    slow = rd.sentinel_timings(make_budget(slow_plan.cloud))
    assert fast.down_after_ms == MIN_SENTINEL_DOWN_AFTER_MS
    assert slow.down_after_ms == 5000 and slow.failover_timeout_ms > slow.down_after_ms


def test_sentinel_url_for_tooz() -> None:
    plan = example_plan("demo")
    ips = [str(plan.cloud.node(n).ip) for n in plan.nodes_running("redis-sentinel")]
    assert rd.sentinel_url(plan, "p@ss") == (
        f"redis://:p%40ss@{ips[0]}:26379?sentinel=demo"
        + "".join(f"&sentinel_fallback={ip}:26379" for ip in ips[1:])
        + f"&membership_timeout={rd.TOOZ_MEMBERSHIP_TIMEOUT_S}")


def test_tooz_reads_the_membership_timeout_and_every_sentinel_from_the_url() -> None:
    coordination = pytest.importorskip("tooz.coordination")
    plan = example_plan("demo")
    coordinator = coordination.get_coordinator(rd.sentinel_url(plan, "p@ss"), b"member")
    assert coordinator.membership_timeout == rd.TOOZ_MEMBERSHIP_TIMEOUT_S
    assert coordinator._options["sentinel"] == "demo"
    assert len(coordinator._options["sentinel_fallback"]) == 2


# --- real daemons -----------------------------------------------------------------------------

def cli(ns: str, host: str, port: int, *command: str, password: str | None = PASSWORD,
        until: str | None = None, deadline_s: float = 8.0) -> str:
    """redis-cli in the namespace, retried until its output contains `until`."""
    argv = ["ip", "netns", "exec", ns, require_program("redis-cli"), "-h", host, "-p", str(port)]
    if password:
        argv += ["-a", password, "--no-auth-warning"]
    end = time.monotonic() + deadline_s
    while True:
        out = subprocess.run([*argv, *command], capture_output=True, text=True,
                             timeout=10).stdout
        if until is None or until in out or time.monotonic() > end:
            return out
        time.sleep(0.1)


def prepare(tmp: Path, node: str, files: list[RenderedFile]) -> tuple[Path, Path, Path]:
    """Writable copies of a node's configs and a data dir (Sentinel rewrites its file)."""
    data = tmp / node
    data.mkdir()
    redis_conf = data / "redis.conf"
    redis_conf.write_text(file_of(files, node, "etc/redis/redis.conf"))
    sentinel_conf = data / "sentinel.conf"
    sentinel_conf.write_text(file_of(files, node, "etc/redis/sentinel.conf"))
    return redis_conf, sentinel_conf, data


@pytest.mark.validator
@pytest.mark.parametrize("name", REDIS_EXAMPLES)
def test_each_node_runs_redis_and_sentinel_with_its_config(name: str, tmp_path: Path) -> None:
    """Every node's rendered files, unchanged but for the data dir, in its own namespace."""
    plan = example_plan(name)
    files = render_redis(plan)
    server, sentinel = require_program("redis-server"), require_program("redis-sentinel")
    for node in plan.nodes_running("redis"):
        address = plan.cloud.node(node).address
        redis_conf, sentinel_conf, data = prepare(tmp_path, node, files)
        with netns_with([address.with_prefixlen], "redis") as ns, \
                started(ns, [server, str(redis_conf), "--dir", str(data)],
                        data / "redis.log") as redis_proc, \
                started(ns, [sentinel, str(sentinel_conf), "--dir", str(data)],
                        data / "sentinel.log") as sentinel_proc:
            ip = str(address.ip)
            assert cli(ns, ip, 6379, "ping", until="PONG").strip() == "PONG", \
                (data / "redis.log").read_text()
            assert cli(ns, "127.0.0.1", 6379, "ping").strip() == "PONG"
            assert "NOAUTH" in cli(ns, ip, 6379, "ping", password=None)
            assert cli(ns, ip, 26379, "ping", password=None, until="PONG").strip() == "PONG", \
                (data / "sentinel.log").read_text()
            masters = cli(ns, ip, 26379, "sentinel", "masters", password=None)
            assert plan.cloud.name in masters
            assert f"process_id:{redis_proc.pid}" in cli(ns, ip, 6379, "info", "server")
            assert redis_proc.poll() is None and sentinel_proc.poll() is None


@pytest.mark.validator
def test_the_demo_cluster_replicates_and_its_sentinels_reach_quorum(tmp_path: Path) -> None:
    """All of demo's Redis and Sentinel nodes in one namespace (each on its own address; the
    loopback bind is dropped since three nodes cannot share 127.0.0.1 here)."""
    plan = example_plan("demo")
    files = render_redis(plan)
    nodes = plan.nodes_running("redis")
    server, sentinel = require_program("redis-server"), require_program("redis-sentinel")
    addresses = [plan.cloud.node(n).address for n in nodes]
    with netns_with([a.with_prefixlen for a in addresses], "redis") as ns, ExitStack() as stack:
        for node, address in zip(nodes, addresses, strict=True):
            redis_conf, sentinel_conf, data = prepare(tmp_path, node, files)
            ip = str(address.ip)
            stack.enter_context(started(
                ns, [server, str(redis_conf), "--dir", str(data), "--bind", ip],
                data / "redis.log"))
            stack.enter_context(started(
                ns, [sentinel, str(sentinel_conf), "--dir", str(data), "--bind", ip],
                data / "sentinel.log"))
        master_ip = str(addresses[0].ip)
        info = cli(ns, master_ip, 6379, "info", "replication",
                   until=f"connected_slaves:{len(nodes) - 1}")
        assert "role:master" in info and f"connected_slaves:{len(nodes) - 1}" in info, info
        for address in addresses[1:]:
            replica = cli(ns, str(address.ip), 6379, "info", "replication",
                          until="master_link_status:up")
            assert "master_link_status:up" in replica, replica
        # Writes reach the replicas (min-replicas-to-write is satisfied). A replica counts as
        # good from its first REPLCONF ACK (sent each second) after the link is up, so the
        # master may answer NOREPLICAS for up to a second: retried, as a client would.
        assert cli(ns, master_ip, 6379, "set", "hastack", "ok", until="OK").strip() == "OK"
        ckquorum = cli(ns, master_ip, 26379, "sentinel", "ckquorum", plan.cloud.name,
                       password=None, until=f"{len(nodes)} usable Sentinels")
        assert "OK" in ckquorum and f"{len(nodes)} usable Sentinels" in ckquorum, ckquorum
