"""Terminal tables (rich) of chaos results: one run, and a suite of scenarios.

They read the JSON shape of `RunSummary.as_dict()` (or `aggregate()` of repeats, whose
numbers are {"median", "min", "max"}), so a table can be printed from a results directory
long after the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

WORKLOAD_ORDER = ("sql", "amqp", "api", "cache")


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
    names = sorted(workloads, key=lambda n: (WORKLOAD_ORDER.index(n)
                                            if n in WORKLOAD_ORDER else 99, n))
    return [(n, workloads[n]) for n in names]


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


def run_table(summary: Mapping[str, Any]) -> RenderableType:
    """One run (or one scenario's repeats): a row per workload, then the verdict and why."""
    table = Table(title=f"chaos: {summary.get('scenario')}", title_justify="left")
    for column, justify in (("workload", "left"), ("service", "left"),
                            ("requests", "right"), ("errors", "right"),
                            ("downtime", "right"), ("max gap", "right"), ("MTTR", "right"),
                            ("data", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for name, w in _workloads(summary):
        errors = w.get("errors")
        table.add_row(
            name, str(w.get("service", "")), num(w.get("requests")),
            Text(num(errors), style="red" if errors not in (0, None) else ""),
            num(w.get("downtime_s"), " s"), num(w.get("max_gap_s"), " s"),
            num(w.get("mttr_s"), " s") if w.get("available_again", True) is not False
            else Text("never", style="bold red"),
            _data_column(name, w))
    lines: list[RenderableType] = [table]
    dual = summary.get("dual_vip_holder_s")
    extra = Text("dual VIP holders: ")
    extra.append(num(dual, " s"), style="bold red" if _positive(dual) else "")
    runs = summary.get("runs")
    if runs:
        extra.append(f"   runs: {runs}")
    lines.append(extra)
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
    """Scenario → downtime per workload, lost writes and messages, dual VIP time, verdict."""
    present = [n for n in WORKLOAD_ORDER
               if any(n in s.get("workloads", {}) for s in summaries)]
    table = Table(title="chaos suite", title_justify="left")
    table.add_column("scenario")
    for name in present:
        table.add_column(f"{name} down", justify="right")
    for column in ("lost writes", "lost msgs", "dual VIP", "verdict"):
        table.add_column(column, justify="right")
    for s in summaries:
        w = s.get("workloads", {})
        lost_writes = w.get("sql", {}).get("lost") if "sql" in w else None
        lost_msgs = w.get("amqp", {}).get("lost") if "amqp" in w else None
        table.add_row(
            str(s.get("scenario")),
            *(num(w[n].get("downtime_s"), " s") if n in w else "-" for n in present),
            Text(num(lost_writes), style="bold red" if _positive(lost_writes) else ""),
            Text(num(lost_msgs), style="bold red" if _positive(lost_msgs) else ""),
            num(s.get("dual_vip_holder_s"), " s"),
            verdict_text(str(s.get("verdict"))))
    return table


def _positive(value: Any) -> bool:
    if isinstance(value, Mapping):
        return bool(value.get("max"))
    return isinstance(value, int | float) and value > 0
