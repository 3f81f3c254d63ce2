"""Measurements of one chaos run, derived from its timeline alone (pure: events in, numbers out).

Definitions (the same for every workload, so numbers compare across scenarios):

- errors: requests whose outcome is not `ok` (fail + indeterminate).
- downtime_s: client-visible downtime as the OpenStack reliability test plan defines it — from
  the first failed request to the last failed request of an outage. A failure belongs to the
  latest fault that had started when the request *ended*. One fault can cause several outages
  (a crash, then the node's rejoin when it is healed): an outage ends at a success, so the
  service between them, which clients saw working, is not downtime. Each outage runs from its
  first failure's issue time to its last failure's end; summed over outages and faults; 0
  when nothing failed. Failures before any fault are
  `baseline_errors` and are not downtime (with no fault at all, the whole run is one window).
- max_gap_s: the longest time between two consecutive successful completions — what a user
  polling at this rate would call "it hung". With fewer than two successes: the run's span.
- mttr_s: fault start → end of the first success issued after the fault's last failure; 0 when
  nothing failed, None when no success followed (never recovered). The worst fault counts.
- SQL writes use Jepsen's set checker (`classify_set`); AMQP messages `classify_queue`.
- dual_vip_holder_s: seconds during which periodic `vip_holders` samples saw two or more nodes
  holding one VIP; each sample holds until the next (the last for the median interval).
- tooz_takeover_s: per tooz group (Ceilometer's central agents), from the first fault's start
  to the first `tooz_groups` sample whose live members lack one the group had when the fault
  began: when tooz counts the lost agent gone (its heartbeat expired). Each survivor's hash
  ring drops it at that survivor's next poll, one polling interval later at most. None when
  no member left during the run; groups not sampled before the fault are not reported.
"""

from __future__ import annotations

import bisect
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hastack.chaos.timeline import (
    Check,
    Delivery,
    Event,
    Fault,
    Outcome,
    Request,
    Sample,
    Transition,
    WorkloadMark,
)

VIP_HOLDERS = "vip_holders"
TOOZ_GROUPS = "tooz_groups"       # sample value: {group: [live member, ...] | None}
# Default service measured by each workload when its timeline does not say.
DEFAULT_SERVICE = {"sql": "galera", "amqp": "rabbitmq", "api": "standin-api",
                   "cache": "memcached"}


# ---------------------------------------------------------------------------------------------
# Availability


@dataclass(frozen=True)
class FaultWindow:
    verb: str
    target: str
    start: float
    end: float | None            # None: never reverted in this run


@dataclass(frozen=True)
class Availability:
    requests: int
    ok: int
    errors: int
    indeterminate: int
    downtime_s: float
    max_gap_s: float
    mttr_s: float | None
    available_again: bool        # a success followed the last failure (or nothing failed)
    baseline_errors: int
    error_counts: dict[str, int] = field(default_factory=dict)


def fault_windows(events: Sequence[Event]) -> list[FaultWindow]:
    """Pair each fault `start` with the next `end` of the same verb and target."""
    windows: list[FaultWindow] = []
    open_: dict[tuple[str, str], int] = {}
    for e in sorted((e for e in events if isinstance(e, Fault)), key=lambda e: e.t):
        key = (e.verb, e.target)
        if e.phase == "start":
            open_[key] = len(windows)
            windows.append(FaultWindow(e.verb, e.target, e.t, None))
        elif key in open_:
            index = open_.pop(key)
            w = windows[index]
            windows[index] = FaultWindow(w.verb, w.target, w.start, e.t)
    return windows


def _outages(fails: Sequence[Request], oks: Sequence[Request]) -> list[list[Request]]:
    """Failures (issue order) split wherever a success was issued between two of them."""
    ok_starts = sorted(o.t for o in oks)
    outages: list[list[Request]] = []
    for f in sorted(fails, key=lambda f: f.t):
        if outages:
            previous = outages[-1][-1].t
            served = bisect.bisect_right(ok_starts, previous) < bisect.bisect_left(ok_starts, f.t)
            if not served:
                outages[-1].append(f)
                continue
        outages.append([f])
    return outages


def availability(requests: Sequence[Request], fault_starts: Sequence[float] = ()) -> Availability:
    reqs = sorted(requests, key=lambda r: r.t)
    failures = [r for r in reqs if not r.ok]
    oks = [r for r in reqs if r.ok]
    starts = sorted(fault_starts)

    # Attribute each failure to the latest fault started before it ended.
    by_fault: dict[int, list[Request]] = {}
    baseline = 0
    for r in failures:
        index = _latest_at_or_before(starts, r.end)
        if index is None:
            if starts:
                baseline += 1
                continue
            index = -1                      # no faults: the whole run is one window
        by_fault.setdefault(index, []).append(r)

    downtime = 0.0
    mttr: float | None = 0.0
    for index, fails in by_fault.items():
        first = min(f.t for f in fails)
        last = max(fails, key=lambda f: f.t)
        downtime += sum(max(f.end for f in outage) - outage[0].t
                        for outage in _outages(fails, oks))
        after = [o for o in oks if o.t > last.t]
        origin = starts[index] if index >= 0 else first
        if not after:
            mttr = None
        elif mttr is not None:
            mttr = max(mttr, min(o.end for o in after) - origin)
    if not failures:
        available_again = True
    else:
        last_failure = max(f.t for f in failures)
        available_again = any(o.t > last_failure for o in oks)

    ends = sorted(o.end for o in oks)
    if len(ends) >= 2:
        max_gap = max(b - a for a, b in zip(ends, ends[1:], strict=False))
    elif reqs:
        max_gap = max(r.end for r in reqs) - reqs[0].t
    else:
        max_gap = 0.0

    return Availability(
        requests=len(reqs), ok=len(oks), errors=len(failures),
        indeterminate=sum(1 for r in failures if r.outcome == "indeterminate"),
        downtime_s=round(downtime, 3), max_gap_s=round(max_gap, 3),
        mttr_s=None if mttr is None else round(mttr, 3), available_again=available_again,
        baseline_errors=baseline,
        error_counts=dict(Counter(r.error or r.outcome for r in failures).most_common()),
    )


def _latest_at_or_before(starts: Sequence[float], t: float) -> int | None:
    found = None
    for i, s in enumerate(starts):
        if s <= t:
            found = i
    return found


# ---------------------------------------------------------------------------------------------
# Writes: Jepsen's set checker


@dataclass(frozen=True)
class SetCheck:
    """Every attempted write classified against what was read back afterwards."""

    attempted: int
    acked: int
    failed: int
    indeterminate: int
    ok: int                                   # acknowledged and present
    lost: tuple[int, ...]                     # acknowledged but missing: data loss
    recovered: tuple[int, ...]                # indeterminate and present (committed after all)
    unexpected: tuple[int, ...]               # present but never attempted
    failed_but_present: tuple[int, ...]       # reported failed yet committed: a client lie
    indeterminate_absent: int                 # indeterminate and missing (never committed)


def classify_set(outcomes: Mapping[int, Outcome], present: Iterable[int]) -> SetCheck:
    present_set = set(present)
    acked = {i for i, o in outcomes.items() if o == "ok"}
    failed = {i for i, o in outcomes.items() if o == "fail"}
    unsure = {i for i, o in outcomes.items() if o == "indeterminate"}
    return SetCheck(
        attempted=len(outcomes), acked=len(acked), failed=len(failed), indeterminate=len(unsure),
        ok=len(acked & present_set),
        lost=tuple(sorted(acked - present_set)),
        recovered=tuple(sorted(unsure & present_set)),
        unexpected=tuple(sorted(present_set - set(outcomes))),
        failed_but_present=tuple(sorted(failed & present_set)),
        indeterminate_absent=len(unsure - present_set),
    )


def write_outcomes(requests: Sequence[Request], op: str) -> dict[int, Outcome]:
    """id → outcome of each write. Ids are never retried; if one repeats, the strongest claim
    wins (ok over indeterminate over fail), so a lost write is never hidden."""
    rank = {"fail": 0, "indeterminate": 1, "ok": 2}
    outcomes: dict[int, Outcome] = {}
    for r in requests:
        if r.op != op or r.id is None:
            continue
        if r.id not in outcomes or rank[r.outcome] > rank[outcomes[r.id]]:
            outcomes[r.id] = r.outcome
    return outcomes


def ranges(ids: Iterable[int]) -> list[list[int]]:
    """[1,2,3,7,8] → [[1,3],[7,8]]: id sets as they are stored in check events."""
    out: list[list[int]] = []
    for i in sorted(set(ids)):
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def from_ranges(pairs: Iterable[Sequence[int]]) -> list[int]:
    return [i for lo, hi in pairs for i in range(lo, hi + 1)]


# ---------------------------------------------------------------------------------------------
# Messages


@dataclass(frozen=True)
class QueueCheck:
    published: int
    confirmed: int
    nacked: int
    indeterminate: int
    delivered: int                            # distinct ids received
    drained: bool                             # the check phase emptied the queue
    lost: tuple[int, ...]                     # confirmed, never consumed
    duplicated: tuple[int, ...]               # consumed more than once
    unconfirmed_delivered: tuple[int, ...]    # nacked/indeterminate/failed, consumed anyway
    unexpected: tuple[int, ...]               # consumed, never published in this run


def classify_queue(outcomes: Mapping[int, Outcome], deliveries: Sequence[int],
                   drained: bool) -> QueueCheck:
    seen = Counter(deliveries)
    confirmed = {i for i, o in outcomes.items() if o == "ok"}
    return QueueCheck(
        published=len(outcomes), confirmed=len(confirmed),
        nacked=sum(1 for o in outcomes.values() if o == "fail"),
        indeterminate=sum(1 for o in outcomes.values() if o == "indeterminate"),
        delivered=len(seen), drained=drained,
        lost=tuple(sorted(confirmed - set(seen))),
        duplicated=tuple(sorted(i for i, n in seen.items() if n > 1)),
        unconfirmed_delivered=tuple(sorted(i for i in seen if i in outcomes
                                           and outcomes[i] != "ok")),
        unexpected=tuple(sorted(i for i in seen if i not in outcomes)),
    )


# ---------------------------------------------------------------------------------------------
# VIP holders


@dataclass(frozen=True)
class HolderSpan:
    vip: str
    start: float
    end: float
    holders: tuple[str, ...]


def vip_holder_spans(events: Sequence[Event]) -> list[HolderSpan]:
    """Sample-and-hold: each `vip_holders` sample holds until the next one; the last holds
    for the median sampling interval (so a split seen only at the end still counts)."""
    samples = sorted((e for e in events if isinstance(e, Sample) and e.what == VIP_HOLDERS
                      and isinstance(e.value, dict)), key=lambda e: e.t)
    if not samples:
        return []
    steps = [b.t - a.t for a, b in zip(samples, samples[1:], strict=False)]
    tail = statistics.median(steps) if steps else 0.0
    spans: list[HolderSpan] = []
    for i, s in enumerate(samples):
        end = samples[i + 1].t if i + 1 < len(samples) else s.t + tail
        for vip, holders in s.value.items():
            spans.append(HolderSpan(vip, s.t, end, tuple(sorted(holders or ()))))
    return spans


def dual_vip_holder_seconds(events: Sequence[Event]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for span in vip_holder_spans(events):
        totals.setdefault(span.vip, 0.0)
        if len(span.holders) >= 2:
            totals[span.vip] += span.end - span.start
    return {vip: round(s, 3) for vip, s in totals.items()}


def holder_transitions(events: Sequence[Event]) -> list[Transition]:
    """A transition each time the sampled holder set of a VIP changes."""
    last: dict[str, tuple[str, ...]] = {}
    out: list[Transition] = []
    for span in vip_holder_spans(events):
        before = last.get(span.vip)
        if before is not None and before != span.holders:
            out.append(Transition(span.start, f"vip {span.vip}", _names(before),
                                  _names(span.holders), "sample"))
        last[span.vip] = span.holders
    return out


def _names(holders: tuple[str, ...]) -> str | None:
    return "+".join(holders) if holders else None


# ---------------------------------------------------------------------------------------------
# tooz group membership


def _group_samples(events: Sequence[Event]) -> list[tuple[float, str, frozenset[str]]]:
    """(t, group, live members) of every `tooz_groups` sample that read the group."""
    out = []
    for e in sorted((e for e in events if isinstance(e, Sample) and e.what == TOOZ_GROUPS
                     and isinstance(e.value, dict)), key=lambda e: e.t):
        for group, members in e.value.items():
            if isinstance(members, list):
                out.append((e.t, str(group), frozenset(map(str, members))))
    return out


def tooz_takeovers(events: Sequence[Event]) -> dict[str, float | None]:
    """Per sampled group: seconds from the first fault's start until a member it had then is
    no longer live (None: none left)."""
    windows = fault_windows(events)
    samples = _group_samples(events)
    if not windows or not samples:
        return {}
    start = windows[0].start
    before: dict[str, frozenset[str]] = {}
    takeover: dict[str, float | None] = {}
    for t, group, members in samples:
        if t <= start:
            before[group] = members
            takeover[group] = None
        elif group in before and takeover[group] is None and before[group] - members:
            takeover[group] = round(t - start, 3)
    return takeover


def group_transitions(events: Sequence[Event]) -> list[Transition]:
    """A transition each time a sampled group's number of live members changes."""
    last: dict[str, int] = {}
    out: list[Transition] = []
    for t, group, members in _group_samples(events):
        if group in last and last[group] != len(members):
            out.append(Transition(t, f"tooz {group}", f"{last[group]} members",
                                  f"{len(members)} members", "sample"))
        last[group] = len(members)
    return out


# ---------------------------------------------------------------------------------------------
# Summary and verdict


@dataclass(frozen=True)
class Expectations:
    """What a scenario promises. Downtime limits are per workload (missing: not judged)."""

    max_lost_writes: int = 0
    max_lost_messages: int = 0
    max_downtime_s: Mapping[str, float] = field(default_factory=dict)
    max_dual_vip_s: float | None = None
    # Most a lost agent may stay a live member of its tooz group (None: not judged).
    max_takeover_s: float | None = None
    must_recover: bool = True
    # A lost node's VIPs start elsewhere only after it was fenced (the fence event in the
    # timeline comes first): Pacemaker's safety before availability.
    vips_wait_for_fencing: bool = False


@dataclass(frozen=True)
class WorkloadSummary:
    workload: str
    service: str
    availability: Availability
    writes: SetCheck | None = None            # sql, after its check phase
    acked: int = 0                            # sql, from the requests (known even unchecked)
    messages: QueueCheck | None = None        # amqp
    hits: int | None = None                   # cache
    misses: int | None = None

    def as_dict(self) -> dict[str, Any]:
        a = self.availability
        out: dict[str, Any] = {
            "service": self.service, "requests": a.requests, "ok": a.ok, "errors": a.errors,
            "downtime_s": a.downtime_s, "max_gap_s": a.max_gap_s, "mttr_s": a.mttr_s,
            "available_again": a.available_again, "baseline_errors": a.baseline_errors,
            "error_counts": a.error_counts,
        }
        if self.workload == "sql" or self.writes is not None:
            w = self.writes
            out.update({
                "acked": self.acked, "checked": w is not None,
                "indeterminate": a.indeterminate if w is None else w.indeterminate,
                "lost": None if w is None else len(w.lost),
                "recovered": None if w is None else len(w.recovered),
                "unexpected": None if w is None else len(w.unexpected),
                "failed_but_present": None if w is None else len(w.failed_but_present),
                "lost_ids": [] if w is None else list(w.lost),
                "unexpected_ids": [] if w is None else list(w.unexpected),
                "failed_but_present_ids": [] if w is None else list(w.failed_but_present),
            })
        if self.messages is not None:
            m = self.messages
            out.update({
                "published": m.published, "confirmed": m.confirmed, "nacked": m.nacked,
                "indeterminate": m.indeterminate, "delivered": m.delivered,
                "drained": m.drained, "lost": len(m.lost), "duplicated": len(m.duplicated),
                "unconfirmed_delivered": len(m.unconfirmed_delivered),
                "unexpected": len(m.unexpected), "lost_ids": list(m.lost),
                "duplicated_ids": list(m.duplicated),
            })
        if self.hits is not None:
            out.update({"hits": self.hits, "misses": self.misses})
        return out


@dataclass(frozen=True)
class RunSummary:
    scenario: str
    verdict: str                              # pass | fail
    reasons: tuple[str, ...]
    workloads: dict[str, WorkloadSummary]
    dual_vip_holder_s: float
    dual_vip_by_vip: dict[str, float]
    transitions: tuple[Transition, ...]
    faults: tuple[FaultWindow, ...]
    origin: float                             # t of the first fault start (or the first event)
    results_dir: str | None = None
    tooz_takeover_s: dict[str, float | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario, "verdict": self.verdict, "reasons": list(self.reasons),
            "workloads": {name: w.as_dict() for name, w in self.workloads.items()},
            "dual_vip_holder_s": self.dual_vip_holder_s,
            "dual_vip_by_vip": self.dual_vip_by_vip,
            "tooz_takeover_s": self.tooz_takeover_s,
            "transitions": [
                {"t": round(t.t, 3), "t_rel": round(t.t - self.origin, 3), "what": t.what,
                 "from": t.from_, "to": t.to, "source": t.source} for t in self.transitions
            ],
            "faults": [
                {"verb": f.verb, "target": f.target, "start_rel": round(f.start - self.origin, 3),
                 "end_rel": None if f.end is None else round(f.end - self.origin, 3)}
                for f in self.faults
            ],
            "origin": round(self.origin, 3),
            "results_dir": self.results_dir,
        }


def summarise(events: Sequence[Event], scenario: str,
              expectations: Expectations | None = None,
              results_dir: str | None = None) -> RunSummary:
    """Everything `hastack chaos` reports about one run, with its verdict."""
    expectations = expectations or Expectations()
    windows = fault_windows(events)
    starts = [w.start for w in windows]
    names = list(dict.fromkeys(
        e.workload for e in events if isinstance(e, Request | WorkloadMark)))
    workloads = {name: _workload_summary(name, events, starts) for name in names}
    dual = dual_vip_holder_seconds(events)
    explicit = [e for e in events if isinstance(e, Transition)]
    transitions = tuple(sorted([*explicit, *holder_transitions(events),
                                *group_transitions(events)], key=lambda t: t.t))
    origin = starts[0] if starts else (min(e.t for e in events) if events else 0.0)
    dual_total = round(sum(dual.values()), 3)
    takeovers = tooz_takeovers(events)
    reasons = tuple([*verdict_reasons(workloads, dual_total, expectations),
                     *(unfenced_takeovers(events) if expectations.vips_wait_for_fencing
                       else []),
                     *_takeover_reasons(takeovers, expectations)])
    return RunSummary(scenario, "fail" if reasons else "pass", reasons, workloads, dual_total,
                      dual, transitions, tuple(windows), origin, results_dir, takeovers)


def _takeover_reasons(takeovers: Mapping[str, float | None],
                      expect: Expectations) -> list[str]:
    limit = expect.max_takeover_s
    if limit is None:
        return []
    if not takeovers:
        return ["no tooz group was sampled before the fault: the takeover was not measured"]
    reasons = []
    for group, seconds in takeovers.items():
        if seconds is None:
            reasons.append(f"tooz group {group}: no member left after the fault")
        elif seconds > limit:
            reasons.append(f"tooz group {group}: the lost member stayed {seconds:.2f} s "
                           f"> {limit:g} s")
    return reasons


def _workload_summary(name: str, events: Sequence[Event], starts: Sequence[float]
                      ) -> WorkloadSummary:
    requests = [e for e in events if isinstance(e, Request) and e.workload == name]
    marks = [e for e in events if isinstance(e, WorkloadMark) and e.workload == name]
    service = DEFAULT_SERVICE.get(name, name)
    for m in marks:
        service = str(m.detail.get("service", service))
    avail = availability(requests, starts)
    checks = [e for e in events if isinstance(e, Check) and e.workload == name]
    summary = WorkloadSummary(name, service, avail)
    if name == "sql":
        outcomes = write_outcomes(requests, "insert")
        acked = sum(1 for o in outcomes.values() if o == "ok")
        writes = None
        if checks:
            writes = classify_set(outcomes, from_ranges(checks[-1].value.get("present", [])))
        summary = WorkloadSummary(name, service, avail, writes=writes, acked=acked)
    elif name == "amqp":
        outcomes = write_outcomes(requests, "publish")
        runs = {str(m.detail["run"]) for m in marks if "run" in m.detail}
        delivered = [e.id for e in events if isinstance(e, Delivery) and e.workload == name
                     and (e.run is None or not runs or e.run in runs)]
        drained = any(bool(c.value.get("drained")) for c in checks)
        summary = WorkloadSummary(name, service, avail,
                                  messages=classify_queue(outcomes, delivered, drained))
    elif name == "cache":
        gets = [r for r in requests if r.op == "get" and r.ok]
        summary = WorkloadSummary(name, service, avail,
                                  hits=sum(1 for r in gets if r.result == "hit"),
                                  misses=sum(1 for r in gets if r.result != "hit"))
    return summary


def verdict_reasons(workloads: Mapping[str, WorkloadSummary], dual_vip_s: float,
                    expect: Expectations) -> list[str]:
    """Why the run fails; empty when it passes. Unknowns fail: an unchecked write set or an
    undrained queue cannot prove that nothing was lost."""
    reasons: list[str] = []
    for name, w in workloads.items():
        a = w.availability
        if a.requests == 0:
            reasons.append(f"{name}: no requests recorded")
            continue
        limit = expect.max_downtime_s.get(name)
        if limit is not None and a.downtime_s > limit:
            reasons.append(f"{name}: downtime {a.downtime_s:.2f} s > {limit:g} s")
        if expect.must_recover and not a.available_again:
            reasons.append(f"{name}: no successful request after the last failure")
        if name == "sql":
            reasons += _write_reasons(w, expect)
        if w.messages is not None:
            reasons += _message_reasons(w.messages, expect)
    for name in expect.max_downtime_s:
        if name not in workloads:
            reasons.append(f"{name}: expected workload did not run")
    if expect.max_dual_vip_s is not None and dual_vip_s > expect.max_dual_vip_s:
        reasons.append(f"two nodes held one VIP for {dual_vip_s:.2f} s "
                       f"> {expect.max_dual_vip_s:g} s")
    return reasons


def unfenced_takeovers(events: Sequence[Event]) -> list[str]:
    """For every node a fault took down: a VIP that started on another node before the node
    was fenced (`power <node>` to off), or a node never fenced at all."""
    reasons = []
    for fault in (e for e in events if isinstance(e, Fault) and e.phase == "start"):
        node = fault.target
        fenced = [e.t for e in events if isinstance(e, Transition) and e.t >= fault.t
                  and e.what == f"power {node}" and e.to == "off"]
        if not fenced:
            reasons.append(f"{node} was never fenced")
            continue
        early = sorted({e.what for e in events if isinstance(e, Transition)
                        and e.what.startswith("vip ") and fault.t <= e.t < fenced[0]
                        and e.to not in (None, node)})
        reasons += [f"{vip} started on a survivor before {node} was fenced" for vip in early]
    return reasons


def _write_reasons(w: WorkloadSummary, expect: Expectations) -> list[str]:
    s = w.writes
    if s is None:
        return ["sql: no check phase in the timeline: lost writes unknown"]
    reasons = []
    if len(s.lost) > expect.max_lost_writes:
        reasons.append(f"sql: {len(s.lost)} acknowledged writes lost "
                       f"(max {expect.max_lost_writes}): ids {_few(s.lost)}")
    if s.unexpected:
        reasons.append(f"sql: {len(s.unexpected)} rows present but never written: "
                       f"ids {_few(s.unexpected)}")
    if s.failed_but_present:
        reasons.append(f"sql: {len(s.failed_but_present)} writes reported failed but present "
                       f"(client classification wrong?): ids {_few(s.failed_but_present)}")
    return reasons


def _message_reasons(m: QueueCheck, expect: Expectations) -> list[str]:
    if not m.drained:
        return ["amqp: queue not drained by a check phase: lost messages unknown"]
    reasons = []
    if len(m.lost) > expect.max_lost_messages:
        reasons.append(f"amqp: {len(m.lost)} confirmed messages lost "
                       f"(max {expect.max_lost_messages}): ids {_few(m.lost)}")
    if m.unexpected:
        reasons.append(f"amqp: {len(m.unexpected)} messages consumed but never published: "
                       f"ids {_few(m.unexpected)}")
    return reasons


def _few(ids: Sequence[int], limit: int = 8) -> str:
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f" … (+{len(ids) - limit})" if len(ids) > limit else "")


# ---------------------------------------------------------------------------------------------
# --repeat N


def aggregate(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Fold the `as_dict()` summaries of N runs of one scenario: every numeric field becomes
    {"median", "min", "max"} (None values skipped); booleans hold if they held in every run;
    equal strings are kept; lists of ids are dropped (see each run); the verdict
    passes only if every run passed, with each failing run's reasons kept."""
    if not summaries:
        return {"runs": 0, "verdict": "fail", "reasons": ["no runs"]}
    verdicts = [str(s.get("verdict")) for s in summaries]
    reasons = [f"run {i + 1}: {r}" for i, s in enumerate(summaries) for r in s.get("reasons", [])]
    out: dict[str, Any] = {
        "scenario": summaries[0].get("scenario"),
        "runs": len(summaries),
        "verdict": "pass" if all(v == "pass" for v in verdicts) else "fail",
        "verdicts": verdicts,
        "reasons": reasons,
        "workloads": _fold([s.get("workloads", {}) for s in summaries]),
        "dual_vip_holder_s": _fold([s.get("dual_vip_holder_s") for s in summaries]),
        "tooz_takeover_s": _fold([s.get("tooz_takeover_s") or None for s in summaries]),
        "results_dirs": [s.get("results_dir") for s in summaries],
    }
    return out


def _fold(values: Sequence[Any]) -> Any:
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, dict) for v in present):
        keys = list(dict.fromkeys(k for v in present for k in v))
        folded = {k: _fold([v.get(k) for v in present]) for k in keys}
        return {k: v for k, v in folded.items() if v is not None}
    if all(isinstance(v, bool) for v in present):
        return all(present)                   # "available_again" only if it always was
    if all(isinstance(v, int | float) for v in present):
        return {"median": statistics.median(present), "min": min(present),
                "max": max(present)}
    if all(isinstance(v, str) for v in present) and len(set(present)) == 1:
        return present[0]
    return None
