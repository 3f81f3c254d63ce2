"""Stage 7: report — what a chaos run showed, as files and terminal tables.

`write_run_report` leaves in a run's results directory everything needed to judge it later:
`summary.json` (the `RunSummary` shape), `timeline.png` (the picture), next to the timeline
files themselves (the evidence, from which both are derived); `save_cloud_copy` adds the
cloud file the run was made with, which `hastack report` (hastack.report.html) reads back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hastack.chaos.measure import RunSummary
from hastack.chaos.scenarios import ScenarioRun
from hastack.chaos.timeline import Event

SUMMARY_FILE = "summary.json"
PLOT_FILE = "timeline.png"
CLOUD_COPY = "cloud.yaml"


def write_run_report(results_dir: str | Path, events: Sequence[Event],
                     summary: RunSummary) -> dict[str, Path]:
    """Write summary.json and timeline.png into `results_dir`; returns their paths."""
    from hastack.report.timeline_plot import plot_run  # matplotlib only when drawing

    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    summary_path = results_dir / SUMMARY_FILE
    summary_path.write_text(json.dumps(summary.as_dict(), indent=2) + "\n")
    plot_path = plot_run(events, summary, results_dir / PLOT_FILE)
    return {"summary": summary_path, "plot": plot_path}


def write_scenario_report(run: ScenarioRun) -> dict[str, Any]:
    """A scenario run's timeline.png and summary.json (the run's facts and verdict) in its
    results directory; returns the summary."""
    write_run_report(run.results, run.events, run.summary)
    write_json(run.results / SUMMARY_FILE, run.data)
    return run.data


def write_json(path: str | Path, data: Mapping[str, Any] | Sequence[Any]) -> Path:
    """For suite results and `--repeat` aggregates."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def load_summary(path: str | Path) -> dict[str, Any]:
    """A summary.json (or a results directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / SUMMARY_FILE
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def save_cloud_copy(results_dir: str | Path, cloud_file: str | Path) -> Path:
    """The cloud file, byte for byte, as `cloud.yaml` in the results directory: the report
    draws the architecture and lints the design the run was made with, even after the
    original file changed or moved."""
    target = Path(results_dir) / CLOUD_COPY
    target.parent.mkdir(parents=True, exist_ok=True)
    data = Path(cloud_file).read_bytes()
    if not target.exists() or target.read_bytes() != data:
        target.write_bytes(data)
    return target
