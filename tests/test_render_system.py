"""The system renderer: name resolution, hostname and HA sysctls on every node; the sysctl file
is applied for real inside a throw-away network namespace (net.* sysctls are per namespace)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hastack.plan import Plan
from hastack.render import RenderContext, RenderedFile, system
from hastack.render.budget import make_budget
from hastack.render.secrets import complete
from tests.conftest import example_plan, require_program


def render_system(plan: Plan) -> list[RenderedFile]:
    secrets = complete({}, system.secrets_needed(plan))
    return system.render(RenderContext(plan, make_budget(plan.cloud), secrets))


def files_of(files: list[RenderedFile], path: str) -> dict[str, str]:
    return {f.node: str(f.content) for f in files if f.path == path}


def sysctl_values(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines()
             if line.strip() and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def test_every_node_gets_hosts_hostname_and_sysctls(example_name):
    plan = example_plan(example_name)
    files = render_system(plan)
    names = {n.name for n in plan.cloud.nodes}
    for path in ("etc/hosts", "etc/hostname", system.SYSCTL_PATH):
        assert set(files_of(files, path)) == names


def test_hosts_resolves_every_node_to_its_address(example_name):
    plan = example_plan(example_name)
    for node, text in files_of(render_system(plan), "etc/hosts").items():
        entries = [line.split() for line in text.splitlines()
                   if line.strip() and not line.startswith("#")]
        assert ["127.0.0.1", "localhost"] in entries
        by_name = {e[1]: e[0] for e in entries if e[0] not in ("127.0.0.1", "::1")}
        assert by_name == {n.name: str(n.ip) for n in plan.cloud.nodes}
        # never the loopback for the node's own name (Erlang/Galera would advertise it)
        assert not any(e[0] == "127.0.1.1" for e in entries), node


def test_hostname_is_the_node_name(example_name):
    plan = example_plan(example_name)
    assert files_of(render_system(plan), "etc/hostname") == {
        n.name: f"{n.name}\n" for n in plan.cloud.nodes}


def test_nonlocal_bind_only_on_vip_candidates_and_tcp_retries_everywhere(example_name):
    plan = example_plan(example_name)
    budget = make_budget(plan.cloud)
    candidates = {n for vip in plan.vips for n in vip.candidates}
    assert candidates
    for node, text in files_of(render_system(plan), system.SYSCTL_PATH).items():
        values = sysctl_values(text)
        assert (values.get("net.ipv4.ip_nonlocal_bind") == "1") == (node in candidates), node
        assert values["net.ipv4.tcp_retries2"] == str(budget.tcp_retries2)


def test_rerender_is_byte_identical(example_name):
    plan = example_plan(example_name)
    assert render_system(plan) == render_system(plan)


@pytest.mark.validator
def test_sysctl_file_applies_in_a_network_namespace(example_name, tmp_path: Path):
    ip = require_program("ip")
    sysctl = require_program("sysctl")
    if os.geteuid() != 0:
        pytest.skip("needs root to create a network namespace")
    plan = example_plan(example_name)
    namespace = f"hs-test-sysctl-{os.getpid()}"
    subprocess.run([ip, "netns", "add", namespace], check=True, capture_output=True)
    try:
        for node, text in files_of(render_system(plan), system.SYSCTL_PATH).items():
            conf = tmp_path / f"{node}.conf"
            conf.write_text(text)
            applied = subprocess.run([ip, "netns", "exec", namespace, sysctl, "-p", str(conf)],
                                     capture_output=True, text=True)
            assert applied.returncode == 0, f"{node}: {applied.stderr}"
            for key, value in sysctl_values(text).items():
                read = subprocess.run([ip, "netns", "exec", namespace, sysctl, "-n", key],
                                      capture_output=True, text=True, check=True)
                assert read.stdout.strip() == value, (node, key)
    finally:
        subprocess.run([ip, "netns", "delete", namespace], check=False, capture_output=True)
