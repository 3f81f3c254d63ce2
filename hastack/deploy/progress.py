"""Progress of a deploy run: timed steps, and the reporter that shows them.

Stage 5 (deploy). A deployer calls a Reporter; the CLI passes a rich one (a line per step as
it finishes, with its duration), tests and benchmarks a quiet one and read the steps
afterwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from rich.console import Console


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
        # A long component name (ceilometer-notification) takes its room from the action,
        # so that every line fits 80 columns.
        width = max(10, 40 - max(0, len(step.component) - 14))
        with self._lock:
            # at (seconds since start)  node  component  action  duration
            self.console.print(
                f"[dim]{step.started_at + step.seconds:5.1f}[/dim] [bold]{step.node:<6}[/bold] "
                f"[cyan]{step.component:<14}[/cyan] {step.action[:width]:<{width}} "
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
