"""Acceptance on the real lab for the Pacemaker architecture: the example cloud comes up with
Corosync and Pacemaker in every controller and a quorate cluster; `stonith_admin --fence`
powers a node off through `fence_hastack` and the cluster reports it fenced; a crashed or
partitioned VIP holder is fenced before its VIPs start elsewhere, so there is never a second
VIP holder; a whole-cluster power cut is recovered with no acknowledged write lost.

Needs root. The lab is a copy of `examples/pacemaker.yaml` under its own name and subnet, in
a private state root.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hastack.chaos.scenarios import run_scenario, scenario
from hastack.deploy import lab
from hastack.deploy.lab.nodes import marked_processes
from hastack.deploy.lab.power import LabControl
from hastack.deploy.lab.state import RecordStore, state_dir
from hastack.model import Cloud
from tests.labs import private_lab

NAME, SUBNET = "pcmkt", "198.18.63."

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (namespaces, links, mounts)"),
]


@pytest.fixture(scope="module")
def pacemaker_lab() -> Iterator[tuple[Cloud, str, Any]]:
    with private_lab("pacemaker", NAME, SUBNET) as (cloud, cloud_file, summary):
        print(f"\npacemaker lab up in {summary.total_s:.1f} s")
        yield cloud, cloud_file, summary


def _wait_healthy(control: LabControl, timeout: float = 120) -> None:
    report = control.wait_healthy(timeout)
    assert report.healthy, [str(a) for a in report.anomalies]


def test_the_pacemaker_example_comes_up_healthy_with_quorum(
        pacemaker_lab: tuple[Cloud, str, Any]) -> None:
    _, _, summary = pacemaker_lab
    assert summary.healthy, [str(a) for a in summary.status.anomalies]
    cluster = summary.status.pacemaker
    assert cluster is not None and cluster.quorate
    assert set(cluster.online) == {"ctl1", "ctl2", "ctl3"}
    # Pacemaker, not keepalived, holds the VIPs: one holder each, HAProxy on every member.
    assert all(len(h) == 1 for h in summary.status.vip_holders.values())
    assert cluster.running_on("vip-internal") == tuple(summary.status.vip_holders["internal"])
    assert set(cluster.running_on("haproxy")) == {"ctl1", "ctl2", "ctl3"}
    assert not any(p == "keepalived" for node in summary.status.nodes.values()
                   for p in node.services)


def test_stonith_admin_powers_a_node_off_and_it_is_reported_fenced(
        pacemaker_lab: tuple[Cloud, str, Any]) -> None:
    cloud, cloud_file, _ = pacemaker_lab
    control = LabControl(cloud, cloud_file)
    since = time.time()
    listed = lab.run_in(cloud.name, "ctl1", ["stonith_admin", "--list", "ctl3"])
    assert listed.returncode == 0 and "fence-ctl3" in listed.stdout, listed.stdout
    fenced = lab.run_in(cloud.name, "ctl2", ["stonith_admin", "--fence", "ctl3"], timeout=120)
    assert fenced.returncode == 0, fenced.stdout + fenced.stderr
    try:
        assert "ctl3" in control.refresh()                     # powered off: not running
        assert [(a, n) for _, a, n in control.power_events(since)] == [("off", "ctl3")]
        history = lab.run_in(cloud.name, "ctl1", ["stonith_admin", "--history", "ctl3"])
        assert "successful" in history.stdout, history.stdout
        status = control.status()
        assert status.pacemaker is not None and "ctl3" in status.pacemaker.offline
        assert any(e.startswith("ctl3 by ") and e.endswith("success")
                   for e in status.pacemaker.fenced)
        # The fence agent powers it on again; the node rejoins and Pacemaker restarts HAProxy.
        on = lab.run_in(cloud.name, "ctl1", ["fence_hastack", "-o", "on", "-n", "ctl3"],
                        timeout=180)
        assert on.returncode == 0, on.stdout + on.stderr
    finally:
        control.restore()
    _wait_healthy(control)


def _fence_and_vip_times(data: dict[str, Any], holder: str) -> tuple[float, float]:
    fence = [t["t"] for t in data["transitions"] if t["what"] == f"power {holder}"
             and t["to"] == "off"]
    arrival = [t["t"] for t in data["transitions"] if t["what"] == "vip internal"
               and t["to"] not in (None, holder)]
    assert fence, data["transitions"]
    assert arrival, data["transitions"]
    return fence[0], arrival[0]


def test_a_crashed_vip_holder_is_fenced_before_its_vip_starts_elsewhere(
        pacemaker_lab: tuple[Cloud, str, Any], tmp_path: Path) -> None:
    cloud, cloud_file, _ = pacemaker_lab
    control = LabControl(cloud, cloud_file)
    _wait_healthy(control)
    holder = control.vip_holders()["internal"][0]
    run = run_scenario(scenario("vip-holder-crash"), control, tmp_path / "crash")
    data = run.data
    fenced_at, vip_at = _fence_and_vip_times(data, holder)
    print(f"\nvip-holder-crash: fenced {fenced_at - data['transitions'][0]['t']:+.2f} s, "
          f"VIP moved {vip_at - fenced_at:.2f} s after the fence; {data['reasons']}")
    assert fenced_at <= vip_at
    assert data["dual_vip_holder_s"] == 0
    assert data["workloads"]["sql"]["lost"] == 0 and data["workloads"]["amqp"]["lost"] == 0
    assert data["lab"]["healthy_after"], data["lab"]


def test_a_partitioned_vip_holder_stops_its_vips_and_is_fenced(
        pacemaker_lab: tuple[Cloud, str, Any], tmp_path: Path) -> None:
    """Unlike VRRP, which gives seconds of two VIP holders on the same fault (the keepalived
    architecture's controller-partition), the minority loses quorum and stops its VIP, and
    the majority starts it only after fencing the minority."""
    cloud, cloud_file, _ = pacemaker_lab
    control = LabControl(cloud, cloud_file)
    _wait_healthy(control)
    holder = control.vip_holders()["internal"][0]
    run = run_scenario(scenario("controller-partition"), control, tmp_path / "partition",
                       target="vip-holder")
    data = run.data
    fenced_at, vip_at = _fence_and_vip_times(data, holder)
    assert fenced_at <= vip_at
    assert data["dual_vip_holder_s"] == 0, data["dual_vip_by_vip"]
    assert data["workloads"]["sql"]["lost"] == 0 and data["workloads"]["amqp"]["lost"] == 0
    assert data["lab"]["healthy_after"], data["lab"]


def test_power_loss_of_a_pacemaker_cloud_recovers_without_losing_a_write(
        pacemaker_lab: tuple[Cloud, str, Any], tmp_path: Path) -> None:
    """Galera and RabbitMQ keep their own clustering under Pacemaker, so the recovery from a
    whole-cluster power cut is the same decision as in the keepalived architecture; then
    Corosync and Pacemaker come back, regain quorum and start the VIPs once."""
    cloud, cloud_file, _ = pacemaker_lab
    control = LabControl(cloud, cloud_file)
    _wait_healthy(control)
    run = run_scenario(scenario("power-loss"), control, tmp_path / "power-loss")
    data = run.data
    print(f"\npower-loss: heal {data['lab']['heal_s']} s, healthy {data['lab']['recovery_s']} s "
          f"later; {data['reasons']}")
    assert data["workloads"]["sql"]["lost"] == 0 and data["workloads"]["amqp"]["lost"] == 0
    assert data["lab"]["healthy_after"], data["lab"]
    assert data["dual_vip_holder_s"] == 0
    status = control.status()
    assert status.pacemaker is not None and status.pacemaker.quorate
    assert set(status.pacemaker.online) == {"ctl1", "ctl2", "ctl3"}
    assert all(len(h) == 1 for h in status.vip_holders.values())
    assert all(w["available_again"] for w in data["workloads"].values()), data["reasons"]


def test_down_leaves_no_process_not_even_a_node_the_power_controller_booted(
        pacemaker_lab: tuple[Cloud, str, Any]) -> None:
    cloud, _, _ = pacemaker_lab
    lab.down(cloud.name, purge=False)
    assert marked_processes(state_dir(cloud.name)) == []
    record = RecordStore(state_dir(cloud.name)).load()
    assert record is None
