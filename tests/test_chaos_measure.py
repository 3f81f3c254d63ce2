"""The timeline and the measurements, on synthetic timelines (pure, fast)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from hastack.chaos import ChaosError
from hastack.chaos.measure import (
    Expectations,
    aggregate,
    availability,
    classify_queue,
    classify_set,
    dual_vip_holder_seconds,
    fault_windows,
    from_ranges,
    holder_transitions,
    ranges,
    summarise,
    tooz_takeovers,
    write_outcomes,
)
from hastack.chaos.timeline import (
    Check,
    Clock,
    Delivery,
    Event,
    Fault,
    Outcome,
    PeriodicSampler,
    Request,
    Sample,
    TimelineWriter,
    Transition,
    WorkloadMark,
    from_json,
    read_events,
    read_timeline,
    to_json,
)

T0 = 1_700_000_000.0


def req(t: float, outcome: Outcome = "ok", workload: str = "api", latency: float = 0.01,
        op: str = "get", id: int | None = None, result: str | None = None,
        error: str = "") -> Request:
    if outcome != "ok" and not error:
        error = "boom"
    return Request(T0 + t, workload, op, outcome, latency, error, None, id, result)


def steady(workload: str, until: float, failing: tuple[float, float] | None = None,
           every: float = 0.1, op: str = "get", outcome: Outcome = "fail") -> list[Request]:
    """A request every `every` s from 0 to `until`; those issued inside `failing` fail."""
    out = []
    for i in range(round(until / every)):
        t = round(i * every, 3)
        bad = failing is not None and failing[0] <= t < failing[1]
        out.append(req(t, outcome if bad else "ok", workload, op=op,
                       id=i if op in ("insert", "publish") else None))
    return out


def fault(start: float, end: float | None = None, verb: str = "kill",
          target: str = "ctl1") -> list[Event]:
    events: list[Event] = [Fault(T0 + start, verb, target, "start", "start")]
    if end is not None:
        events.append(Fault(T0 + end, verb, target, "end", "start"))
    return events


# --- availability ------------------------------------------------------------------------

def test_downtime_runs_from_first_to_last_failure_around_the_fault() -> None:
    a = availability(steady("api", 10, failing=(3.0, 5.0)), [T0 + 2.95])
    # first failure issued at 3.0, last issued at 4.9 and ended 0.01 s later
    assert a.downtime_s == pytest.approx(1.91, abs=1e-3)
    assert a.errors == 20 and a.requests == 100 and a.ok == 80
    assert a.available_again
    # first success after the last failure: issued 5.0, ended 5.01; fault at 2.95
    assert a.mttr_s == pytest.approx(2.06, abs=1e-3)
    # successes end at 2.91 and 5.01
    assert a.max_gap_s == pytest.approx(2.1, abs=1e-3)
    assert a.error_counts == {"boom": 20}


def test_no_failure_means_zero_downtime_and_mttr_and_a_steady_gap() -> None:
    a = availability(steady("api", 5), [T0 + 2.0])
    assert (a.downtime_s, a.mttr_s, a.errors, a.available_again) == (0.0, 0.0, 0, True)
    assert a.max_gap_s == pytest.approx(0.1, abs=1e-6)


def test_a_single_slow_failure_counts_its_latency_as_downtime() -> None:
    reqs = [req(0), req(1, "indeterminate", latency=2.0), req(3.5)]
    a = availability(reqs, [T0 + 0.5])
    assert a.downtime_s == pytest.approx(2.0)
    assert a.indeterminate == 1
    assert a.mttr_s == pytest.approx(3.51 - 0.5)


def test_never_recovered_has_no_mttr() -> None:
    a = availability(steady("api", 5, failing=(2.0, 99)), [T0 + 2.0])
    assert a.mttr_s is None and not a.available_again


def test_failures_before_any_fault_are_baseline_not_downtime() -> None:
    reqs = [req(0.5, "fail"), *steady("api", 3)[10:]]
    a = availability(reqs, [T0 + 2.0])
    assert a.baseline_errors == 1 and a.downtime_s == 0.0


def test_without_faults_the_whole_run_is_one_window() -> None:
    a = availability(steady("api", 5, failing=(1.0, 2.0)), [])
    assert a.downtime_s == pytest.approx(0.91, abs=1e-3)
    assert a.mttr_s == pytest.approx(1.01, abs=1e-3)    # from the first failure


def test_two_faults_sum_their_windows_and_mttr_is_the_worst() -> None:
    first = steady("api", 20, failing=(3.0, 4.0))
    second = steady("api", 20, failing=(12.0, 15.0))
    reqs = [a if not a.ok else b for a, b in zip(first, second, strict=True)]
    a = availability(reqs, [T0 + 3.0, T0 + 12.0])
    assert a.downtime_s == pytest.approx(0.91 + 2.91, abs=1e-2)
    assert a.mttr_s == pytest.approx(3.01, abs=1e-2)


def test_a_request_in_flight_when_the_fault_started_belongs_to_it() -> None:
    reqs = [req(0.9, "fail", latency=1.0), req(2.0)]
    a = availability(reqs, [T0 + 1.0])
    assert a.baseline_errors == 0 and a.downtime_s == pytest.approx(1.0)


def test_service_between_two_outages_of_one_fault_is_not_downtime() -> None:
    # a crash (3.0-4.0 failing), clients served again, then the node's rejoin (8.0-8.5)
    crash = steady("api", 12, failing=(3.0, 4.0))
    rejoin = steady("api", 12, failing=(8.0, 8.5))
    reqs = [a if not a.ok else b for a, b in zip(crash, rejoin, strict=True)]
    a = availability(reqs, [T0 + 2.95])
    assert a.downtime_s == pytest.approx(0.91 + 0.41, abs=1e-3)
    assert a.errors == 15
    assert a.mttr_s == pytest.approx(8.51 - 2.95, abs=1e-3)


def test_fault_windows_pair_start_and_end() -> None:
    events = [*fault(1, 5), *fault(2, None, "freeze", "rabbit1")]
    windows = fault_windows(events)
    assert [(w.verb, w.start - T0, None if w.end is None else w.end - T0) for w in windows] == \
        [("kill", 1, 5), ("freeze", 2, None)]


# --- sets, queues --------------------------------------------------------------------------

def test_classify_set_sorts_every_class() -> None:
    outcomes: dict[int, Outcome] = {1: "ok", 2: "ok", 3: "indeterminate", 4: "indeterminate",
                                    5: "fail", 6: "fail"}
    present = {1, 3, 6, 99}
    s = classify_set(outcomes, present)
    assert (s.attempted, s.acked, s.failed, s.indeterminate, s.ok) == (6, 2, 2, 2, 1)
    assert s.lost == (2,)
    assert s.recovered == (3,)
    assert s.unexpected == (99,)
    assert s.failed_but_present == (6,)
    assert s.indeterminate_absent == 1


def test_write_outcomes_keeps_the_strongest_claim() -> None:
    reqs = [req(0, "fail", op="insert", id=1), req(1, "ok", op="insert", id=1),
            req(2, "indeterminate", op="insert", id=2), req(3, "ok", op="other", id=3)]
    assert write_outcomes(reqs, "insert") == {1: "ok", 2: "indeterminate"}


def test_ranges_round_trip() -> None:
    ids = [7, 1, 2, 3, 8, 20]
    assert ranges(ids) == [[1, 3], [7, 8], [20, 20]]
    assert from_ranges(ranges(ids)) == sorted(ids)
    assert ranges([]) == []


def test_classify_queue_lost_duplicated_unconfirmed_unexpected() -> None:
    outcomes: dict[int, Outcome] = {1: "ok", 2: "ok", 3: "ok", 4: "indeterminate", 5: "fail"}
    q = classify_queue(outcomes, [1, 1, 3, 4, 5, 42], drained=True)
    assert q.lost == (2,)
    assert q.duplicated == (1,)
    assert q.unconfirmed_delivered == (4, 5)
    assert q.unexpected == (42,)
    assert (q.confirmed, q.nacked, q.indeterminate, q.delivered) == (3, 1, 1, 5)


# --- VIP holders ---------------------------------------------------------------------------

def holders(t: float, *nodes: str, vip: str = "public") -> Sample:
    return Sample(T0 + t, "vip_holders", {vip: list(nodes)})


def test_dual_vip_seconds_from_samples() -> None:
    samples = [holders(0, "lb1"), holders(1, "lb1"), holders(2, "lb1", "lb2"),
               holders(2.5, "lb1", "lb2"), holders(3, "lb2"), holders(4, "lb2", "lb1")]
    # 2→3 split (1.0 s) plus the last sample, held for the median interval (1.0 s)
    assert dual_vip_holder_seconds(samples) == {"public": pytest.approx(2.0)}
    changes = [(t.from_, t.to) for t in holder_transitions(samples)]
    assert changes == [("lb1", "lb1+lb2"), ("lb1+lb2", "lb2"), ("lb2", "lb1+lb2")]


def test_no_samples_no_dual_holders() -> None:
    assert dual_vip_holder_seconds([]) == {}
    assert dual_vip_holder_seconds([holders(0, "lb1"), holders(1)]) == {"public": 0.0}


# --- summary and verdict -------------------------------------------------------------------

def a_run(lose: bool = False, downtime_gap: float = 1.0, drained: bool = True,
          dual: bool = False) -> list[Event]:
    events: list[Event] = [*fault(3.0, 8.0)]
    events += [WorkloadMark(T0, "sql", "start", {"run": "r1"}),
               WorkloadMark(T0, "amqp", "start", {"run": "r1"}),
               WorkloadMark(T0, "api", "start", {"run": "r1", "service": "standin-api"})]
    events += steady("api", 10, failing=(3.0, 3.0 + downtime_gap))
    sql = steady("sql", 10, failing=(3.0, 3.5), op="insert")
    sql[35] = req(3.5, "indeterminate", "sql", op="insert", id=35, latency=2.0)
    events += sql
    acked = [r.id for r in sql if r.ok and r.id is not None]
    present = set(acked) | {35}
    if lose:
        present -= {acked[0], acked[-1]}
    events.append(Check(T0 + 11, "sql", {"run": "r1", "present": ranges(present)}))
    pubs = steady("amqp", 10, op="publish")
    events += pubs
    events += [Delivery(T0 + 0.2 + i * 0.1, "amqp", i, "rabbit1", "r1") for i in range(100)]
    events.append(Delivery(T0 + 11, "amqp", 7, "rabbit2", "r1"))     # a redelivery
    events.append(Check(T0 + 12, "amqp", {"run": "r1", "drained": drained}))
    events += [holders(t / 10, "lb1") for t in range(30)]
    events += [holders(3 + t / 10, "lb2", "lb1") if dual else holders(3 + t / 10, "lb2")
               for t in range(3)]
    events += [holders(3.3 + t / 10, "lb2") for t in range(60)]
    events.append(Transition(T0 + 3.6, "writer", "ctl1", "ctl2", "haproxy"))
    return sorted(events, key=lambda e: e.t)


def test_summary_of_a_good_run_passes_and_has_the_documented_shape() -> None:
    summary = summarise(a_run(), "kill-vip-holder",
                        Expectations(max_downtime_s={"api": 5.0}, max_dual_vip_s=0.0),
                        results_dir="/tmp/x")
    assert summary.verdict == "pass", summary.reasons
    d = json.loads(json.dumps(summary.as_dict()))
    assert set(d) >= {"scenario", "verdict", "reasons", "workloads", "dual_vip_holder_s",
                      "transitions", "results_dir"}
    assert d["scenario"] == "kill-vip-holder" and d["results_dir"] == "/tmp/x"
    sql = d["workloads"]["sql"]
    assert {"downtime_s", "max_gap_s", "errors", "acked", "lost", "indeterminate",
            "recovered"} <= set(sql)
    assert (sql["lost"], sql["recovered"], sql["indeterminate"]) == (0, 1, 1)
    amqp = d["workloads"]["amqp"]
    assert {"downtime_s", "max_gap_s", "errors", "confirmed", "lost", "duplicated"} <= set(amqp)
    assert (amqp["confirmed"], amqp["lost"], amqp["duplicated"]) == (100, 0, 1)
    api = d["workloads"]["api"]
    assert api["service"] == "standin-api"
    assert api["downtime_s"] == pytest.approx(0.91, abs=1e-3)
    assert d["dual_vip_holder_s"] == 0.0
    whats = [t["what"] for t in d["transitions"]]
    assert "writer" in whats and "vip public" in whats
    assert d["transitions"][0]["t_rel"] == pytest.approx(0.0, abs=1e-3)   # lb1 → lb2 at 3.0


def test_lost_writes_fail_the_verdict_with_the_ids() -> None:
    summary = summarise(a_run(lose=True), "s")
    assert summary.verdict == "fail"
    assert any("2 acknowledged writes lost" in r and "ids 0," in r for r in summary.reasons)
    assert summary.as_dict()["workloads"]["sql"]["lost_ids"] == [0, 99]


def test_downtime_dual_vip_and_undrained_queue_fail_the_verdict() -> None:
    summary = summarise(a_run(downtime_gap=4.0, drained=False, dual=True), "s",
                        Expectations(max_downtime_s={"api": 2.0, "cache": 1.0},
                                     max_dual_vip_s=0.1))
    text = "\n".join(summary.reasons)
    assert "api: downtime 3.91 s > 2 s" in text
    assert "cache: expected workload did not run" in text
    assert "amqp: queue not drained" in text
    assert "two nodes held one VIP for 0.30 s > 0.1 s" in text
    assert summary.verdict == "fail"


def test_an_unchecked_write_set_cannot_pass() -> None:
    events = [e for e in a_run() if not (isinstance(e, Check) and e.workload == "sql")]
    summary = summarise(events, "s")
    assert summary.reasons == ("sql: no check phase in the timeline: lost writes unknown",)
    assert summary.as_dict()["workloads"]["sql"]["lost"] is None


def test_cache_hits_and_misses() -> None:
    events: list[Event] = [req(0, op="set", workload="cache"),
                           req(0.1, op="get", workload="cache", result="hit"),
                           req(0.2, op="get", workload="cache", result="miss"),
                           req(0.3, "fail", op="get", workload="cache")]
    d = summarise(events, "s").as_dict()["workloads"]["cache"]
    assert (d["hits"], d["misses"], d["errors"], d["service"]) == (1, 1, 1, "memcached")


def test_aggregate_repeats_median_min_max() -> None:
    runs = [summarise(a_run(downtime_gap=g), "s").as_dict() for g in (1.0, 2.0, 4.0)]
    runs[2]["verdict"], runs[2]["reasons"] = "fail", ["api: slow"]
    agg = aggregate(runs)
    assert agg["runs"] == 3 and agg["verdict"] == "fail"
    assert agg["reasons"] == ["run 3: api: slow"]
    down = agg["workloads"]["api"]["downtime_s"]
    assert down == {"median": pytest.approx(1.91, abs=1e-3), "min": pytest.approx(0.91, abs=1e-3),
                    "max": pytest.approx(3.91, abs=1e-3)}
    assert agg["workloads"]["api"]["service"] == "standin-api"
    assert agg["workloads"]["sql"]["lost"] == {"median": 0, "min": 0, "max": 0}
    assert agg["workloads"]["api"]["available_again"] is True
    assert aggregate([])["verdict"] == "fail"


# --- the timeline file -----------------------------------------------------------------------

def test_writer_threads_and_reader_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with TimelineWriter(path) as writer:
        def work(name: str) -> None:
            for i in range(200):
                writer.request(name, "get", "ok", writer.now(), 0.001, id=i)
        threads = [threading.Thread(target=work, args=(f"w{k}",)) for k in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        with writer.fault_window("kill", "ctl1", reverse="start"):
            writer.transition("vip", "lb1", "lb2")
        writer.sample("vip_holders", {"public": ["lb2"]})
        writer.mark("api", "info", service="keystone")
    events = read_events(path)
    assert len(events) == 800 + 5
    assert len(path.read_text().splitlines()) == 805
    faults = [e for e in events if isinstance(e, Fault)]
    assert [f.phase for f in faults] == ["start", "end"] and faults[0].reverse == "start"
    t = next(e for e in events if isinstance(e, Transition))
    assert (t.from_, t.to) == ("lb1", "lb2")
    assert '"from":"lb1"' in path.read_text()
    for k in range(4):
        ids = [e.id for e in events if isinstance(e, Request) and e.workload == f"w{k}"]
        assert ids == list(range(200))


def test_reader_skips_a_truncated_last_line_and_rejects_a_broken_middle(tmp_path: Path) -> None:
    good = json.dumps(to_json(req(0)))
    path = tmp_path / "a.jsonl"
    path.write_text(good + "\n" + good + "\n" + '{"t": 1, "kind": "requ')
    assert len(read_events(path)) == 2
    path.write_text(good + "\nnot json\n" + good + "\n")
    with pytest.raises(ChaosError, match="a.jsonl:2: malformed"):
        read_events(path)


def test_reader_merges_files_in_time_order_and_ignores_unknown_kinds(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(json.dumps(to_json(req(2))) + "\n"
                                      + json.dumps({"t": T0 + 3, "kind": "future"}) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps(to_json(req(1))) + "\n")
    events = read_timeline([tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    assert [e.t - T0 for e in events] == [1, 2]
    assert from_json({"t": 1, "kind": "future"}) is None


def test_clock_is_wall_aligned_and_monotonic() -> None:
    import time

    clock = Clock()
    a, b = clock.now(), clock.now()
    assert b >= a and abs(a - time.time()) < 1.0


def test_sampler_logs_and_continues_on_probe_errors(tmp_path: Path) -> None:
    calls = {"n": 0}

    def probe() -> dict[str, list[str]]:
        calls["n"] += 1
        if calls["n"] % 2:
            raise RuntimeError("ip netns exec failed")
        return {"public": ["lb1"]}

    path = tmp_path / "s.jsonl"
    with TimelineWriter(path) as writer, PeriodicSampler(writer, "vip_holders", probe, 0.01):
        while calls["n"] < 10:
            threading.Event().wait(0.01)
    events = read_events(path)
    assert sum(isinstance(e, Sample) for e in events) >= 4
    notes = [e for e in events if e.kind == "note"]
    assert notes and "ip netns exec failed" in notes[0].text  # type: ignore[union-attr]


def test_run_fault_always_reverts_and_records_both_ends(tmp_path: Path) -> None:
    from hastack.chaos.faults import run_fault

    class Freeze:
        verb, reverse, target = "freeze", "unfreeze", "ctl2"

        def __init__(self, fail: bool):
            self.fail = fail
            self.calls: list[str] = []

        def inject(self) -> None:
            self.calls.append("inject")
            if self.fail:
                raise RuntimeError("kill -STOP failed")

        def revert(self) -> None:
            self.calls.append("revert")

    path = tmp_path / "f.jsonl"
    with TimelineWriter(path) as writer:
        good = Freeze(fail=False)
        run_fault(writer, good, 0.01)
        bad = Freeze(fail=True)
        with pytest.raises(RuntimeError):
            run_fault(writer, bad, 0.01)
    assert good.calls == bad.calls == ["inject", "revert"]
    windows = fault_windows(read_events(path))
    assert len(windows) == 2 and all(w.end is not None for w in windows)


def test_a_vip_started_before_its_holder_was_fenced_fails_the_safety_check() -> None:
    from hastack.chaos.measure import unfenced_takeovers
    from hastack.chaos.timeline import Fault, Transition

    crash = Fault(T0, "crash-unfenceable", "ctl1", "start")
    safe = [crash, Transition(T0 + 16, "power ctl1", "on", "off", "fence"),
            Transition(T0 + 16.4, "vip internal", None, "ctl2", "sample")]
    assert unfenced_takeovers(safe) == []
    early = [crash, Transition(T0 + 3, "vip internal", None, "ctl2", "sample"),
             Transition(T0 + 16, "power ctl1", "on", "off", "fence")]
    assert unfenced_takeovers(early) == [
        "vip internal started on a survivor before ctl1 was fenced"]
    assert unfenced_takeovers([crash]) == ["ctl1 was never fenced"]


# --- tooz group membership --------------------------------------------------------------------

def members(t: float, *live: str, group: str = "central-global") -> Sample:
    return Sample(T0 + t, "tooz_groups", {group: list(live)})


def test_takeover_is_when_a_member_the_group_had_at_the_fault_is_no_longer_live() -> None:
    events = [*fault(10.0, 30.0, verb="crash", target="ctl2"),
              members(9.5, "a", "b", "c"), members(10.5, "a", "b", "c"),
              members(19.0, "a", "b", "c"), members(19.5, "a", "c"),
              # the restored node's agent joins with a new id: not a takeover
              members(45.0, "a", "c", "d")]
    assert tooz_takeovers(events) == {"central-global": 9.5}
    summary = summarise(events, "ceilometer-central-loss", Expectations(max_takeover_s=11.0))
    assert summary.verdict == "pass" and summary.tooz_takeover_s == {"central-global": 9.5}
    assert [(t.from_, t.to) for t in summary.transitions] == [
        ("3 members", "2 members"), ("2 members", "3 members")]


def test_a_lost_member_that_outlives_the_limit_or_never_leaves_fails_the_run() -> None:
    slow = [*fault(10.0, 30.0), members(9.0, "a", "b"), members(25.0, "a")]
    summary = summarise(slow, "x", Expectations(max_takeover_s=11.0))
    assert summary.verdict == "fail"
    assert summary.reasons == ("tooz group central-global: the lost member stayed 15.00 s "
                               "> 11 s",)
    never = [*fault(10.0, 30.0), members(9.0, "a", "b"), members(25.0, "a", "b")]
    assert summarise(never, "x", Expectations(max_takeover_s=11.0)).reasons == (
        "tooz group central-global: no member left after the fault",)
    # unreadable samples (the Redis master did not answer) count as nothing
    unread = [*fault(10.0, 30.0), members(9.0, "a", "b"),
              Sample(T0 + 12.0, "tooz_groups", {"central-global": None}),
              members(13.0, "a")]
    assert tooz_takeovers(unread) == {"central-global": 3.0}
    # a group first read after the fault has no "before": not reported
    late = [*fault(10.0, 30.0), members(12.0, "a"), members(13.0, "a", group="other")]
    assert tooz_takeovers(late) == {}


def test_an_unsampled_takeover_is_not_a_pass_and_is_not_judged_unless_expected() -> None:
    events = fault(10.0, 30.0)
    assert summarise(events, "x", Expectations(max_takeover_s=11.0)).reasons == (
        "no tooz group was sampled before the fault: the takeover was not measured",)
    assert summarise(events, "x", Expectations()).verdict == "pass"
