"""The lab: a real HA control plane on this machine, one set of Linux namespaces per node.

Stage 5 (deploy). `up` renders the cloud into the lab's state dir and realises it — nodes
(`nodes`), their network (`network`), their init (`supervisor`), the daemons in protocol order
(`components`) — then reports `status`. `down` removes everything by record and name prefix,
also after a crash. Only this package creates namespaces, links, mounts and processes.

    up(cloud, cloud_file, reporter) -> Summary       status(cloud) -> dict
    down(cloud_name, purge) -> list[str]             exec_in(cloud_name, node, argv) -> int
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from hastack.deploy.lab import components
from hastack.deploy.lab import status as lab_status
from hastack.deploy.lab.lab import Lab, teardown, wait_until
from hastack.deploy.lab.preflight import require_programs, require_root
from hastack.deploy.lab.programs import lab_processes, skipped
from hastack.deploy.lab.report import QuietReporter, Reporter, Steps, Summary
from hastack.deploy.lab.run import nsenter, run
from hastack.deploy.lab.state import RecordStore, state_dir
from hastack.errors import LabError
from hastack.model.cloud import Cloud

HEALTHY_TIMEOUT_S = 30
DEFAULT_CLOUD = Path(__file__).resolve().parent.parent.parent / "examples" / "demo.yaml"

__all__ = ["DEFAULT_CLOUD", "Summary", "up", "status", "down", "exec_in", "run_in"]


class _Interrupted(BaseException):
    pass


@contextmanager
def _teardown_on_signal(cloud_name: str) -> Iterator[None]:
    """During `up`, Ctrl-C or SIGTERM removes what was created instead of leaving half a lab."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Interrupted(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except (_Interrupted, KeyboardInterrupt) as exc:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        teardown(cloud_name, purge=False)
        raise LabError(f"interrupted ({exc or 'SIGINT'}): the lab was torn down") from None
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def up(cloud: Cloud, cloud_file: str = "", reporter: Reporter | None = None) -> Summary:
    """Bring the cloud's lab up, or check and repair a running one; never restarts what runs."""
    require_root()
    steps = Steps(reporter or QuietReporter())
    lab = Lab(cloud, cloud_file)
    require_programs(p.process for p in lab_processes(lab.plan))
    with _teardown_on_signal(cloud.name):
        with steps.timed("-", "render", "plan, secrets, rendered tree"):
            lab.render()
        created = lab.ensure_nodes(steps)
        with steps.timed("-", "files", "rendered files into the nodes"):
            changed = lab.install_files(lab.node_names(), steps, new=created)
        for node, paths in changed.items():
            if node not in created:
                steps.note(f"{node}: files changed on a running node ({', '.join(paths)}); "
                           "running daemons keep their old configuration until restarted")
        actions = components.bring_up(lab, steps)
        with steps.timed("-", "status", "all healthy"):
            first = lab_status.collect(lab)
            if not first["healthy"]:
                steps.note("waiting for: " + "; ".join(first["anomalies"]))
            report = first if first["healthy"] else (
                wait_until(lambda: _healthy(lab), HEALTHY_TIMEOUT_S, 0.5)
                or lab_status.collect(lab))
    return Summary(
        cloud=cloud.name, state_dir=str(lab.state), total_s=steps.elapsed(),
        changed=bool(created or actions or changed), healthy=bool(report["healthy"]),
        status=report, steps=steps.done, skipped=skipped(lab.plan),
        actions=[*(f"created node {n}" for n in created), *actions])


def _healthy(lab: Lab) -> dict[str, Any] | None:
    report = lab_status.collect(lab)
    return report if report["healthy"] else None


def status(cloud: Cloud) -> dict[str, Any]:
    require_root()
    lab = Lab(cloud, "")
    lab.render(write=False)
    if not lab.record.nodes:
        raise LabError(f"lab {cloud.name} is not up (no record in {lab.state}): "
                       "run `hastack up`")
    return lab_status.collect(lab)


def down(cloud_name: str, purge: bool = False) -> list[str]:
    require_root()
    return teardown(cloud_name, purge)


def exec_in(cloud_name: str, node: str, argv: Sequence[str]) -> int:
    """Run a command inside a node's namespaces (like docker exec); returns its exit status.

    The project's venv comes first on PATH, so its clients (`openstack`) run in any node."""
    return subprocess.call(nsenter(_node_pid(cloud_name, node, argv), list(argv)), cwd="/",
                           env=_venv_env())


def _venv_env() -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    return {**os.environ, "PATH": path if venv_bin in path.split(":")
            else f"{venv_bin}:{path}"}


def run_in(cloud_name: str, node: str, argv: Sequence[str], input: str | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Like exec_in, capturing the output (for tests and probes)."""
    return run(nsenter(_node_pid(cloud_name, node, argv), list(argv)), input=input,
               timeout=timeout, check=False)


def _node_pid(cloud_name: str, node: str, argv: Sequence[str]) -> int:
    require_root()
    record = RecordStore(state_dir(cloud_name)).load()
    if record is None:
        raise LabError(f"lab {cloud_name} is not up: run `hastack up`")
    rec = record.nodes.get(node)
    if rec is None:
        raise LabError(f"no node '{node}' in lab {cloud_name} "
                       f"(nodes: {', '.join(record.nodes)})")
    if rec.init is None or not rec.init.alive():
        raise LabError(f"node {node} is not running: run `hastack up` to repair the lab")
    if not argv:
        raise LabError("no command given: hastack exec NODE -- COMMAND...")
    return rec.init.pid
