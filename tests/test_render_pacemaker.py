"""The Corosync/Pacemaker renderer: behaviour of the rendered cluster, and the real validators
(`crm_verify`, `crm_simulate`, `corosync -t` inside a network namespace holding the node's
address) on every example that plans a Pacemaker cluster."""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hastack.plan import Plan
from hastack.render import RenderContext, RenderedFile
from hastack.render import pacemaker as pm
from hastack.render.budget import MIN_COROSYNC_TOKEN_MS, make_budget
from hastack.render.secrets import complete
from tests.conftest import EXAMPLE_NAMES, example_plan, plan_from_text, require_program
from tests.netns import netns_with

PACEMAKER_EXAMPLES = [n for n in (*EXAMPLE_NAMES, "broken") if example_plan(n).pacemaker_cluster]

THREE_NODES_KEEPALIVED = """
name: lvm
architecture: keepalived
nodes:
  - {name: ctl1, address: 198.18.5.11, roles: [controller]}
  - {name: ctl2, address: 198.18.5.12, roles: [controller]}
  - {name: ctl3, address: 198.18.5.13, roles: [controller]}
vips: {internal: 198.18.5.100}
services: [keystone, cinder, neutron]
settings:
  cinder: {backend: lvm}
  neutron: {lbaas: true}
  pacemaker: {fencing: ipmi}
"""


def render_pacemaker(plan: Plan) -> list[RenderedFile]:
    ctx = RenderContext(plan, make_budget(plan.cloud), complete({}, pm.secrets_needed(plan)))
    return pm.render(ctx)


def file_of(files: list[RenderedFile], node: str, path: str) -> RenderedFile:
    return next(f for f in files if f.node == node and f.path == path)


def cib_of(plan: Plan) -> ET.Element:
    cluster = plan.cluster("corosync")
    assert cluster is not None
    content = file_of(render_pacemaker(plan), cluster.members[0], "etc/pacemaker/cib.xml").content
    assert isinstance(content, str)
    return ET.fromstring(content)


def locations(cib: ET.Element) -> list[tuple[str, str, str]]:
    return [(loc.get("rsc", ""), loc.get("node", ""), loc.get("score", ""))
            for loc in cib.iter("rsc_location")]


def property_value(cib: ET.Element, name: str) -> str | None:
    for nvpair in cib.iterfind("configuration/crm_config/cluster_property_set/nvpair"):
        if nvpair.get("name") == name:
            return nvpair.get("value")
    return None


# --- behaviour --------------------------------------------------------------------------------


def test_nothing_rendered_without_a_pacemaker_cluster() -> None:
    plan = example_plan("demo")
    assert not plan.pacemaker_cluster
    assert render_pacemaker(plan) == []
    assert pm.secrets_needed(plan) == []


@pytest.mark.parametrize("name", PACEMAKER_EXAMPLES)
def test_every_member_gets_the_same_three_files(name: str) -> None:
    plan = example_plan(name)
    cluster = plan.cluster("corosync")
    assert cluster is not None
    files = render_pacemaker(plan)
    assert {(f.node, f.path) for f in files} == {
        (node, path) for node in cluster.members
        for path in ("etc/corosync/corosync.conf", "etc/corosync/authkey",
                     "etc/pacemaker/cib.xml")
    }
    for path in ("etc/corosync/corosync.conf", "etc/corosync/authkey", "etc/pacemaker/cib.xml"):
        assert len({file_of(files, n, path).content for n in cluster.members}) == 1
    key = file_of(files, cluster.members[0], "etc/corosync/authkey")
    assert isinstance(key.content, bytes) and len(key.content) >= 128
    assert key.mode == 0o400


@pytest.mark.parametrize("name", PACEMAKER_EXAMPLES)
def test_nodelist_has_every_member_and_two_node_only_with_two(name: str) -> None:
    plan = example_plan(name)
    cluster = plan.cluster("corosync")
    assert cluster is not None
    conf = file_of(render_pacemaker(plan), cluster.members[0], "etc/corosync/corosync.conf")
    assert isinstance(conf.content, str)
    nodes = re.findall(r"ring0_addr: (\S+)\s+name: (\S+)\s+nodeid: (\d+)", conf.content)
    assert [(name_, addr) for addr, name_, _ in nodes] == [
        (m, str(plan.cloud.node(m).ip)) for m in cluster.members]
    assert len({nodeid for *_, nodeid in nodes}) == len(nodes)
    assert ("two_node: 1" in conf.content) == (len(cluster.members) == 2)
    assert "transport: knet" in conf.content
    assert "provider: corosync_votequorum" in conf.content


def test_token_follows_the_budget() -> None:
    plan = example_plan("pacemaker")
    slow = plan_from_text(THREE_NODES_KEEPALIVED + "  failover: {target_seconds: 20}\n")
    fast_timings = pm.cluster_timings(make_budget(plan.cloud))
    slow_timings = pm.cluster_timings(make_budget(slow.cloud))
    assert fast_timings.token_ms == MIN_COROSYNC_TOKEN_MS
    assert slow_timings.token_ms > fast_timings.token_ms
    # Membership reforms within the target (above the floor).
    assert slow_timings.membership_loss_s <= 20


@pytest.mark.parametrize("fencing", ["lab", "ipmi"])
def test_stonith_enabled_and_each_fence_device_banned_from_its_own_node(fencing: str) -> None:
    plan = plan_from_text(THREE_NODES_KEEPALIVED.replace("fencing: ipmi", f"fencing: {fencing}"))
    cib = cib_of(plan)
    assert property_value(cib, "stonith-enabled") == "true"
    assert property_value(cib, "no-quorum-policy") == "stop"
    assert property_value(cib, "cluster-recheck-interval")
    devices = [p for p in cib.iter("primitive") if p.get("class") == "stonith"]
    members = plan.cluster("corosync").members  # type: ignore[union-attr]
    assert len(devices) == len(members)
    agent = {"lab": "fence_hastack", "ipmi": "fence_ipmilan"}[fencing]
    for node, device in zip(members, devices, strict=True):
        assert device.get("type") == agent
        params = {nv.get("name"): nv.get("value") for nv in device.iter("nvpair")}
        assert params["pcmk_host_list"] == node
        assert (device.get("id"), node, "-INFINITY") in locations(cib)
        if fencing == "ipmi":
            assert params["password"]
            assert params["ip"] == f"{node}-bmc"


def test_ipmi_fencing_declares_a_password_per_node() -> None:
    plan = plan_from_text(THREE_NODES_KEEPALIVED)
    names = {s.name for s in pm.secrets_needed(plan)}
    assert names == {"corosync_authkey", *(f"fence_ipmi_password_ctl{i}" for i in (1, 2, 3))}


def test_stonith_disabled_only_without_fencing() -> None:
    plan = plan_from_text(THREE_NODES_KEEPALIVED.replace("fencing: ipmi", "fencing: none"))
    cib = cib_of(plan)
    assert property_value(cib, "stonith-enabled") == "false"
    assert not [p for p in cib.iter("primitive") if p.get("class") == "stonith"]


@pytest.mark.parametrize("name", [*PACEMAKER_EXAMPLES, "three-keepalived"])
def test_each_active_passive_process_is_one_primitive_preferring_its_active_node(
        name: str) -> None:
    plan = plan_from_text(THREE_NODES_KEEPALIVED) if name == "three-keepalived" \
        else example_plan(name)
    assert plan.active_passive
    cib = cib_of(plan)
    for process in plan.active_passive:
        primitives = [p for p in cib.iter("primitive") if p.get("id") == process.process]
        assert len(primitives) == 1, process.process
        ops = {op.get("name") for op in primitives[0].iter("op")}
        assert "monitor" in ops
        preferences = [(r, n) for r, n, s in locations(cib)
                       if r == process.process and s not in ("-INFINITY",)]
        assert preferences == [(process.process, process.active_node)]


def test_keepalived_cloud_leaves_vips_and_haproxy_to_keepalived() -> None:
    cib = cib_of(plan_from_text(THREE_NODES_KEEPALIVED))
    types = {p.get("type") for p in cib.iter("primitive")}
    assert "IPaddr2" not in types and "haproxy" not in types
    assert not list(cib.iter("clone"))


def test_pacemaker_architecture_colocates_each_vip_with_haproxy() -> None:
    plan = example_plan("pacemaker")
    cib = cib_of(plan)
    clone = cib.find("configuration/resources/clone")
    assert clone is not None and clone.get("id") == "haproxy-clone"
    vips = {p.get("id"): p for p in cib.iter("primitive") if p.get("type") == "IPaddr2"}
    assert set(vips) == {f"vip-{v.name}" for v in plan.vips}
    colocated = {(c.get("rsc"), c.get("with-rsc"), c.get("score"))
                 for c in cib.iter("rsc_colocation")}
    ordered = {(o.get("first"), o.get("then")) for o in cib.iter("rsc_order")}
    for vip in plan.vips:
        rsc = f"vip-{vip.name}"
        assert (rsc, "haproxy-clone", "INFINITY") in colocated
        assert ("haproxy-clone", rsc) in ordered
        params = {nv.get("name"): nv.get("value") for nv in vips[rsc].iter("nvpair")}
        assert params["ip"] == str(vip.address)


def test_rendering_is_deterministic() -> None:
    plan = example_plan("pacemaker")
    secrets = complete({}, pm.secrets_needed(plan))
    ctx = RenderContext(plan, make_budget(plan.cloud), secrets)
    assert pm.render(ctx) == pm.render(ctx)


# --- real validators --------------------------------------------------------------------------


def healthy_status(cib_text: str) -> str:
    """The CIB as a running, quorate cluster with every member online would hold it: crm_verify
    and crm_simulate judge an offline file's nodes unclean otherwise."""
    root = ET.fromstring(cib_text)
    root.set("have-quorum", "1")
    root.set("dc-uuid", "1")
    status = root.find("status")
    assert status is not None
    for node in root.iterfind("configuration/nodes/node"):
        ET.SubElement(status, "node_state", id=node.get("id", ""), uname=node.get("uname", ""),
                      in_ccm="true", crmd="online", join="member", expected="member")
    return ET.tostring(root, encoding="unicode")


def crm_verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_program("crm_verify"), "--xml-file", str(path), "-V"],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.validator
@pytest.mark.parametrize("name", PACEMAKER_EXAMPLES)
def test_crm_verify_accepts_the_cib(name: str, tmp_path: Path) -> None:
    plan = example_plan(name)
    cib = file_of(render_pacemaker(plan), plan.cluster("corosync").members[0],  # type: ignore
                  "etc/pacemaker/cib.xml").content
    assert isinstance(cib, str)
    raw = tmp_path / "cib.xml"
    raw.write_text(cib)
    result = crm_verify(raw)
    # The bare file has no status section: only the "nodes unclean/no quorum" warnings of an
    # offline file are allowed, never an error.
    assert "error" not in result.stderr.lower(), result.stderr
    running = tmp_path / "cib-running.xml"
    running.write_text(healthy_status(cib))
    result = crm_verify(running)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@pytest.mark.validator
def test_crm_verify_rejects_a_broken_cib(tmp_path: Path) -> None:
    cib = healthy_status(file_of(render_pacemaker(example_plan("pacemaker")), "ctl1",
                                 "etc/pacemaker/cib.xml").content)  # type: ignore[arg-type]
    broken = tmp_path / "broken.xml"
    broken.write_text(cib.replace('with-rsc="haproxy-clone"', 'with-rsc="no-such-resource"', 1)
                      .replace('name="monitor"', 'name="monitor" interval="often"', 1))
    result = crm_verify(broken)
    assert result.returncode != 0
    assert "error" in result.stderr.lower()


@pytest.mark.validator
@pytest.mark.parametrize("name", [*PACEMAKER_EXAMPLES, "three-keepalived"])
def test_crm_simulate_places_resources_as_planned(name: str, tmp_path: Path) -> None:
    plan = plan_from_text(THREE_NODES_KEEPALIVED) if name == "three-keepalived" \
        else example_plan(name)
    members = plan.cluster("corosync").members  # type: ignore[union-attr]
    cib = file_of(render_pacemaker(plan), members[0], "etc/pacemaker/cib.xml").content
    path = tmp_path / "cib.xml"
    path.write_text(healthy_status(cib))  # type: ignore[arg-type]
    result = subprocess.run([require_program("crm_simulate"), "--xml-file", str(path), "-s"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    starts = re.findall(r"^\s*\*?\s*Start\s+(\S+)\s+\(\s*(\S+)\s*\)", result.stdout, re.M)
    placed = dict(starts)
    for process in plan.active_passive:
        assert placed[process.process] == process.active_node
    for node in members:
        if f"fence-{node}" in placed:
            assert placed[f"fence-{node}"] != node
    haproxy_nodes = {n for rsc, n in starts if rsc.startswith("haproxy:")}
    for vip in plan.vips:
        if vip.mechanism == "pacemaker":
            assert placed[f"vip-{vip.name}"] in haproxy_nodes


@pytest.mark.validator
@pytest.mark.parametrize("name", PACEMAKER_EXAMPLES)
def test_corosync_accepts_the_config_on_every_member(name: str, tmp_path: Path) -> None:
    """`corosync -t` parses the config, loads the authkey and finds the local node by its
    address, so it runs inside a namespace that holds the member's address."""
    plan = example_plan(name)
    files = render_pacemaker(plan)
    corosync = require_program("corosync")
    for node in plan.cluster("corosync").members:  # type: ignore[union-attr]
        key = tmp_path / f"{node}.authkey"
        key.write_bytes(file_of(files, node, "etc/corosync/authkey").content)  # type: ignore
        key.chmod(0o400)
        conf = file_of(files, node, "etc/corosync/corosync.conf").content
        assert isinstance(conf, str) and f"keyfile: {pm.AUTHKEY_PATH}" in conf
        path = tmp_path / f"{node}.conf"
        path.write_text(conf.replace(pm.AUTHKEY_PATH, str(key)))
        address = plan.cloud.node(node).address.with_prefixlen
        with netns_with([address], "pcmk") as ns:
            result = subprocess.run(["ip", "netns", "exec", ns, corosync, "-t", "-c", str(path)],
                                    capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        # Without the member's address the same config is refused: the check is real.
        with netns_with(["198.18.251.1/24"], "pcmk") as ns:
            result = subprocess.run(["ip", "netns", "exec", ns, corosync, "-t", "-c", str(path)],
                                    capture_output=True, text=True, timeout=30)
        assert result.returncode != 0
