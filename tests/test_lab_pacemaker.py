"""The Pacemaker lab's pieces that need no lab: the CIB the lab loads (systemd resources driven
through the node's supervisor), the power controller's protocol, and the real fence agent
(`fence_hastack`, run by Debian's python3 with fence-agents' library) against a power
controller on a unix socket."""

from __future__ import annotations

import json
import subprocess
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hastack.deploy.lab import powerd
from hastack.deploy.lab.cib import lab_cib
from hastack.deploy.systems.pacemaker import parse_crm_mon
from hastack.render import RenderContext
from hastack.render import pacemaker as pm
from hastack.render.budget import make_budget
from hastack.render.secrets import complete
from tests.conftest import example_plan
from tests.test_render_pacemaker import crm_verify, healthy_status

AGENTS = Path(__file__).parent.parent / "hastack/deploy/lab/cluster_agents"
AGENT = AGENTS / "sbin/fence_hastack"
OCF_AGENT = AGENTS / "ocf/hastack/supervised"


def rendered_cib() -> str:
    plan = example_plan("pacemaker")
    ctx = RenderContext(plan, make_budget(plan.cloud), complete({}, pm.secrets_needed(plan)))
    content = next(f.content for f in pm.render(ctx) if f.path == "etc/pacemaker/cib.xml")
    assert isinstance(content, str)
    return content


# --- the lab's CIB -------------------------------------------------------------------------


def test_the_lab_drives_systemd_resources_through_its_supervisor() -> None:
    result = lab_cib(rendered_cib(), programs={"haproxy", "mariadb"})
    root = ET.fromstring(result.xml)
    haproxy = root.find(".//clone[@id='haproxy-clone']/primitive[@id='haproxy']")
    assert haproxy is not None
    assert (haproxy.get("class"), haproxy.get("provider"), haproxy.get("type")) == \
        ("ocf", "hastack", "supervised")
    program = haproxy.find("./instance_attributes/nvpair[@name='program']")
    assert program is not None and program.get("value") == "haproxy"
    # Same operations as the rendered resource.
    assert [op.get("name") for op in haproxy.iter("op")] == ["start", "stop", "monitor"]
    assert not [p for p in root.iter("primitive") if p.get("class") == "systemd"]


def test_a_resource_the_lab_does_not_run_is_left_out_with_its_constraints() -> None:
    result = lab_cib(rendered_cib(), programs={"haproxy"})
    assert result.left_out == ("neutron-metadata-agent",)
    assert "neutron-metadata-agent" not in result.xml
    # The VIPs, their colocation with HAProxy and the fencing devices stay.
    root = ET.fromstring(result.xml)
    assert {c.get("id") for c in root.iter("rsc_colocation")} == {
        "colocation-vip-internal-with-haproxy", "colocation-vip-public-with-haproxy"}
    assert {p.get("id") for p in root.iter("primitive") if p.get("class") == "stonith"} == {
        "fence-ctl1", "fence-ctl2", "fence-ctl3"}


@pytest.mark.validator
def test_the_lab_cib_is_valid_for_pacemaker(tmp_path: Path) -> None:
    path = tmp_path / "cib.xml"
    path.write_text(healthy_status(lab_cib(rendered_cib(), programs={"haproxy"}).xml))
    result = crm_verify(path)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_a_lab_fence_leaves_the_node_off_for_the_heal() -> None:
    root = ET.fromstring(rendered_cib())
    device = root.find(".//primitive[@id='fence-ctl2']")
    assert device is not None and device.get("type") == "fence_hastack"
    params = {n.get("name"): n.get("value") for n in device.iter("nvpair")}
    assert params["plug"] == "ctl2" and params["pcmk_reboot_action"] == "off"


# --- crm_mon ---------------------------------------------------------------------------------

# crm_mon of a three-node cluster after ctl1 was fenced (ctl2 is the DC).
CRM_MON = (Path(__file__).parent / "fixtures/crm_mon_one_node_fenced.xml").read_text()


def test_crm_mon_is_read_as_nodes_quorum_resources_and_fencing() -> None:
    view = parse_crm_mon(CRM_MON, "ctl2")
    assert view.quorate and view.online == ("ctl2", "ctl3") and view.offline == ("ctl1",)
    assert view.running_on("vip-internal") == ("ctl3",)
    assert view.running_on("haproxy") == ("ctl2",)
    assert view.fenced == ("ctl1 by ctl3: success",)


# --- the power controller and the real fence agent ------------------------------------------


class FakeLabPower:
    """The controller's verbs on an in-memory lab of three nodes."""

    def __init__(self) -> None:
        self.power = {"ctl1": "on", "ctl2": "on", "ctl3": "off"}
        self.calls: list[tuple[str, str]] = []
        self.during: list[tuple[str, str]] = []     # (fencing action, plug) status queries

    def nodes(self) -> dict[str, str]:
        return dict(self.power)

    def status(self, plug: str, during: str | None = None) -> str:
        if during is not None:
            self.during.append((during, plug))
        return self.power[plug]

    def off(self, plug: str) -> None:
        self.calls.append(("off", plug))
        self.power[plug] = "off"

    def on(self, plug: str) -> None:
        self.calls.append(("on", plug))
        self.power[plug] = "on"

    class cloud:  # noqa: N801 - the attribute the protocol reads
        name = "fake"


@pytest.fixture
def power_socket(tmp_path: Path) -> Iterator[tuple[Path, FakeLabPower]]:
    lab = FakeLabPower()
    path = tmp_path / "power.sock"
    server = powerd._Server(str(path), powerd._Handler)
    server.controller = lab  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield path, lab
    finally:
        server.shutdown()
        server.server_close()


def fence(socket: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not Path("/usr/share/fence/fencing.py").exists():
        pytest.skip("Debian's fence-agents is not installed")
    return subprocess.run(["/usr/bin/python3", str(AGENT), f"--socket={socket}", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_fence_agent_powers_a_node_off_and_on(power_socket: tuple[Path, FakeLabPower]) -> None:
    path, lab = power_socket
    assert fence(path, "-o", "status", "-n", "ctl1").returncode == 0        # 0: on
    off = fence(path, "-o", "off", "-n", "ctl1")
    assert off.returncode == 0, off.stderr
    assert lab.power["ctl1"] == "off" and ("off", "ctl1") in lab.calls
    assert fence(path, "-o", "status", "-n", "ctl1").returncode == 2        # 2: off
    on = fence(path, "-o", "on", "-n", "ctl1")
    assert on.returncode == 0, on.stderr
    assert lab.power["ctl1"] == "on"


def test_fence_agent_reboot_is_off_then_on(power_socket: tuple[Path, FakeLabPower]) -> None:
    path, lab = power_socket
    assert fence(path, "-o", "reboot", "-n", "ctl2").returncode == 0
    assert lab.calls == [("off", "ctl2"), ("on", "ctl2")]


def test_fencing_a_node_already_off_tells_the_controller_it_is_a_fence(
        power_socket: tuple[Path, FakeLabPower]) -> None:
    """fence-agents' fence_action stops at the status of a node already off (a crashed one):
    the status query says which fencing action it serves, so the fence is still recorded."""
    path, lab = power_socket
    result = fence(path, "-o", "off", "-n", "ctl3")
    assert result.returncode == 0 and "Already OFF" in result.stdout, result.stdout
    assert lab.calls == [] and ("off", "ctl3") in lab.during


def test_fence_agent_lists_the_lab_nodes_and_monitors_the_controller(
        power_socket: tuple[Path, FakeLabPower]) -> None:
    path, _ = power_socket
    listing = fence(path, "-o", "list")
    assert listing.returncode == 0, listing.stderr
    assert sorted(line.split(",")[0] for line in listing.stdout.split()) == \
        ["ctl1", "ctl2", "ctl3"]
    assert fence(path, "-o", "monitor").returncode == 0


def test_fence_agent_fails_when_the_controller_is_gone(tmp_path: Path) -> None:
    result = fence(tmp_path / "nothing.sock", "-o", "off", "-n", "ctl1")
    assert result.returncode != 0
    assert "lab power controller" in result.stderr


def test_fence_agent_metadata_is_fence_agent_xml() -> None:
    result = fence(Path("/nonexistent"), "-o", "metadata")
    assert result.returncode == 0
    root = ET.fromstring(result.stdout)
    assert root.tag == "resource-agent" and root.get("name") == "fence_hastack"
    params = {p.get("name") for p in root.iter("parameter")}
    assert {"plug", "socket", "action"} <= params
    actions = {a.get("name") for a in root.iter("action")}
    assert {"on", "off", "reboot", "status", "list", "monitor", "metadata",
            "validate-all"} <= actions


def test_power_controller_refuses_an_unknown_node_and_action() -> None:
    class Lab(FakeLabPower):
        def status(self, plug: str, during: str | None = None) -> str:
            raise KeyError(plug)
    lab: Any = Lab()
    assert powerd.answer(lab, {"action": "status", "plug": "ctl9"}) == \
        {"ok": False, "error": "no lab node 'ctl9' in cloud fake"}
    assert not powerd.answer(lab, {"action": "explode", "plug": "ctl1"})["ok"]
    assert powerd.answer(lab, {"action": "list"})["nodes"]["ctl3"] == "off"


def test_ocf_agent_metadata_is_valid(tmp_path: Path) -> None:
    if not Path("/usr/lib/ocf/lib/heartbeat/ocf-shellfuncs").exists():
        pytest.skip("Debian's resource-agents is not installed")
    result = subprocess.run(["/bin/sh", str(OCF_AGENT), "meta-data"], capture_output=True,
                            text=True, env={"OCF_ROOT": "/usr/lib/ocf", "PATH": "/usr/bin:/bin"},
                            check=False)
    assert result.returncode == 0, result.stderr
    root = ET.fromstring(result.stdout)
    assert root.get("name") == "supervised"
    assert {a.get("name") for a in root.iter("action")} >= {"start", "stop", "monitor"}


def test_power_controller_speaks_one_json_line_each_way(
        power_socket: tuple[Path, FakeLabPower]) -> None:
    import socket

    path, _ = power_socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(str(path))
        conn.sendall(b'{"action": "off", "plug": "ctl2"}\n')
        reply = json.loads(conn.makefile().readline())
    assert reply == {"ok": True, "status": "off"}

