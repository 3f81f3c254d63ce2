"""Progress and results of a lab run: timed steps, the reporter that shows them, the summary.

The lab calls a Reporter; the CLI passes a rich one (a line per step as it finishes, with its
duration), tests and benchmarks a quiet one and read `Summary.steps` afterwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class StepTime:
    node: str          # "-" for lab-wide steps
    component: str
    action: str
    seconds: float
    started_at: float  # seconds since the start of `up`


class Reporter(Protocol):
    def step(self, step: StepTime) -> None: ...
    def note(self, message: str) -> None: ...


class QuietReporter:
    def step(self, step: StepTime) -> None:
        pass

    def note(self, message: str) -> None:
        pass


class RichReporter:
    """One line per finished step: node, component, what was done, how long it took."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(highlight=False)
        self._lock = threading.Lock()

    def step(self, step: StepTime) -> None:
        with self._lock:
            # at (seconds since start)  node  component  action  duration
            self.console.print(
                f"[dim]{step.started_at + step.seconds:5.1f}[/dim] [bold]{step.node:<6}[/bold] "
                f"[cyan]{step.component:<14}[/cyan] {step.action[:40]:<40} "
                f"[green]{step.seconds:5.1f}s[/green]", soft_wrap=True)

    def note(self, message: str) -> None:
        with self._lock:
            self.console.print(f"[yellow]{message}[/yellow]")


class Steps:
    """Thread-safe recorder of timed steps."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter
        self.t0 = time.monotonic()
        self.done: list[StepTime] = []
        self._lock = threading.Lock()

    @contextmanager
    def timed(self, node: str, component: str, action: str) -> Iterator[None]:
        start = time.monotonic()
        yield
        step = StepTime(node, component, action, round(time.monotonic() - start, 2),
                        round(start - self.t0, 2))
        with self._lock:
            self.done.append(step)
        self.reporter.step(step)

    def note(self, message: str) -> None:
        self.reporter.note(message)

    def elapsed(self) -> float:
        return round(time.monotonic() - self.t0, 2)


@dataclass
class Summary:
    cloud: str
    state_dir: str
    total_s: float
    changed: bool
    healthy: bool
    status: dict[str, Any]
    steps: list[StepTime] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)


def print_summary(summary: Summary, console: Console) -> None:
    status = summary.status
    verdict = "[green]healthy[/green]" if summary.healthy else "[red]NOT healthy[/red]"
    what = "brought up" if summary.changed else "already up: checked, changed nothing"
    console.print(f"\nLab [bold]{summary.cloud}[/bold] {what} in {summary.total_s:.1f} s — "
                  f"{verdict}")
    table = Table(show_header=False, box=None, padding=(0, 2))
    for name, holders in status.get("vip_holders", {}).items():
        address = status.get("vips", {}).get(name, "")
        table.add_row(f"VIP {name} {address}", ", ".join(holders) or "[red]nobody[/red]")
    galera = status.get("galera")
    if galera:
        table.add_row("Galera", f"size {galera['size']}, "
                      f"{'primary' if galera['primary'] else '[red]non-primary[/red]'}, "
                      f"writer {galera['writer'] or '[red]none[/red]'}")
    rabbit = status.get("rabbitmq")
    if rabbit:
        table.add_row("RabbitMQ", "running " + ", ".join(rabbit["running"]))
    if status.get("memcached"):
        table.add_row("memcached", ", ".join(status["memcached"]))
    if status.get("redis"):
        table.add_row("Redis", f"master {status['redis'].get('master') or '?'}, sentinels "
                      + ", ".join(status["redis"].get("sentinels", [])))
    for anomaly in status.get("anomalies", []):
        table.add_row("[red]anomaly[/red]", anomaly)
    by_reason: dict[str, list[str]] = {}
    for process, _, reason in summary.skipped:
        by_reason.setdefault(reason, []).append(process)
    for reason, processes in by_reason.items():
        table.add_row("[dim]not run[/dim]", f"[dim]{', '.join(processes)}: {reason}[/dim]")
    table.add_row("state and data", summary.state_dir)
    table.add_row("logs", f"{summary.state_dir}/nodes/<node>/log (supervisor/<program>.log)")
    table.add_row("client", "hastack exec client -- mariadb -h <internal VIP> ...")
    table.add_row("tear down", "hastack down  (--purge also deletes state and data)")
    console.print(table)
