"""Terminal tables (rich) of chaos results: one run, and a suite of scenarios.

They read the JSON shape of `RunSummary.as_dict()` (or `aggregate()` of repeats, whose
numbers are {"median", "min", "max"}), so a table can be printed from a results directory
long after the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from hastack.chaos.workloads import in_workload_order

# Tables that fit 80 columns (a pipe, a small terminal): a rule under the header, no edges.
COMPACT: dict[str, Any] = {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False,
                           "collapse_padding": True}


def verdict_text(verdict: str) -> Text:
    return Text(verdict.upper(), style="bold green" if verdict == "pass" else "bold red")


def num(value: Any, unit: str = "", digits: int = 2) -> str:
    """A number, a {"median","min","max"} fold as `median (min–max)`, or `-` when unknown."""
    if value is None:
        return "-"
    if isinstance(value, Mapping) and "median" in value:
        lo, mid, hi = (num(value[k], "", digits) for k in ("min", "median", "max"))
        return f"{mid}{unit}" if lo == hi else f"{mid}{unit} ({lo}–{hi})"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value}{unit}"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return str(value)


def _workloads(summary: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    workloads: Mapping[str, Any] = summary.get("workloads", {})
    return [(n, workloads[n]) for n in in_workload_order(workloads)]


def _data_column(name: str, w: Mapping[str, Any]) -> Text:
    """The workload's own correctness numbers, red where something was lost."""
    def part(label: str, key: str, bad: bool = False) -> Text:
        value = w.get(key)
        hot = bad and value not in (None, 0) and not (isinstance(value, Mapping)
                                                     and value.get("max") == 0)
        return Text(f"{label} {num(value)}", style="bold red" if hot else "")

    parts: list[Text] = []
    if "acked" in w:
        if not w.get("checked", True):
            parts = [part("acked", "acked"), Text("not checked", style="bold red")]
        else:
            parts = [part("acked", "acked"), part("lost", "lost", bad=True),
                     part("indet.", "indeterminate"), part("recovered", "recovered"),
                     part("unexpected", "unexpected", bad=True)]
    elif "confirmed" in w:
        parts = [part("confirmed", "confirmed"), part("lost", "lost", bad=True),
                 part("dup", "duplicated")]
        if w.get("drained") is False:
            parts.append(Text("not drained", style="bold red"))
    elif "hits" in w:
        parts = [part("hits", "hits"), part("misses", "misses")]
    return Text(", ").join(parts) if parts else Text("")


def cell(value: Any, unit: str = "", digits: int = 2) -> Text:
    """A number for a narrow column: a fold of repeats is its median, then `min–max` dim on a
    second line (only when they differ)."""
    if isinstance(value, Mapping) and "median" in value:
        lo, mid, hi = (num(value[k], "", digits) for k in ("min", "median", "max"))
        text = Text(f"{mid}{unit}")
        if lo != hi:
            text.append(f"\n{lo}–{hi}", style="dim")
        return text
    return Text(num(value, unit, digits))


def run_table(summary: Mapping[str, Any]) -> RenderableType:
    """One run (or one scenario's repeats): a row per workload, its data checks below the
    table, then the verdict and why. Fits 80 columns: repeats' ranges take a second line."""
    table = Table(title=f"chaos: {summary.get('scenario')}", title_justify="left", **COMPACT)
    table.add_column("workload", no_wrap=True)
    for column in ("requests", "errors", "downtime", "max gap", "MTTR"):
        table.add_column(column, justify="right", no_wrap=True)
    data = Table.grid(padding=(0, 1))
    data.add_column(no_wrap=True)
    data.add_column(no_wrap=True)
    data.add_column()
    for name, w in _workloads(summary):
        errors = w.get("errors")
        workload = Text(name)
        if w.get("service"):
            workload.append(f" ({w['service']})", style="dim")
        error_cell = cell(errors)
        if _positive(errors):
            error_cell.stylize("red")
        table.add_row(
            workload, cell(w.get("requests")), error_cell,
            cell(w.get("downtime_s"), " s"), cell(w.get("max_gap_s"), " s"),
            cell(w.get("mttr_s"), " s") if w.get("available_again", True) is not False
            else Text("never", style="bold red"))
        checks = _data_column(name, w)
        if checks.plain:
            data.add_row("data" if not data.row_count else "", name, checks)
    lines: list[RenderableType] = [table]
    if data.row_count:
        lines.append(data)
    dual = summary.get("dual_vip_holder_s")
    extra = Text("dual VIP holders: ")
    extra.append(num(dual, " s"), style="bold red" if _positive(dual) else "")
    runs = summary.get("runs")
    if runs:
        extra.append(f"   runs: {runs}")
    lines.append(extra)
    for group, seconds in (summary.get("tooz_takeover_s") or {}).items():
        lines.append(Text(f"tooz group {group}: " + (
            "no member left" if seconds is None else
            f"the lost member left after {num(seconds, ' s')}")))
    transitions = summary.get("transitions") or []
    for t in transitions[:12]:
        lines.append(Text(f"  {t['t_rel']:+8.2f} s  {t['what']}: {t['from'] or '-'} → "
                          f"{t['to'] or '-'}", style="dim"))
    verdict = Text("verdict: ")
    verdict.append_text(verdict_text(str(summary.get("verdict"))))
    lines.append(verdict)
    lines += [Text(f"  - {reason}", style="red") for reason in summary.get("reasons", [])]
    if summary.get("results_dir"):
        lines.append(Text(f"results: {summary['results_dir']}", style="dim"))
    return Group(*lines)


def suite_table(summaries: Sequence[Mapping[str, Any]]) -> Table:
    """Scenario → downtime per workload, lost writes and messages, dual VIP time, verdict.

    Fits 80 columns without cutting a scenario name: times are seconds (said once, in the
    caption), lost writes and messages share a column, and repeats show their median with
    the worst run (≤ max) on a second line; `run_table` has every range."""
    present = in_workload_order(n for s in summaries for n in s.get("workloads", {}))
    repeats = any(s.get("runs") for s in summaries)
    table = Table(title="chaos suite", title_justify="left", caption_justify="left", **COMPACT,
                  caption=(
                      "down: seconds each workload failed; lost: SQL writes/AMQP messages; "
                      "dual VIP: seconds two nodes held one VIP"
                      + ("; repeats: median and ≤ the worst run, lost in the worst run"
                         if repeats else "")))
    names = [str(s.get("scenario")) for s in summaries]
    table.add_column("scenario", no_wrap=True, min_width=max(map(len, names), default=8))
    for name in present:
        table.add_column(f"{name}\ndown", justify="right", no_wrap=True)
    table.add_column("lost", justify="right", no_wrap=True)
    table.add_column("dual\nVIP", justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    for name, s in zip(names, summaries, strict=True):
        w = s.get("workloads", {})
        lost = Text()
        for i, kind in enumerate(("sql", "amqp")):
            value = w[kind].get("lost") if kind in w else None
            if i:
                lost.append("/")
            lost.append(num(value["max"] if isinstance(value, Mapping) else value),
                        style="bold red" if _positive(value) else "")
        table.add_row(
            name, *(_seconds(w[n].get("downtime_s")) if n in w else "-" for n in present),
            lost, _seconds(s.get("dual_vip_holder_s")), verdict_text(str(s.get("verdict"))))
    return table


def _seconds(value: Any) -> Text:
    """Seconds in at most 4 characters (2, 1 or 0 decimals); a fold of repeats is its median
    and, when runs differ, `≤ max` dim on a second line."""
    def short(v: Any) -> str:
        if not isinstance(v, int | float) or isinstance(v, bool):
            return num(v)
        return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"

    if isinstance(value, Mapping) and "median" in value:
        text = Text(short(value["median"]))
        if value["min"] != value["max"]:
            text.append(f"\n≤{short(value['max'])}", style="dim")
        return text
    return Text(short(value))


def _positive(value: Any) -> bool:
    if isinstance(value, Mapping):
        return bool(value.get("max"))
    return isinstance(value, int | float) and value > 0


def demo_summary(summaries: Sequence[Mapping[str, Any]], results_dir: str,
                 report: str | None, elapsed_s: float, why_no_report: str = "") -> Group:
    """What `hastack demo` ends with: the suite table, how many passed, and where the
    results and the HTML report are — each path on its own line, whole."""
    passed = sum(1 for s in summaries if s.get("verdict") == "pass")
    verdict = Text(f"{passed} of {len(summaries)} scenarios passed",
                   style="bold green" if passed == len(summaries) else "bold red")
    verdict.append(f" in {elapsed_s:.0f} s", style="")
    lines: list[RenderableType] = [suite_table(summaries), verdict,
                                   Text("results (timelines, summary.json, timeline.png):"),
                                   Text(f"  {_shown(results_dir)}")]
    if report:
        lines += [Text("report (one HTML file, opens offline):"), Text(f"  {_shown(report)}",
                                                                        style="bold")]
    else:
        lines.append(Text(f"no HTML report: {why_no_report}", style="yellow"))
    return Group(*lines)


def _shown(path: str) -> str:
    """A path relative to the working directory when it is below it (shorter to read)."""
    from pathlib import Path

    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path
