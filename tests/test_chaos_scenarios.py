"""Unit tests of chaos targets, the scenario table and the fault verbs (fakes, no lab)."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from hastack.chaos import ChaosError
from hastack.chaos.actions import SERVICE_VERBS, VERBS, NodeRestart, make_action
from hastack.chaos.faults import run_fault
from hastack.chaos.measure import fault_windows
from hastack.chaos.scenarios import SCENARIOS, demo_suite, rolling_targets, scenario
from hastack.chaos.targets import LabView, resolve
from hastack.chaos.timeline import TimelineWriter, read_events
from hastack.deploy.lab.power import NFT_TABLE, nft_blackhole_script, nft_partition_script
from hastack.errors import LabError
from tests.fakes import FakeControl

NODES = ("ctl1", "ctl2", "ctl3")
MEMBERS = {p: list(NODES) for p in ("rabbitmq", "memcached", "haproxy", "mariadb-galera")}


def view(holders: list[str] | None = None, writer: str | None = "ctl2") -> LabView:
    return LabView(NODES, {"internal": ["ctl1"] if holders is None else holders,
                           "public": ["ctl1"]}, writer, MEMBERS)


def lab() -> FakeControl:
    return FakeControl({n: {"keepalived": "RUNNING", "haproxy": "RUNNING", "mariadb": "RUNNING",
                        "rabbitmq": "RUNNING", "memcached": "RUNNING"} for n in NODES})


# --- targets -------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, expected", [
    ("ctl3", "ctl3"), ("vip-holder", "ctl1"), ("galera-writer", "ctl2"),
    # bystanders: neither the VIP holder (ctl1) nor the writer (ctl2)
    ("rabbit-any", "ctl3"), ("memcached-any", "ctl3"), ("controller-any", "ctl3"),
])
def test_targets_resolve_by_name_and_role(spec: str, expected: str) -> None:
    assert resolve(spec, view()) == expected


def test_role_falls_back_when_every_member_is_busy() -> None:
    small = LabView(("ctl1",), {"internal": ["ctl1"]}, "ctl1", {"rabbitmq": ["ctl1"]})
    assert resolve("rabbit-any", small) == "ctl1"


@pytest.mark.parametrize("holders", [[], ["ctl1", "ctl2"]])
def test_vip_holder_needs_exactly_one(holders: list[str]) -> None:
    with pytest.raises(ChaosError, match="not by exactly one node"):
        resolve("vip-holder", view(holders))


def test_unknown_target_and_missing_writer_are_errors() -> None:
    with pytest.raises(ChaosError, match="unknown target 'ctl9'"):
        resolve("ctl9", view())
    with pytest.raises(ChaosError, match="no UP Galera server"):
        resolve("galera-writer", view(writer=None))


def test_rolling_targets_restart_the_vip_holder_last() -> None:
    assert rolling_targets(view(), "controller-any") == ["ctl2", "ctl3", "ctl1"]


# --- the scenario table ----------------------------------------------------------------------


def test_scenario_table_is_consistent() -> None:
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names))
    for required in ("vip-holder-crash", "galera-writer-crash", "rabbit-node-crash",
                     "memcached-node-loss", "controller-freeze", "controller-partition",
                     "rolling-restart"):
        assert required in names
    for s in SCENARIOS:
        assert s.verb in VERBS, s.name
        assert (s.process is not None) == (s.verb in SERVICE_VERBS), s.name
        assert s.hold_s >= 0 and s.recovery_timeout_s > 0
        assert s.expectations.max_lost_writes == 0 and s.expectations.max_lost_messages == 0
    # The targets are the limits of the scenarios that measure them.
    assert scenario("vip-holder-crash").expectations.max_downtime_s["api"] == 1.0
    assert scenario("galera-writer-crash").expectations.max_downtime_s["sql"] == 2.0
    assert scenario("rabbit-node-crash").expectations.max_downtime_s["amqp"] == 5.0
    assert all(v == 0 for v in scenario("rolling-restart").expectations.max_downtime_s.values())
    demo = demo_suite()
    assert 4 <= len(demo) <= 7
    assert sum(s.warmup_s + s.hold_s + s.tail_s for s in demo) < 120


def test_unknown_scenario_names_the_known_ones() -> None:
    with pytest.raises(ChaosError, match="vip-holder-crash"):
        scenario("vip-holder-crush")


# --- fault verbs -----------------------------------------------------------------------------


@pytest.mark.parametrize("verb, process, inject, revert", [
    ("crash", None, ("crash", "ctl2"), ("restore",)),
    ("freeze", None, ("freeze", "ctl2"), ("thaw", "ctl2", "101", "102")),
    ("partition", None, ("partition", "ctl2"), ("heal", "ctl2")),
    ("partition-oneway", None, ("partition", "ctl2", "out"), ("heal", "ctl2")),
    ("blackhole", "memcached", ("blackhole", "ctl2", "memcached"), ("heal", "ctl2")),
    ("isolate", None, ("unplug", "ctl2"), ("plug", "ctl2")),
    ("kill", "mariadb-galera", ("kill", "ctl2", "mariadb"), ("start", "ctl2", "mariadb")),
    ("stop", "memcached", ("stop", "ctl2", "memcached"), ("start", "ctl2", "memcached")),
])
def test_each_verb_is_injected_then_reverted_and_timed(
        tmp_path, verb: str, process: str | None, inject: tuple[str, ...],
        revert: tuple[str, ...]) -> None:
    fake = lab()
    action = make_action(verb, fake, "ctl2", process)
    with TimelineWriter(tmp_path / "f.jsonl") as writer:
        run_fault(writer, action, 0.01)
    assert fake.calls == [inject, revert]
    windows = fault_windows(read_events(tmp_path / "f.jsonl"))
    assert len(windows) == 1 and windows[0].verb == action.verb and windows[0].end is not None
    assert windows[0].end >= windows[0].start


def test_revert_runs_even_when_the_hold_is_interrupted(tmp_path) -> None:
    fake = lab()
    stop = threading.Event()
    stop.set()
    with TimelineWriter(tmp_path / "f.jsonl") as writer:
        run_fault(writer, make_action("freeze", fake, "ctl1"), 60, stop)
    assert fake.frozen == set()


def test_restart_stops_keepalived_first_and_restores(tmp_path) -> None:
    fake = lab()
    action = make_action("restart", fake, "ctl3")
    assert isinstance(action, NodeRestart)
    with TimelineWriter(tmp_path / "f.jsonl") as writer:
        run_fault(writer, action, 0)
    stops = [c[2] for c in fake.calls if c[0] == "stop"]
    assert stops[:2] == ["keepalived", "haproxy"] and stops[-1] == "mariadb"
    assert fake.calls[-2:] == [("graceful_start", "ctl3"), ("restore",)]
    assert set(fake.service_states("ctl3").values()) == {"RUNNING"}


def test_service_verbs_need_a_process_and_verbs_must_exist() -> None:
    with pytest.raises(ChaosError, match="needs a process"):
        make_action("kill", lab(), "ctl1")
    with pytest.raises(ChaosError, match="unknown fault verb"):
        make_action("nuke", lab(), "ctl1")


def test_partition_script_drops_both_ways_in_one_table() -> None:
    script = nft_partition_script(["198.18.0.12", "198.18.0.13"])
    assert f"table inet {NFT_TABLE}" in script
    assert "ip saddr { 198.18.0.12, 198.18.0.13 } drop" in script
    assert "ip daddr { 198.18.0.12, 198.18.0.13 } drop" in script


def test_one_way_partition_drops_only_what_the_node_sends() -> None:
    script = nft_partition_script(["198.18.0.12"], "out")
    assert "hook output" in script and "ip daddr { 198.18.0.12 } drop" in script
    assert "hook input" not in script and "saddr" not in script
    with pytest.raises(LabError, match="both, in or out"):
        nft_partition_script(["198.18.0.12"], "sideways")


def test_blackhole_drops_packets_to_the_port_instead_of_refusing() -> None:
    script = nft_blackhole_script(11211)
    assert f"table inet {NFT_TABLE}" in script and "tcp dport 11211 drop" in script
    assert "reject" not in script


def test_power_loss_verbs_cut_every_node_then_recover(tmp_path) -> None:
    fake = lab()
    with TimelineWriter(tmp_path / "f.jsonl") as writer:
        run_fault(writer, make_action("power-loss", fake, "ctl2"), 0.01)
    assert fake.calls == [*(("crash", n) for n in fake.programs), ("restore",)]
    trap = make_action("stale-node-trap", lab(), "ctl3")
    trap.stale_s = 0.01
    trap.inject()
    assert trap.control.calls[0] == ("stop", "ctl3", "mariadb")
    assert [c for c in trap.control.calls if c[0] == "crash"] == [
        ("crash", n) for n in trap.control.programs]
    assert scenario("power-loss").recovery_timeout_s >= 120


def test_a_heal_that_fails_is_a_failing_verdict_with_its_reason(tmp_path) -> None:
    from hastack.chaos.scenarios import run_scenario
    from tests.fakes import RunnerControl

    control = RunnerControl(programs={n: {"rabbitmq": "RUNNING"} for n in ("ctl1", "ctl2")},
                            state=tmp_path, fail_heal="rabbitmq not listening on :5672")
    sc = replace(scenario("rabbit-node-crash"), warmup_s=0, tail_s=0, hold_s=0)
    run = run_scenario(sc, control, tmp_path / "run", target="ctl2", say=lambda _: None)

    assert run.data["verdict"] == "fail"
    assert any("rabbitmq not listening on :5672" in r for r in run.data["reasons"])
    assert ("crash", "ctl2") in control.calls and ("restore-failed",) in control.calls


def test_a_rolling_restart_waits_until_memcached_clients_take_the_node_back() -> None:
    from types import SimpleNamespace

    from hastack.chaos.scenarios import rolling_pause_s
    from hastack.render.budget import make_budget
    from tests.conftest import example_plan

    plan = example_plan("demo")
    control = SimpleNamespace(plan=plan, cloud=plan.cloud)
    # pymemcache re-checks dead servers once per dead_retry window: back within two
    assert rolling_pause_s(control) == 2 * make_budget(plan.cloud).memcache_dead_retry_s
    no_cache = SimpleNamespace(plan=SimpleNamespace(runs=lambda process: False), cloud=None)
    assert rolling_pause_s(no_cache) == 0.0


def test_after_the_heal_a_client_still_failing_is_waited_for(tmp_path) -> None:
    """A memcached client shuns a server for dead_retry after it failed, so after a long
    outage it succeeds again only well after the lab is healthy: the run keeps measuring
    until it does (bounded), instead of cutting it off as "never recovered"."""
    from hastack.chaos.scenarios import WorkloadProcs, _failing

    procs = WorkloadProcs(tmp_path, lambda *_: [], {"sql": {}, "cache": {}, "api": {}})
    for name, outcomes in {"sql": ["fail", "ok"], "cache": ["ok", "fail"], "api": []}.items():
        writer = TimelineWriter(procs.path(name))
        for i, outcome in enumerate(outcomes):
            writer.request(name, "op", outcome, 100.0 + i, 0.01)
        writer.close()
    assert _failing(procs) == {"cache"}
