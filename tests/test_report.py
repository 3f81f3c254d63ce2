"""Report files: the run plot renders, the tables print, the report files round-trip."""

from __future__ import annotations

import copy
import io
import random
import re
from pathlib import Path
from typing import Any

from rich.console import Console

from hastack.chaos.measure import Expectations, aggregate, ranges, summarise
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
from hastack.report import load_summary, write_run_report
from hastack.report.tables import run_table, suite_table
from hastack.report.timeline_plot import plot_run

T0 = 1_700_000_000.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic_run(seed: int = 1) -> list[Event]:
    """A kill of the VIP holder as LAB-NOTES measured it: VIP gone 0.6 s, SQL back after
    ~3.5 s (two commits in flight end indeterminate), API failing in two windows, one cache
    node's keys missing; the old holder comes back at +15 s and briefly holds the VIP too."""
    rnd = random.Random(seed)
    fault_at, back_at = T0 + 10, T0 + 25
    events: list[Event] = [
        Fault(fault_at, "kill", "ctl1", "start", "start"),
        Fault(back_at, "kill", "ctl1", "end", "start"),
        Transition(fault_at + 3.3, "writer", "ctl1", "ctl2", "haproxy"),
    ]
    for name, service in (("sql", "galera"), ("amqp", "rabbitmq"), ("api", "standin-api"),
                          ("cache", "memcached")):
        events.append(WorkloadMark(T0, name, "start", {"run": "r1", "service": service}))

    def lane(name: str, op: str, rate: float, windows: list[tuple[float, float]],
             indeterminate: tuple[float, ...] = ()) -> None:
        t, seq = T0, 0
        while t < T0 + 35:
            rel = t - fault_at
            outcome: Outcome = "ok"
            latency = rnd.uniform(0.002, 0.02)
            error = ""
            if any(a <= rel < b for a, b in windows):
                outcome, latency, error = "fail", rnd.uniform(0.001, 0.3), "connect refused"
            if any(abs(rel - x) < 0.5 / rate for x in indeterminate):
                outcome, latency, error = "indeterminate", 2.0, "commit: 2013 timed out"
            kind, result = op, None
            if name == "cache" and seq % 2:
                kind, result = "get", "hit" if rnd.random() > (0.3 if rel > 0 else 0.02) \
                    else "miss"
            if outcome != "ok":
                result = None
            events.append(Request(t, name, kind, outcome, latency, error, "ctl1", seq, result))
            seq += 1
            t = max(t + 1 / rate, t + latency)

    lane("sql", "insert", 10, [(0.6, 3.5)], indeterminate=(0.0,))
    lane("amqp", "publish", 10, [(0.0, 0.9)])
    lane("api", "get", 5, [(0.1, 1.6), (3.0, 4.2)])
    lane("cache", "set", 5, [(0.0, 0.4)])
    sql = [e for e in events if isinstance(e, Request) and e.workload == "sql"]
    present = [r.id for r in sql if r.id is not None and r.outcome != "fail"]
    events.append(Check(T0 + 40, "sql", {"run": "r1", "present": ranges(present)}))
    pubs = [e for e in events if isinstance(e, Request) and e.workload == "amqp" and e.ok]
    events += [Delivery(p.t + 0.05, "amqp", p.id or 0, "rabbit2", "r1") for p in pubs]
    events.append(Check(T0 + 41, "amqp", {"run": "r1", "drained": True}))
    t = T0
    while t < T0 + 35:
        rel = t - fault_at
        holders = (["ctl1"] if rel < 0 else [] if rel < 0.6 else
                   ["ctl1", "ctl2"] if 15.2 <= rel < 15.5 else ["ctl2"])
        events.append(Sample(t, "vip_holders", {"public": holders}))
        t += 0.1
    return sorted(events, key=lambda e: e.t)


def test_plot_renders_a_png(tmp_path: Path) -> None:
    events = synthetic_run()
    summary = summarise(events, "kill VIP holder (ctl1)",
                        Expectations(max_downtime_s={"api": 5.0}, max_dual_vip_s=0.0))
    path = plot_run(events, summary, tmp_path / "timeline.png")
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000


def test_plot_of_a_run_without_faults_or_samples(tmp_path: Path) -> None:
    events: list[Event] = [Request(T0 + i / 10, "api", "get", "ok", 0.01) for i in range(30)]
    path = plot_run(events, summarise(events, "baseline"), tmp_path / "p.png")
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_write_run_report_and_tables(tmp_path: Path) -> None:
    events = synthetic_run()
    summary = summarise(events, "kill-vip-holder", Expectations(max_dual_vip_s=0.0),
                        results_dir=str(tmp_path))
    files = write_run_report(tmp_path, events, summary)
    assert files["plot"].exists()
    loaded = load_summary(tmp_path)
    assert loaded["verdict"] == "fail" and loaded["workloads"]["sql"]["lost"] == 0
    console = Console(record=True, width=160)
    console.print(run_table(loaded))
    text = console.export_text()
    for needle in ("sql", "galera", "standin-api", "lost 0", "FAIL", "two nodes held one VIP"):
        assert needle in text, needle
    agg = aggregate([loaded, loaded])
    console.print(run_table(agg))
    console.print(suite_table([loaded, agg]))
    text = console.export_text()
    assert "kill-vip-holder" in text and "runs: 2" in text
    assert re.search(r"scenario +down +down +down +down +lost +VIP +verdict", text), text


# The built-in scenarios' names (hastack.chaos.scenarios), the longest ones included.
SCENARIO_NAMES = ("vip-holder-crash", "galera-writer-crash", "rabbit-node-crash",
                  "memcached-node-loss", "controller-freeze", "controller-partition",
                  "vip-holder-isolate", "haproxy-kill", "rolling-restart", "power-loss",
                  "stale-node-trap")


def _render_80(*renderables: Any) -> list[str]:
    """What a pipe or an 80-column terminal shows."""
    out = io.StringIO()
    console = Console(width=80, file=out)
    for renderable in renderables:
        console.print(renderable)
    return out.getvalue().splitlines()


def test_tables_fit_80_columns_without_cutting_names() -> None:
    summaries = [summarise(synthetic_run(i + 1), name, Expectations(max_dual_vip_s=0.0),
                           results_dir=f"/tmp/results/20240101-120000-{name}").as_dict()
                 for i, name in enumerate(SCENARIO_NAMES)]
    repeats = aggregate([summarise(synthetic_run(seed), "controller-partition").as_dict()
                         for seed in (1, 2, 3)])
    slow = copy.deepcopy(summaries[-2])            # power-loss: long downtimes, many losses
    for w in slow["workloads"].values():
        w["downtime_s"] = 123.456
    slow["workloads"]["sql"]["lost"] = 1234
    slow["workloads"]["amqp"]["lost"] = 5678
    summaries[-2] = slow

    lines = _render_80(suite_table([*summaries, repeats]), run_table(summaries[1]),
                       run_table(repeats))
    too_wide = [line for line in lines if len(line) > 80]
    assert not too_wide, too_wide
    text = "\n".join(lines)
    assert "…" not in text
    suite_rows = {line.split()[0] for line in lines if line.strip()}
    for name in SCENARIO_NAMES:
        assert name in suite_rows, name
    for needle in ("chaos: galera-writer-crash", "chaos: controller-partition", "standin-api",
                   "lost 0", "runs: 3", "123", "1234/5678"):
        assert needle in text, needle


def test_suite_table_shows_the_worst_of_repeats_and_run_table_every_range() -> None:
    runs = [summarise(synthetic_run(seed), "galera-writer-crash").as_dict() for seed in (1, 2)]
    runs[1]["workloads"]["sql"]["downtime_s"] = 9.5
    repeats = aggregate(runs)
    low = min(r["workloads"]["sql"]["downtime_s"] for r in runs)
    suite = "\n".join(_render_80(suite_table([repeats])))
    assert "≤9.50" in suite and "worst run" in suite
    detail = "\n".join(_render_80(run_table(repeats)))
    assert f"{low:.2f}–9.50" in detail
