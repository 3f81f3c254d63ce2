"""The timeline: the evidence of one chaos run, one JSON object per line (JSONL).

Every event has `t` (unix seconds, float) and `kind`:

- request:    {workload, op, outcome: ok|fail|indeterminate, latency_s, error, target, id, result}
              `t` is when the request was *issued*; it ended at t + latency_s.
- fault:      {verb, target, phase: start|end, reverse} — `start` when the verb was issued,
              `end` when its reverse verb had returned (kill/start, freeze/unfreeze, ...).
- transition: {what: vip|writer|sql-backend|..., from, to, source}
- sample:     {what: "vip_holders", value: {vip: [nodes]}} — periodic observations.
- delivery:   {workload, id, target, run} — a message a consumer received (AMQP).
- check:      {workload, value} — raw observations of a check phase (e.g. the ids read back).
- workload:   {workload, phase: start|info|end, detail} — run id, service name, settings.
- note:       {source, text} — something worth keeping that is not a measurement.

Timestamps come from a `Clock`: wall-clock aligned once at start, then advanced by the
monotonic clock, so an NTP step during a run cannot reorder events of one process, and
events of several processes on one host still line up.

Writers append whole lines with one `write(2)` on an O_APPEND descriptor, under a lock: safe
from several threads, and in practice from several processes appending to one file. Readers
merge files and sort by time; a truncated last line (a killed writer) is skipped.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hastack.chaos import ChaosError

log = logging.getLogger(__name__)

Outcome = Literal["ok", "fail", "indeterminate"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "fail", "indeterminate")
JsonValue = Any


class Clock:
    """Wall-clock aligned, monotonic-advanced time (see the module docstring)."""

    def __init__(self) -> None:
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

    def now(self) -> float:
        return self._wall0 + (time.monotonic() - self._mono0)


@dataclass(frozen=True)
class Request:
    t: float
    workload: str
    op: str
    outcome: Outcome
    latency_s: float
    error: str = ""
    target: str | None = None
    id: int | None = None
    result: str | None = None          # e.g. hit|miss for a cache get, an HTTP status
    kind: Literal["request"] = "request"

    @property
    def end(self) -> float:
        return self.t + self.latency_s

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


@dataclass(frozen=True)
class Fault:
    t: float
    verb: str
    target: str
    phase: Literal["start", "end"]
    reverse: str | None = None         # the verb that undoes this one
    kind: Literal["fault"] = "fault"


@dataclass(frozen=True)
class Transition:
    t: float
    what: str
    from_: str | None = None        # None values are left out of the JSON: default them
    to: str | None = None
    source: str = ""
    kind: Literal["transition"] = "transition"


@dataclass(frozen=True)
class Sample:
    t: float
    what: str
    value: JsonValue = None         # None is left out of the JSON: default it
    kind: Literal["sample"] = "sample"


@dataclass(frozen=True)
class Delivery:
    t: float
    workload: str
    id: int
    target: str | None = None
    run: str | None = None
    kind: Literal["delivery"] = "delivery"


@dataclass(frozen=True)
class Check:
    t: float
    workload: str
    value: dict[str, JsonValue]
    kind: Literal["check"] = "check"


@dataclass(frozen=True)
class WorkloadMark:
    t: float
    workload: str
    phase: Literal["start", "info", "end"]
    detail: dict[str, JsonValue] = field(default_factory=dict)
    kind: Literal["workload"] = "workload"


@dataclass(frozen=True)
class Note:
    t: float
    source: str
    text: str
    kind: Literal["note"] = "note"


Event = Request | Fault | Transition | Sample | Delivery | Check | WorkloadMark | Note

_KINDS: dict[str, type[Any]] = {
    "request": Request, "fault": Fault, "transition": Transition, "sample": Sample,
    "delivery": Delivery, "check": Check, "workload": WorkloadMark, "note": Note,
}


def to_json(event: Event) -> dict[str, JsonValue]:
    """The event as its JSON object; None-valued optional fields are left out."""
    out: dict[str, JsonValue] = {"t": round(event.t, 6), "kind": event.kind}
    for name, value in vars(event).items():
        if name in ("t", "kind") or value is None:
            continue
        if isinstance(event, Request) and name == "error" and not value:
            continue
        out["from" if name == "from_" else name] = value
    return out


def from_json(obj: Mapping[str, JsonValue]) -> Event | None:
    """The event of one JSON object; None for a kind this version does not know (newer
    writers may add kinds; analysis ignores them rather than refusing the whole run)."""
    cls = _KINDS.get(str(obj.get("kind")))
    if cls is None:
        return None
    fields = {("from_" if k == "from" else k): v for k, v in obj.items() if k != "kind"}
    return cls(**fields)  # type: ignore[no-any-return]


class TimelineWriter:
    """Appends events to a JSONL file; thread-safe; every event is on disk when `write`
    returns (one unbuffered write per line), so a killed run keeps its evidence."""

    def __init__(self, path: str | Path, clock: Clock | None = None):
        self.path = Path(path)
        self.clock = clock or Clock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def now(self) -> float:
        return self.clock.now()

    def write(self, event: Event) -> Event:
        line = (json.dumps(to_json(event), separators=(",", ":"), sort_keys=False) + "\n")
        data = line.encode()
        with self._lock:
            if self._fd is None:
                raise ChaosError(f"{self.path}: timeline writer is closed")
            os.write(self._fd, data)
        return event

    # Shorthands that stamp the event with this writer's clock.
    def request(self, workload: str, op: str, outcome: Outcome, t: float, latency_s: float,
                error: str = "", target: str | None = None, id: int | None = None,
                result: str | None = None) -> Event:
        return self.write(Request(t, workload, op, outcome, round(latency_s, 6), error, target,
                                  id, result))

    def fault(self, verb: str, target: str, phase: Literal["start", "end"],
              reverse: str | None = None) -> Event:
        return self.write(Fault(self.now(), verb, target, phase, reverse))

    def transition(self, what: str, from_: str | None, to: str | None, source: str = "") -> Event:
        return self.write(Transition(self.now(), what, from_, to, source))

    def sample(self, what: str, value: JsonValue) -> Event:
        return self.write(Sample(self.now(), what, value))

    def delivery(self, workload: str, id: int, target: str | None, run: str | None) -> Event:
        return self.write(Delivery(self.now(), workload, id, target, run))

    def check(self, workload: str, value: dict[str, JsonValue]) -> Event:
        return self.write(Check(self.now(), workload, value))

    def mark(self, workload: str, phase: Literal["start", "info", "end"],
             **detail: JsonValue) -> Event:
        return self.write(WorkloadMark(self.now(), workload, phase, dict(detail)))

    def note(self, source: str, text: str) -> Event:
        return self.write(Note(self.now(), source, text))

    @contextmanager
    def fault_window(self, verb: str, target: str, reverse: str) -> Iterator[None]:
        """Record a reversible fault around the block, which injects it, holds it and applies
        the reverse verb: `start` just before the block (the instant the verb is issued, so
        requests that fail from then on belong to it), `end` after it, even on error."""
        self.fault(verb, target, "start", reverse)
        try:
            yield
        finally:
            self.fault(verb, target, "end", reverse)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> TimelineWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_events(path: str | Path) -> list[Event]:
    """Events of one file in file order. A malformed *last* line is a writer killed mid-line
    and is skipped with a warning; a malformed line elsewhere is an error with its place."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ChaosError(f"{path}: cannot read timeline: {exc.strerror}") from exc
    events: list[Event] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict) or not isinstance(obj.get("t"), int | float):
                raise ValueError("not an event object with a numeric 't'")
            event = from_json(obj)
        except (ValueError, TypeError) as exc:
            if number == len(lines):
                log.warning("%s:%d: skipping truncated last line", path, number)
                continue
            raise ChaosError(f"{path}:{number}: malformed timeline event: {exc}") from exc
        if event is not None:
            events.append(event)
    return events


def read_timeline(paths: Iterable[str | Path]) -> list[Event]:
    """Every event of several files (one per workload process, one for faults and samples),
    merged in time order. The sort is stable, so one writer's events keep their order."""
    events: list[Event] = []
    for path in paths:
        events.extend(read_events(path))
    events.sort(key=lambda e: e.t)
    return events


class PeriodicSampler:
    """Calls `probe` every `interval_s` in a thread and records its value as a `sample` event
    (e.g. who holds each VIP). Like a Patroni cycle, a failing probe is logged, noted in the
    timeline, and retried at the next tick; it never stops the run."""

    def __init__(self, writer: TimelineWriter, what: str, probe: Callable[[], JsonValue],
                 interval_s: float = 0.1):
        self.writer, self.what, self.probe, self.interval_s = writer, what, probe, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sampler-{what}", daemon=True)

    def start(self) -> PeriodicSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        next_at = time.monotonic()
        last_error = ""
        while not self._stop.is_set():
            try:
                self.writer.sample(self.what, self.probe())
                last_error = ""
            except Exception as exc:  # a probe of a broken cloud may fail any way it likes
                text = f"{self.what} probe failed: {type(exc).__name__}: {exc}"
                if text != last_error:          # one note per distinct error, not per tick
                    log.warning("%s", text)
                    self.writer.note(f"sampler:{self.what}", text)
                last_error = text
            next_at += self.interval_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> PeriodicSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def requests_of(events: Sequence[Event], workload: str) -> list[Request]:
    return [e for e in events if isinstance(e, Request) and e.workload == workload]


def short_error(exc: BaseException, limit: int = 80) -> str:
    """`Type: message` on one line, cut to `limit` characters: errors are counted by this
    string, so it should name the failure, not carry a traceback."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
