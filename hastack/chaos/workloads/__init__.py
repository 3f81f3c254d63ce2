"""Client workloads: real clients that hit the cloud at a steady rate and record every request.

Each workload is a module runnable as its own process inside the lab's client node,

    python -m hastack.chaos.workloads.<name> --duration 30 --rate 10 --out sql.jsonl ...
    python -m hastack.chaos.workloads.<name> --check --out sql.jsonl ...   (where relevant)

and importable (`SqlWorkload(...).run(...)`) for tests and in-process use. The loop is the
same for all: issue one request per slot of a fixed-rate grid; a slow request makes the
workload skip the slots it overran (no catch-up burst, which would hide the gap it measures);
a transient failure is recorded as a `fail`/`indeterminate` request and the loop goes on;
only a fatal error (bad arguments, bad credentials at setup) stops it.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from hastack.chaos import ChaosError
from hastack.chaos.timeline import TimelineWriter, WorkloadMark, read_events

log = logging.getLogger(__name__)

WORKLOADS: tuple[str, ...] = ("sql", "amqp", "api", "cache", "rpc")


def in_workload_order(names: Iterable[str]) -> list[str]:
    """Workload names as every table and plot lists them: WORKLOADS' order, others after."""
    return sorted(set(names), key=lambda n: (WORKLOADS.index(n) if n in WORKLOADS
                                             else len(WORKLOADS), n))

# After this many unexpected exceptions in a row the workload has a bug, not a flaky cloud.
MAX_CONSECUTIVE_INTERNAL_ERRORS = 20


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


class Workload(ABC):
    """One client. Subclasses implement `step` (one request, recorded) and may implement
    `setup`/`teardown`; `run` owns the rate loop, the start/end marks and error containment."""

    name: ClassVar[str]

    def __init__(self, writer: TimelineWriter, run_id: str | None = None):
        self.writer = writer
        self.run_id = run_id or new_run_id()
        self.issued = 0

    def setup(self) -> None:  # noqa: B027  (an optional hook)
        """Prepare (create a table, declare a queue). Raise ChaosError when it cannot be done."""

    @abstractmethod
    def step(self, seq: int) -> None:
        """Issue one request and record it. Transient failures are recorded, not raised."""

    def teardown(self) -> None:  # noqa: B027  (an optional hook)
        """Release connections; must not raise."""

    def describe(self) -> dict[str, Any]:
        """Settings worth keeping in the timeline's start mark (targets, timeouts)."""
        return {}

    def run(self, duration_s: float, rate: float, stop: threading.Event | None = None) -> int:
        """Run for `duration_s` (or until `stop` is set) at `rate` requests per second;
        returns the number of requests issued."""
        if rate <= 0 or duration_s < 0:
            raise ChaosError(f"{self.name}: rate must be > 0 and duration >= 0")
        stop = stop or threading.Event()
        self.writer.mark(self.name, "start", run=self.run_id, rate=rate, duration_s=duration_s,
                         **self.describe())
        try:
            self.setup()
            self._loop(duration_s, 1.0 / rate, stop)
        finally:
            self.teardown()
            self.writer.mark(self.name, "end", run=self.run_id, issued=self.issued)
        return self.issued

    def _loop(self, duration_s: float, interval: float, stop: threading.Event) -> None:
        start = time.monotonic()
        deadline = start + duration_s
        next_at = start
        internal_errors = 0
        while not stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            if now < next_at:
                stop.wait(min(next_at, deadline) - now)
                continue
            try:
                self.step(self.issued)
                internal_errors = 0
            except ChaosError:
                raise
            except Exception as exc:  # a bug in a step must not end the evidence silently
                internal_errors += 1
                log.exception("%s: step %d raised", self.name, self.issued)
                self.writer.note(self.name, f"step {self.issued} raised "
                                            f"{type(exc).__name__}: {exc}")
                if internal_errors >= MAX_CONSECUTIVE_INTERNAL_ERRORS:
                    raise ChaosError(f"{self.name}: {internal_errors} internal errors in a row, "
                                     f"last: {type(exc).__name__}: {exc}") from exc
            self.issued += 1
            # The next free slot of the grid: overrun slots are skipped, not burst.
            behind = time.monotonic() - start
            next_at = start + (math.floor(behind / interval) + 1) * interval


def base_parser(name: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m hastack.chaos.workloads.{name}",
                                     description=description)
    parser.add_argument("--out", required=True, type=Path, help="timeline file (JSONL, appended)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds (default 30)")
    parser.add_argument("--rate", type=float, default=10.0, help="requests/s (default 10)")
    parser.add_argument("--run-id", default=None, help="run id (default: random)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def stop_on_signals() -> threading.Event:
    """SIGTERM/SIGINT end the run cleanly (end mark written), as an orchestrator stops us."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


def workload_argv(name: str, options: Mapping[str, Any], python: str = "python3",
                  check: bool = False) -> list[str]:
    """The command line that runs workload `name` as its own process (e.g. inside the lab's
    client node, behind an `nsenter` prefix). `options` use argument names without dashes:
    {"target": "198.18.0.10", "duration": 30, "servers": ["a:11211", "b:11211"]}; a list
    value repeats the option, True is a bare flag, None/False leave it out."""
    if name not in WORKLOADS:
        raise ChaosError(f"unknown workload {name!r} (known: {', '.join(WORKLOADS)})")
    argv = [python, "-m", f"hastack.chaos.workloads.{name}"]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, list | tuple):
            for item in value:
                argv += [flag, str(item)]
        else:
            argv += [flag, str(value)]
    if check:
        argv.append("--check")
    return argv


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    try:
        return host, int(port)
    except ValueError as exc:
        raise ChaosError(f"bad address {text!r}: port is not a number") from exc


def as_list(values: Sequence[str]) -> list[str]:
    """Accept both repeated options and comma-separated lists."""
    return [item for value in values for item in value.split(",") if item]


def run_id_of(timeline: Path, workload: str) -> str:
    """The run id of the last run of `workload` recorded in a timeline file."""
    marks = [e for e in read_events(timeline)
             if isinstance(e, WorkloadMark) and e.workload == workload and e.phase == "start"]
    if not marks:
        raise ChaosError(f"{timeline}: no {workload} run recorded: run the workload first")
    return str(marks[-1].detail["run"])
