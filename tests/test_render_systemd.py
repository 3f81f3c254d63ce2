"""The systemd units of real hosts: which units each node gets, and `systemd-analyze verify`
on every rendered unit (a unit it warns about fails the test, like a config haproxy -c refuses).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hastack.catalog.hosts import load_host_catalog
from hastack.render import RenderedFile
from hastack.render.systemd import SYSTEM, units_on
from tests.conftest import example_plan, render_example, require_program

# Where hastack's venv is on a host, and where it is on this machine (it holds the same
# programs: gunicorn, PyMySQL), so that verify can check the agents' ExecStart= too.
HOST_VENV = load_host_catalog().venv
HERE_VENV = str(Path(sys.executable).parent.parent)


def _units(files: list[RenderedFile], node: str) -> dict[str, str]:
    return {Path(f.path).name: str(f.content) for f in files
            if f.node == node and f.system == SYSTEM}


def _verify(units: dict[str, str], directory: Path) -> subprocess.CompletedProcess[str]:
    directory.mkdir(parents=True, exist_ok=True)
    # This checkout may sit in a path with a space, which an unquoted ExecStart= would split;
    # the host's venv path has none, so verify sees this venv through a link without one.
    venv = directory / "venv"
    if not venv.exists():
        venv.symlink_to(HERE_VENV)
    for name, text in units.items():
        (directory / name).write_text(text.replace(HOST_VENV, str(venv)))
    return subprocess.run(
        [require_program("systemd-analyze"), "verify", "--man=no",
         *sorted(str(directory / name) for name in units)],
        capture_output=True, text=True, timeout=60, check=False)


def _complaints(result: subprocess.CompletedProcess[str], directory: Path) -> list[str]:
    """verify's lines about our units (it also comments on Debian's, which are not ours)."""
    names = [p.name for p in directory.iterdir()]
    return [line for line in result.stderr.splitlines()
            if str(directory) in line or any(line.startswith(f"{n}:") for n in names)]


def test_demo_controller_runs_the_units_of_its_processes_in_protocol_order() -> None:
    assert units_on(example_plan("demo"), "ctl1") == (
        "mariadb", "galera-health", "rabbitmq-server", "memcached", "redis-server",
        "redis-sentinel", "keystone", "haproxy", "keepalived", "placement-api", "glance-api",
        "neutron-api", "neutron-rpc-server", "nova-api", "nova-metadata-api", "nova-conductor",
        "nova-scheduler", "heat-api", "heat-api-cfn", "heat-engine",
        "ceilometer-agent-notification", "ceilometer-agent-central")


def test_compute_node_of_the_pacemaker_cloud_runs_nova_compute_only() -> None:
    plan = example_plan("pacemaker")
    assert units_on(plan, "cmp1") == ("nova-compute",)
    assert {"corosync", "pacemaker"} <= set(units_on(plan, "ctl1"))


def test_units_run_the_daemons_on_the_rendered_files_in_the_foreground() -> None:
    units = _units(render_example("demo"), "ctl1")
    assert "ExecStart=/usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg\n" in units[
        "haproxy.service"]
    mariadb = units["mariadb.service"]
    assert "--defaults-file=/etc/mysql/my.cnf $_WSREP_NEW_CLUSTER" in mariadb
    assert "Restart=no" in mariadb        # a Galera member is never restarted blindly
    assert f"Environment=PYTHONPATH={load_host_catalog().agents}" in units[
        "galera-health.service"]


@pytest.mark.validator
def test_every_rendered_unit_passes_systemd_analyze_verify(example_name: str,
                                                           tmp_path: Path) -> None:
    files = render_example(example_name)
    nodes = sorted({f.node for f in files if f.system == SYSTEM})
    assert nodes
    # One node per distinct set of units: the others differ only by the node's name.
    seen: set[frozenset[str]] = set()
    for node in nodes:
        units = _units(files, node)
        if frozenset(units) in seen:
            continue
        seen.add(frozenset(units))
        directory = tmp_path / node
        result = _verify(units, directory)
        assert result.returncode == 0, result.stderr
        assert _complaints(result, directory) == []


@pytest.mark.validator
def test_systemd_analyze_verify_refuses_a_broken_unit(tmp_path: Path) -> None:
    units = _units(render_example("demo"), "ctl1")
    broken = {"haproxy.service": units["haproxy.service"].replace(
        "ExecStart=/usr/sbin/haproxy ", "ExecStart=/usr/sbin/haproxyy ").replace(
        "Type=notify", "Type=notifyy")}
    result = _verify(broken, tmp_path)
    assert result.returncode != 0
    complaints = "\n".join(_complaints(result, tmp_path))
    assert "Failed to parse service type" in complaints
    assert "/usr/sbin/haproxyy is not executable" in complaints
