"""One chaos run's timeline as SVG, for the HTML report: the lanes of `timeline_plot` (requests
per workload, the fault window, who held each VIP, the Galera writer, the transitions), drawn
as vector text a browser can search, print sharply and explain on hover (every bar carries
a <title>: how many requests, which errors, when).

Requests are drawn as runs: consecutive requests of a workload with the same outcome and no
silence longer than `RUN_GAP_S` between them are one bar, so a lane stays a handful of
elements however long the run. Pure: events and the run's summary in, SVG text out;
coordinates are rounded, so the same timeline gives the same bytes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from hastack.chaos.measure import VIP_HOLDERS, fault_windows, vip_holder_spans
from hastack.chaos.timeline import Event, Fault, Request, Sample, Transition
from hastack.chaos.workloads import in_workload_order

WIDTH = 1200
LEFT = 150
RIGHT = 16
LANE_H = 30
TOP = 30
RUN_GAP_S = 0.5
WRITER = "galera_writer"
COLOURS = {"ok": "#2e9d48", "fail": "#d62728", "indeterminate": "#ff8c00"}
NODE_PALETTE = ("#4c72b0", "#8172b2", "#64b5cd", "#55a868", "#ccb974", "#937860", "#da8bc3")
FONT = 'font-family="DejaVu Sans, Verdana, sans-serif"'


@dataclass(frozen=True)
class _Run:
    outcome: str
    start: float
    end: float
    requests: tuple[Request, ...]


def request_runs(requests: Sequence[Request]) -> list[_Run]:
    """Consecutive requests with one outcome, no silence longer than RUN_GAP_S, as one run."""
    runs: list[_Run] = []
    for r in sorted(requests, key=lambda r: r.t):
        last = runs[-1] if runs else None
        if last is not None and last.outcome == r.outcome and r.t - last.end <= RUN_GAP_S:
            runs[-1] = _Run(last.outcome, last.start, max(last.end, r.end),
                            (*last.requests, r))
        else:
            runs.append(_Run(r.outcome, r.t, r.end, (r,)))
    return runs


def timeline_svg(events: Sequence[Event], summary: Mapping[str, Any], label: str) -> str:
    requests = [e for e in events if isinstance(e, Request)]
    workloads = in_workload_order(r.workload for r in requests)
    spans = vip_holder_spans(events)
    vips = list(dict.fromkeys(s.vip for s in spans))
    writers = sorted((e for e in events if isinstance(e, Sample) and e.what == WRITER),
                     key=lambda e: e.t)
    drawn = [e for e in events if isinstance(e, Request | Fault | Transition)
             or (isinstance(e, Sample) and e.what in (VIP_HOLDERS, WRITER))]
    if not drawn:
        return ""
    origin = float(summary.get("origin") or min(e.t for e in drawn))
    t_min = min(e.t for e in drawn) - origin
    t_max = max([e.t for e in drawn] + [r.end for r in requests]) - origin
    span = max(t_max - t_min, 1.0)

    def x(t: float) -> float:
        return round(LEFT + (t - origin - t_min) / span * (WIDTH - LEFT - RIGHT), 1)

    lanes = [("workload", w) for w in workloads] + [("vip", v) for v in vips]
    if writers:
        lanes.append(("writer", WRITER))
    height = TOP + LANE_H * len(lanes) + 40
    out: list[str] = []
    bottom = TOP + LANE_H * len(lanes)
    for w in fault_windows(events):
        x0 = x(w.start)
        x1 = x(w.end) if w.end is not None else WIDTH - RIGHT
        out.append(f'<g class="fault"><title>{escape(w.verb)} {escape(w.target)} '
                   f'{_rel(w.start - origin)}'
                   + (f" … undone {_rel(w.end - origin)}" if w.end is not None else
                      " … never undone") + '</title>'
                   f'<rect x="{x0}" y="{TOP - 6}" width="{round(max(x1 - x0, 1), 1)}" '
                   f'height="{bottom - TOP + 6}" fill="#d62728" fill-opacity="0.08" />'
                   f'<line x1="{x0}" y1="{TOP - 6}" x2="{x0}" y2="{bottom}" stroke="#d62728" />'
                   f'<text x="{x0 + 3}" y="{TOP - 10}" font-size="11" font-weight="bold" '
                   f'fill="#d62728">{escape(w.verb)} {escape(w.target)}</text></g>')
    colour = _node_colours(spans, writers)
    workload_info = summary.get("workloads") or {}
    for i, (kind, name) in enumerate(lanes):
        y = TOP + i * LANE_H
        if kind == "workload":
            out.append(_workload_lane(name, [r for r in requests if r.workload == name],
                                      workload_info.get(name) or {}, y, x, origin))
        elif kind == "vip":
            out.append(_holder_lane(f"VIP {name}", [(s.start, s.end, s.holders) for s in spans
                                                    if s.vip == name], y, x, origin, colour))
        else:
            out.append(_holder_lane("Galera writer", _writer_spans(writers), y, x, origin,
                                    colour))
    for t in summary.get("transitions") or []:
        if t.get("source") == "sample":
            continue               # VIP moves are the VIP lanes themselves
        tx = x(origin + float(t["t_rel"]))
        out.append(f'<g class="transition"><title>{_rel(float(t["t_rel"]))} '
                   f'{escape(str(t["what"]))}: {escape(str(t.get("from") or "-"))} → '
                   f'{escape(str(t.get("to") or "-"))}</title>'
                   f'<line x1="{tx}" y1="{TOP}" x2="{tx}" y2="{bottom}" stroke="#555555" '
                   f'stroke-dasharray="2 2" /></g>')
    out.append(_axis(t_min, t_max, bottom, x, origin))
    verdict = str(summary.get("verdict", ""))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img" '
            f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" {FONT}>'
            f'<title>timeline of {escape(label)}: {escape(verdict)}</title>'
            + "".join(out) + "</svg>")


def _rel(t: float) -> str:
    return f"{t:+.2f} s"


def _workload_lane(name: str, requests: Sequence[Request], info: Mapping[str, Any], y: int,
                   x: Any, origin: float) -> str:
    service = info.get("service", "")
    downtime = info.get("downtime_s")
    down = ""
    if isinstance(downtime, int | float) and not isinstance(downtime, bool) and downtime > 0:
        down = (f'<tspan fill="#7a1010" font-weight="bold"> down {downtime:.2f} s</tspan>')
    parts = [f'<g class="lane" data-lane="{escape(name)}">'
             f'<text x="8" y="{y + 13}" font-size="12" font-weight="bold">{escape(name)}{down}'
             f'</text><text x="8" y="{y + 25}" font-size="10" fill="#555555">'
             f'{escape(str(service))}</text>']
    for run in request_runs(requests):
        x0, x1 = x(run.start), x(run.end)
        tall = run.outcome != "ok"
        errors = Counter(r.error or r.outcome for r in run.requests if r.outcome != "ok")
        why = "; ".join(f"{e} ×{n}" for e, n in sorted(errors.items())) if errors else ""
        parts.append(f'<rect class="{run.outcome}" x="{x0}" y="{y + (4 if tall else 8)}" '
                     f'width="{round(max(x1 - x0, 1.5), 1)}" height="{22 if tall else 14}" '
                     f'fill="{COLOURS[run.outcome]}" fill-opacity="{1 if tall else 0.7}">'
                     f'<title>{escape(name)}: {len(run.requests)} {escape(run.outcome)} '
                     f'request{"s" if len(run.requests) != 1 else ""}, '
                     f'{_rel(run.start - origin)} … {_rel(run.end - origin)}'
                     + (f" — {escape(why)}" if why else "") + '</title></rect>')
    parts.append("</g>")
    return "".join(parts)


def _writer_spans(writers: Sequence[Sample]) -> list[tuple[float, float, tuple[str, ...]]]:
    out: list[tuple[float, float, tuple[str, ...]]] = []
    for i, s in enumerate(writers):
        end = writers[i + 1].t if i + 1 < len(writers) else s.t + 0.5
        out.append((s.t, end, (str(s.value),) if s.value else ()))
    return out


def _holder_lane(title: str, spans: Sequence[tuple[float, float, tuple[str, ...]]], y: int,
                 x: Any, origin: float, colour: Mapping[str, str]) -> str:
    merged: list[tuple[float, float, tuple[str, ...]]] = []
    for start, end, holders in spans:
        if merged and merged[-1][2] == holders and abs(merged[-1][1] - start) < 1e-6:
            merged[-1] = (merged[-1][0], end, holders)
        else:
            merged.append((start, end, holders))
    parts = [f'<g class="lane" data-lane="{escape(title)}">'
             f'<text x="8" y="{y + 18}" font-size="11" font-weight="bold">{escape(title)}</text>']
    for start, end, holders in merged:
        x0, w = x(start), round(max(x(end) - x(start), 1), 1)
        if not holders:
            fill, text, who = "#dddddd", "#555555", "nobody"
        elif len(holders) == 1:
            fill, text, who = colour.get(holders[0], "#4c72b0"), "#ffffff", holders[0]
        else:
            fill, text, who = "#d62728", "#ffffff", " + ".join(holders)
        parts.append(f'<rect x="{x0}" y="{y + 6}" width="{w}" height="18" fill="{fill}">'
                     f'<title>{escape(title)}: {escape(who)}, {_rel(start - origin)} … '
                     f'{_rel(end - origin)} ({end - start:.2f} s)</title></rect>')
        if w > 7 * len(who) + 6:
            parts.append(f'<text x="{round(x0 + w / 2, 1)}" y="{y + 19}" font-size="10" '
                         f'text-anchor="middle" fill="{text}">{escape(who)}</text>')
    parts.append("</g>")
    return "".join(parts)


def _node_colours(spans: Sequence[Any], writers: Sequence[Sample]) -> dict[str, str]:
    nodes = sorted({n for s in spans for n in s.holders}
                   | {str(w.value) for w in writers if w.value})
    return {n: NODE_PALETTE[i % len(NODE_PALETTE)] for i, n in enumerate(nodes)}


def _axis(t_min: float, t_max: float, bottom: int, x: Any, origin: float) -> str:
    span = t_max - t_min
    step = next(s for s in (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1e9) if span / s <= 12)
    first = int(t_min // step) * step
    parts = [f'<g class="axis"><line x1="{LEFT}" y1="{bottom + 4}" x2="{WIDTH - RIGHT}" '
             f'y2="{bottom + 4}" stroke="#888888" />']
    t = first
    while t <= t_max:
        if t >= t_min:
            tx = x(origin + t)
            parts.append(f'<line x1="{tx}" y1="{bottom + 4}" x2="{tx}" y2="{bottom + 8}" '
                         f'stroke="#888888" /><text x="{tx}" y="{bottom + 20}" font-size="10" '
                         f'text-anchor="middle">{t:g}</text>')
        t += step
    parts.append(f'<text x="{WIDTH - RIGHT}" y="{bottom + 34}" font-size="10" '
                 f'text-anchor="end" fill="#555555">seconds from the fault</text></g>')
    return "".join(parts)
