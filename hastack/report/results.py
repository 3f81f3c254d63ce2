"""Reading a results directory back: what `hastack chaos` (one run, or `--repeat N`),
`hastack demo` (a suite) and `bench/failover.py` (two profiles) wrote, as typed values.

    one run      DIR/summary.json, DIR/*.jsonl, DIR/timeline.png
    --repeat N   DIR/aggregate.json, DIR/run-1/ … DIR/run-N/ (each one run)
    demo         DIR/suite.json, DIR/<scenario>/ (each one run)
    bench        DIR/bench.json, DIR/<profile>/<scenario>-<i>/ (each one run)

and `cloud.yaml`, the copy of the cloud file the run was made with, in DIR (or a parent).
Nothing here depends on where the directory was when it was written: paths recorded inside
the summaries are ignored in favour of where the files are now.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hastack.chaos.measure import aggregate
from hastack.chaos.timeline import Event, read_timeline
from hastack.errors import ReportError
from hastack.report import CLOUD_COPY

SUMMARY = "summary.json"
AGGREGATE = "aggregate.json"
SUITE = "suite.json"
BENCH = "bench.json"
PLOT = "timeline.png"


@dataclass(frozen=True)
class ScenarioResult:
    """One scenario's results: its summary (one run's, or the fold of its repeats) and the run
    whose timeline stands for it."""

    label: str                        # the scenario, with the bench profile when there is one
    scenario: str
    summary: Mapping[str, Any]
    runs: int
    timeline_dir: Path | None         # a directory holding one run's JSONL timelines
    profile: str | None = None

    @property
    def run_summary(self) -> Mapping[str, Any]:
        """The summary of the run whose timeline is shown (its faults, transitions, origin):
        for repeats, run 1's own, not the fold."""
        if self.timeline_dir is not None and (self.timeline_dir / SUMMARY).is_file():
            found: Mapping[str, Any] = _json(self.timeline_dir / SUMMARY)
            return found
        return self.summary

    def events(self) -> list[Event]:
        if self.timeline_dir is None:
            return []
        paths = sorted(self.timeline_dir.glob("*.jsonl"))
        return read_timeline(paths) if paths else []

    def plot(self) -> Path | None:
        if self.timeline_dir is None or not (self.timeline_dir / PLOT).is_file():
            return None
        return self.timeline_dir / PLOT


@dataclass(frozen=True)
class Results:
    directory: Path
    scenarios: tuple[ScenarioResult, ...]
    bench: Mapping[str, Any] | None = None
    cloud_file: Path | None = None
    kind: str = "run"                 # run | repeat | suite | bench | collection
    problems: tuple[str, ...] = field(default=())

    def summaries(self, profile: str | None = None) -> list[Mapping[str, Any]]:
        """The summaries availability counts: one profile's when a bench ran two (the cloud
        file's own profile, `budget` unless said)."""
        if self.kind != "bench":
            return [s.summary for s in self.scenarios]
        wanted = profile or "budget"
        return [s.summary for s in self.scenarios if s.profile == wanted]


def load_results(directory: str | Path, cloud_file: str | Path | None = None) -> Results:
    root = Path(directory)
    if not root.is_dir():
        raise ReportError(f"{root}: no such results directory (give the directory "
                          "`hastack chaos` or `hastack demo` printed)")
    bench = _json(root / BENCH) if (root / BENCH).is_file() else None
    here = _scenario_at(root)
    if here is not None:
        scenarios: tuple[ScenarioResult, ...] = (here,)
        kind = "repeat" if here.runs > 1 else "run"
    elif (root / SUITE).is_file():
        scenarios, kind = _suite(root), "suite"
    elif bench is not None:
        scenarios, kind = _bench(root), "bench"
    else:
        scenarios = tuple(s for d in sorted(p for p in root.iterdir() if p.is_dir())
                          if (s := _scenario_at(d)) is not None)
        kind = "collection"
    if not scenarios:
        raise ReportError(f"{root}: no {SUMMARY}, {AGGREGATE}, {SUITE} or {BENCH} here or in "
                          "its subdirectories: is this what `hastack chaos` or `hastack demo` "
                          "wrote?")
    found = Path(cloud_file) if cloud_file is not None else _cloud_copy(root)
    return Results(root, scenarios, bench, found, kind)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: cannot read it as JSON: {exc}") from None


def _scenario_at(directory: Path, label: str | None = None) -> ScenarioResult | None:
    if (directory / AGGREGATE).is_file():
        summary = _json(directory / AGGREGATE)
        runs = sorted((d for d in directory.glob("run-*") if (d / SUMMARY).is_file()),
                      key=lambda d: _run_number(d.name))
        name = str(summary.get("scenario"))
        return ScenarioResult(label or name, name, summary, int(summary.get("runs") or 1),
                              runs[0] if runs else None)
    if (directory / SUMMARY).is_file():
        summary = _json(directory / SUMMARY)
        name = str(summary.get("scenario"))
        return ScenarioResult(label or name, name, summary, 1, directory)
    return None


def _run_number(name: str) -> int:
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _suite(root: Path) -> tuple[ScenarioResult, ...]:
    """The demo's scenarios in the order they ran; a scenario that failed before writing
    anything keeps the entry suite.json has for it."""
    entries: Sequence[Mapping[str, Any]] = _json(root / SUITE)
    out = []
    for entry in entries:
        name = str(entry.get("scenario"))
        found = _scenario_at(root / name) if (root / name).is_dir() else None
        out.append(found or ScenarioResult(name, name, entry, 1, None))
    return tuple(out)


def _bench(root: Path) -> tuple[ScenarioResult, ...]:
    """bench/failover.py's runs, folded per profile and scenario (medians, like its table)."""
    out = []
    for profile_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        groups: dict[str, list[tuple[Path, Mapping[str, Any]]]] = {}
        for run in sorted(profile_dir.iterdir(), key=lambda d: (d.name.rsplit("-", 1)[0],
                                                                _run_number(d.name))):
            if (run / SUMMARY).is_file():
                summary = _json(run / SUMMARY)
                groups.setdefault(str(summary.get("scenario")), []).append((run, summary))
        for name, runs in groups.items():
            summaries = [s for _, s in runs]
            folded = summaries[0] if len(runs) == 1 else aggregate(summaries)
            out.append(ScenarioResult(f"{name} ({profile_dir.name})", name, folded, len(runs),
                                      runs[0][0], profile_dir.name))
    return tuple(out)


def _cloud_copy(root: Path) -> Path | None:
    for directory in (root, *root.resolve().parents[:2]):
        if (directory / CLOUD_COPY).is_file():
            return directory / CLOUD_COPY
    return None
