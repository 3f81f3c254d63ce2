"""A picture of one chaos run: what each client saw, second by second, around the fault.

One lane per workload: every request a short bar from issue to answer (green ok, red failed,
orange indeterminate — a timed-out request shows as a long bar), the downtime bracketed and
labelled. Below, one lane per VIP: who held it (a coloured bar per node, hatched red where two
nodes held it at once). The fault window is shaded across all lanes; x is seconds from the
fault's start. Matplotlib with the Agg backend: no display needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from hastack.chaos.measure import (  # noqa: E402
    HolderSpan,
    RunSummary,
    fault_windows,
    vip_holder_spans,
)
from hastack.chaos.timeline import Event, Fault, Request, Sample, Transition  # noqa: E402
from hastack.chaos.workloads import in_workload_order  # noqa: E402

COLOURS = {"ok": "#2e9d48", "fail": "#d62728", "indeterminate": "#ff8c00"}
FAULT_SHADE = "#d62728"
NODE_PALETTE = ("#4c72b0", "#8172b2", "#64b5cd", "#55a868", "#ccb974", "#937860", "#da8bc3")


def plot_run(events: Sequence[Event], summary: RunSummary, path: str | Path) -> Path:
    """Draw the run into a PNG at `path` and return the path."""
    path = Path(path)
    origin = summary.origin
    names = in_workload_order(summary.workloads)
    spans = vip_holder_spans(events)
    vips = list(dict.fromkeys(s.vip for s in spans))
    drawn = [e for e in events if isinstance(e, Request | Sample | Fault | Transition)]
    t_values = [e.t - origin for e in drawn]
    x_min = min(t_values, default=-1.0)
    x_max = max([*t_values, *[(r.end - origin) for r in drawn if isinstance(r, Request)]],
                default=1.0)
    pad = max(0.5, (x_max - x_min) * 0.02)

    lanes = max(1, len(names))
    ratios = [lanes * 1.0] + ([max(0.6, 0.45 * len(vips))] if vips else [])
    fig, axes = plt.subplots(len(ratios), 1, sharex=True, squeeze=False,
                             figsize=(12, 1.2 + 0.9 * lanes + (0.5 * len(vips) if vips else 0)),
                             gridspec_kw={"height_ratios": ratios, "hspace": 0.08})
    ax = axes[0][0]
    _requests_lanes(ax, events, summary, names, origin)
    all_axes = [ax]
    if vips:
        vax = axes[1][0]
        _vip_lanes(vax, spans, vips, origin, x_max - x_min + 2 * pad)
        all_axes.append(vax)
    windows = fault_windows(events)
    for a in all_axes:
        for w in windows:
            end = (w.end if w.end is not None else origin + x_max + pad) - origin
            a.axvspan(w.start - origin, end, color=FAULT_SHADE, alpha=0.08, lw=0)
            a.axvline(w.start - origin, color=FAULT_SHADE, lw=1.2, alpha=0.8)
            if w.end is not None:
                a.axvline(end, color=FAULT_SHADE, lw=1.0, ls="--", alpha=0.6)
        a.grid(axis="x", color="#dddddd", lw=0.6)
        a.set_axisbelow(True)
        for side in ("top", "right"):
            a.spines[side].set_visible(False)
    for w in windows:
        label = f"{w.verb} {w.target}"
        ax.annotate(label, (w.start - origin, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(4, 2), textcoords="offset points", color=FAULT_SHADE,
                    fontsize=9, fontweight="bold", va="bottom")
        if w.end is not None:
            ax.annotate("undone", (w.end - origin, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(4, 2), textcoords="offset points", color=FAULT_SHADE,
                        fontsize=8, va="bottom", alpha=0.8)
    all_axes[-1].set_xlim(x_min - pad, x_max + pad)
    all_axes[-1].set_xlabel("seconds from fault start" if windows else "seconds from start")

    verdict = summary.verdict.upper()
    fig.suptitle(f"{summary.scenario}", x=0.01, y=0.995, ha="left", va="top",
                 fontsize=13, fontweight="bold")
    fig.text(0.99, 0.995, verdict, ha="right", va="top", fontsize=13, fontweight="bold",
             color=COLOURS["ok"] if summary.verdict == "pass" else COLOURS["fail"])
    subtitle = _subtitle(summary)
    if subtitle:
        fig.text(0.01, 1 - 0.32 / fig.get_figheight(), subtitle, ha="left", va="top",
                 fontsize=9, color="#444444", linespacing=1.5)
    handles = [Patch(color=COLOURS["ok"], label="ok"),
               Patch(color=COLOURS["fail"], label="failed"),
               Patch(color=COLOURS["indeterminate"], label="indeterminate"),
               Patch(color=FAULT_SHADE, alpha=0.15, label="fault window")]
    top = 1 - (0.75 + (0.18 if summary.reasons else 0)) / fig.get_figheight()
    fig.legend(handles=handles, loc="lower right", bbox_to_anchor=(0.985, top + 0.005),
               ncol=4, fontsize=8, frameon=False)
    _transitions(ax, summary, origin)
    fig.subplots_adjust(left=0.13, right=0.985, top=top - 0.045,
                        bottom=0.55 / fig.get_figheight())
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _requests_lanes(ax: plt.Axes, events: Sequence[Event], summary: RunSummary,
                    names: list[str], origin: float) -> None:
    """Each request as a vertical tick (so dense ok traffic reads as a band) plus a
    horizontal bar for its duration when that is long enough to see."""
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels([_lane_label(n, summary) for n in names], fontsize=9)
    ax.invert_yaxis()
    for lane, name in enumerate(names):
        reqs = [e for e in events if isinstance(e, Request) and e.workload == name]
        for outcome, colour in COLOURS.items():
            mine = [r for r in reqs if r.outcome == outcome]
            if not mine:
                continue
            height = 0.28 if outcome == "ok" else 0.36
            ticks = [[(r.t - origin, lane - height), (r.t - origin, lane + height)]
                     for r in mine]
            ax.add_collection(LineCollection(ticks, colors=colour,
                                             linewidths=0.8 if outcome == "ok" else 1.4,
                                             alpha=0.55 if outcome == "ok" else 1.0,
                                             zorder=3 if outcome == "ok" else 4))
            bars = [[(r.t - origin, lane), (r.end - origin, lane)] for r in mine
                    if r.latency_s > 0.05]
            if bars:
                ax.add_collection(LineCollection(bars, colors=colour, linewidths=4,
                                                 alpha=0.6, zorder=2))
        w = summary.workloads.get(name)
        failed = [r for r in reqs if not r.ok]
        if w is not None and failed and w.availability.downtime_s > 0:
            _bracket(ax, lane, failed, origin, w.availability.downtime_s)


def _bracket(ax: plt.Axes, lane: int, failed: list[Request], origin: float,
             downtime: float) -> None:
    start = min(r.t for r in failed) - origin
    end = max(r.end for r in failed) - origin
    y = lane - 0.44
    ax.plot([start, start, end, end], [y + 0.06, y, y, y + 0.06], color="#7a1010", lw=1,
            zorder=5)
    ax.annotate(f"down {downtime:.2f} s", (end, y), xytext=(4, 0), textcoords="offset points",
                fontsize=8, color="#7a1010", va="center", fontweight="bold")


def _lane_label(name: str, summary: RunSummary) -> str:
    w = summary.workloads[name]
    a = w.availability
    return f"{name}: {w.service}\n{a.requests} req · {a.errors} err"


def _transitions(ax: plt.Axes, summary: RunSummary, origin: float) -> None:
    """Transitions reported by the cloud or the clients (writer moved, client reconnected
    elsewhere) as dotted lines labelled at the foot of the request lanes. VIP changes are
    already visible in the VIP lane."""
    shown = [t for t in summary.transitions if t.source != "sample"][:8]
    for i, t in enumerate(shown):
        x = t.t - origin
        ax.axvline(x, color="#555555", lw=0.8, ls=":", zorder=1)
        ax.annotate(f"{t.what} → {t.to or '-'}", (x, 0.0), xycoords=("data", "axes fraction"),
                    xytext=(3, 3 + 11 * (i % 2)), textcoords="offset points", fontsize=7.5,
                    color="#333333", va="bottom",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                          "alpha": 0.8})


def _vip_lanes(ax: plt.Axes, spans: Sequence[HolderSpan], vips: list[str], origin: float,
               x_span: float) -> None:
    nodes = sorted({n for s in spans for n in s.holders})
    colour = {n: NODE_PALETTE[i % len(NODE_PALETTE)] for i, n in enumerate(nodes)}
    ax.set_ylim(-0.6, len(vips) - 0.4)
    ax.set_yticks(range(len(vips)))
    ax.set_yticklabels([f"VIP {v}\nholder" for v in vips], fontsize=9)
    ax.invert_yaxis()
    merged = _merge(spans)
    for lane, vip in enumerate(vips):
        for start, end, holders in merged.get(vip, []):
            x, width = start - origin, end - start
            if not holders:
                ax.broken_barh([(x, width)], (lane - 0.3, 0.6), facecolors="#eeeeee",
                               edgecolors="#888888", hatch="..", lw=0.5)
                if not _label(ax, x, width, lane, "nobody", "#777777", x_span):
                    _callout(ax, x, width, lane, f"none {width:.1f} s", "#555555")
            elif len(holders) == 1:
                ax.broken_barh([(x, width)], (lane - 0.3, 0.6), facecolors=colour[holders[0]],
                               lw=0)
                _label(ax, x, width, lane, holders[0], "white", x_span)
            else:
                ax.broken_barh([(x, width)], (lane - 0.3, 0.6), facecolors="#f4c7c7",
                               edgecolors=COLOURS["fail"], hatch="////", lw=0.8)
                text = f"{' + '.join(holders)} {width:.1f} s"
                if not _label(ax, x, width, lane, text, COLOURS["fail"], x_span):
                    _callout(ax, x, width, lane, text, COLOURS["fail"])


def _merge(spans: Sequence[HolderSpan]) -> dict[str, list[tuple[float, float, tuple[str, ...]]]]:
    """Consecutive samples with the same holders as one bar."""
    out: dict[str, list[tuple[float, float, tuple[str, ...]]]] = {}
    for s in spans:
        bars = out.setdefault(s.vip, [])
        if bars and bars[-1][2] == s.holders and abs(bars[-1][1] - s.start) < 1e-6:
            bars[-1] = (bars[-1][0], s.end, s.holders)
        else:
            bars.append((s.start, s.end, s.holders))
    return out


def _label(ax: plt.Axes, x: float, width: float, lane: int, text: str, colour: str,
           x_span: float) -> bool:
    """The holder's name inside its bar, when the bar is wide enough to carry it."""
    if width <= 0.008 * x_span * max(6, len(text)):
        return False
    ax.text(x + width / 2, lane, text, ha="center", va="center", fontsize=8,
            color=colour, fontweight="bold", clip_on=True)
    return True


def _callout(ax: plt.Axes, x: float, width: float, lane: int, text: str, colour: str) -> None:
    """A label above a bar too narrow to hold it (a short split or a gap: the interesting
    ones)."""
    ax.annotate(text, (x + width / 2, lane - 0.3), xytext=(6, 9), textcoords="offset points",
                fontsize=7.5, color=colour, fontweight="bold", ha="left", va="bottom",
                arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.8})


def _subtitle(summary: RunSummary) -> str:
    parts = []
    for name in in_workload_order(summary.workloads):
        w = summary.workloads.get(name)
        if w is None:
            continue
        a = w.availability
        text = f"{name}: down {a.downtime_s:.2f} s"
        if w.writes is not None:
            text += f", lost {len(w.writes.lost)}/{w.writes.acked} acked"
        if w.messages is not None:
            text += f", lost {len(w.messages.lost)}/{w.messages.confirmed} confirmed"
        parts.append(text)
    if summary.dual_vip_by_vip:
        parts.append(f"dual VIP {summary.dual_vip_holder_s:.2f} s")
    line = "   ·   ".join(parts)
    if summary.reasons:
        line += "\n" + "; ".join(summary.reasons[:2])
    return line
