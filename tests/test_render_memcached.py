"""The memcached renderer: the Debian-format config per node, the client-side server list, and
each rendered config run by the real memcached in a throw-away network namespace."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from hastack.plan import Plan
from hastack.render import RenderContext, RenderedFile
from hastack.render import memcached as mc
from hastack.render.budget import make_budget
from tests.conftest import EXAMPLE_NAMES, example_plan, require_program
from tests.netns import netns_with, started

MEMCACHED_EXAMPLES = [n for n in EXAMPLE_NAMES if example_plan(n).runs("memcached")]


def render_memcached(plan: Plan) -> list[RenderedFile]:
    return mc.render(RenderContext(plan, make_budget(plan.cloud), {}))


@pytest.mark.parametrize("name", MEMCACHED_EXAMPLES)
def test_one_config_per_instance_listening_on_its_node(name: str) -> None:
    plan = example_plan(name)
    files = render_memcached(plan)
    assert [f.node for f in files] == list(plan.nodes_running("memcached"))
    for f in files:
        assert f.path == "etc/memcached.conf"
        args = mc.command_line(f.content)  # type: ignore[arg-type]
        options = dict(zip(args[::2], args[1::2], strict=True))
        assert options["-l"] == str(plan.cloud.node(f.node).ip)
        assert options["-p"] == "11211"
        assert options["-U"] == "0"
        assert options["-u"] == "memcache"
        assert "-d" not in args


@pytest.mark.parametrize("name", MEMCACHED_EXAMPLES)
def test_memcached_servers_lists_every_instance(name: str) -> None:
    plan = example_plan(name)
    assert mc.memcached_servers(plan) == [
        f"{plan.cloud.node(n).ip}:11211" for n in plan.nodes_running("memcached")]
    assert len(mc.memcached_servers(plan)) == len(plan.nodes_running("memcached"))


PROBE = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2) as s:
    s.sendall(sys.argv[3].encode() + b"\\r\\n")
    data = b""
    while not data.endswith(b"\\r\\n"):
        data += s.recv(4096)
    sys.stdout.write(data.decode())
"""


def ask(ns: str, host: str, port: int, command: str, deadline_s: float = 5.0) -> str:
    """One text-protocol command to memcached, retried until it has started."""
    end = time.monotonic() + deadline_s
    while True:
        result = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", PROBE, host, str(port), command],
            capture_output=True, text=True, timeout=10)
        if result.returncode == 0 or time.monotonic() > end:
            return result.stdout
        time.sleep(0.1)


@pytest.mark.validator
@pytest.mark.parametrize("name", MEMCACHED_EXAMPLES)
def test_memcached_runs_with_each_rendered_config(name: str, tmp_path: Path) -> None:
    plan = example_plan(name)
    memcached = require_program("memcached")
    for f in render_memcached(plan):
        node = plan.cloud.node(f.node)
        with netns_with([node.address.with_prefixlen], "mc") as ns, \
                started(ns, [memcached, *mc.command_line(f.content)],  # type: ignore[arg-type]
                        tmp_path / f"{f.node}.log") as proc:
            version = ask(ns, str(node.ip), 11211, "version")
            assert version.startswith("VERSION 1."), (tmp_path / f"{f.node}.log").read_text()
            stats = ask(ns, str(node.ip), 11211, "stats")
            assert f"STAT pid {proc.pid}" in stats
            # Bound to the node's address only.
            assert ask(ns, "127.0.0.1", 11211, "version", deadline_s=0) == ""
            assert proc.poll() is None
