"""The lab: a real HA control plane on this machine, one set of Linux namespaces per node.

Stage 5 (deploy), the lab's deployer. `up` renders the cloud into the lab's state dir and
realises it — nodes (`nodes`), their network (`network`), their init (`supervisor`), then
the daemons through `deploy.orchestrate` acting on each node through `exec.LabExec` — and
reports `deploy.health`. `down` removes everything by record and name prefix, also after a
crash. Only this package creates namespaces, links, mounts and processes.

    LabDeployer(cloud, cloud_file): up(reporter) -> Summary, status() -> Health,
        down(purge) -> list[str], recover(...) -> RecoveryReport
    exec_in(cloud_name, node, argv) -> int           run_in(cloud_name, node, argv)
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from hastack.deploy import orchestrate
from hastack.deploy.base import wait_until
from hastack.deploy.deployer import Summary
from hastack.deploy.health import Health, collect
from hastack.deploy.lab.exec import LabExec
from hastack.deploy.lab.lab import Lab, teardown
from hastack.deploy.lab.preflight import require_programs, require_root
from hastack.deploy.lab.programs import lab_processes
from hastack.deploy.lab.recover import RecoveryReport, recording_chooser
from hastack.deploy.lab.recover import recover as recover_lab
from hastack.deploy.lab.state import RecordStore, state_dir
from hastack.deploy.progress import QuietReporter, Reporter, Steps
from hastack.errors import LabError
from hastack.model.cloud import Cloud

HEALTHY_TIMEOUT_S = 30
DEFAULT_CLOUD = Path(__file__).resolve().parent.parent.parent / "examples" / "demo.yaml"

__all__ = ["DEFAULT_CLOUD", "LabDeployer", "Summary", "up", "status", "down", "exec_in",
           "run_in"]


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


class LabDeployer:
    """The lab as a `Deployer`: one cloud's nodes as namespaces on this machine."""

    def __init__(self, cloud: Cloud, cloud_file: str = ""):
        self.cloud, self.cloud_file = cloud, cloud_file

    def up(self, reporter: Reporter | None = None) -> Summary:
        """Bring the lab up, or check and repair a running one; never restarts what runs."""
        require_root()
        steps = Steps(reporter or QuietReporter())
        lab = Lab(self.cloud, self.cloud_file)
        require_programs(p.process for p in lab_processes(lab.plan))
        with _teardown_on_signal(self.cloud.name):
            with steps.timed("-", "render", "plan, secrets, rendered tree"):
                lab.render()
            created = lab.ensure_nodes(steps)
            power = lab.ensure_power_controller(steps)
            with steps.timed("-", "files", "rendered files into the nodes"):
                changed = lab.install_files(lab.node_names(), steps, new=created)
            rewritten = {node: paths for node, paths in changed.items() if node not in created}
            for node, paths in rewritten.items():
                steps.note(f"{node}: files changed on a running node ({', '.join(paths)}); "
                           "running daemons keep their old configuration until restarted")
            site = lab.site(steps)
            actions = orchestrate.bring_up(site, choose=recording_chooser(lab, site))
            with steps.timed("-", "status", "all healthy"):
                first = collect(lab.site(), lab.details())
                if not first.healthy:
                    steps.note("waiting for: " + "; ".join(map(str, first.anomalies)))
                report = first if first.healthy else (
                    wait_until(lambda: _healthy(lab), HEALTHY_TIMEOUT_S, 0.5)
                    or collect(lab.site(), lab.details()))
        return Summary(
            cloud=self.cloud.name, state_dir=str(lab.state), total_s=steps.elapsed(),
            changed=bool(created or actions or changed), healthy=report.healthy,
            status=report, steps=steps.done, skipped=list(lab.skipped),
            actions=[*(f"created node {n}" for n in created), *([power] if power else []),
                     *(f"{n}: rewrote {', '.join(paths)}" for n, paths in rewritten.items()),
                     *actions])

    def status(self) -> Health:
        require_root()
        lab = Lab(self.cloud, "")
        lab.render(write=False)
        if not lab.record.nodes:
            raise LabError(f"lab {self.cloud.name} is not up (no record in {lab.state}): "
                           "run `hastack up`")
        lab.attach_running()
        return collect(lab.site(), lab.details())

    def down(self, purge: bool = False) -> list[str]:
        require_root()
        return teardown(self.cloud.name, purge)

    def recover(self, reporter: Reporter | None = None, *, dry_run: bool = False,
                force: bool = False, without: Sequence[str] = ()) -> RecoveryReport:
        return recover_lab(self.cloud, self.cloud_file, reporter, dry_run=dry_run,
                           force=force, without=without)


def _healthy(lab: Lab) -> Health | None:
    lab.attach_running()
    report = collect(lab.site(), lab.details())
    return report if report.healthy else None


def up(cloud: Cloud, cloud_file: str = "", reporter: Reporter | None = None) -> Summary:
    return LabDeployer(cloud, cloud_file).up(reporter)


def status(cloud: Cloud) -> Health:
    return LabDeployer(cloud).status()


def down(cloud_name: str, purge: bool = False) -> list[str]:
    require_root()
    return teardown(cloud_name, purge)


def exec_in(cloud_name: str, node: str, argv: Sequence[str]) -> int:
    """Run a command inside a node's namespaces (like docker exec); returns its exit status.

    The project's venv comes first on PATH, so its clients (`openstack`) run in any node."""
    return subprocess.call(_node(cloud_name, node, argv).argv(list(argv)), cwd="/",
                           env=_venv_env())


def _venv_env() -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    return {**os.environ, "PATH": path if venv_bin in path.split(":")
            else f"{venv_bin}:{path}"}


def run_in(cloud_name: str, node: str, argv: Sequence[str], input: str | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Like exec_in, capturing the output (for tests and probes)."""
    return _node(cloud_name, node, argv).run(list(argv), input=input, timeout=timeout,
                                             check=False)


def _node(cloud_name: str, node: str, argv: Sequence[str]) -> LabExec:
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
    # Only commands run through it: its address is not needed (nor known without the cloud).
    return LabExec(node, rec.init.pid, ipaddress.IPv4Interface("0.0.0.0/0"))
