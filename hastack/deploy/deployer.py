"""What a deployment target offers the command line, and the summary of its `up`.

Stage 5 (deploy). A deployer (the lab, `deploy.lab.LabDeployer`; real hosts next) builds
`Site`s of its nodes and runs `orchestrate` and `health` on them; everything it needs of a node
goes through `base.NodeExec`. A second deployer implements these four methods and a
`NodeExec`, and reuses every module of `deploy.systems` unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from rich.console import Console
from rich.table import Table

from hastack.deploy.health import Health
from hastack.deploy.progress import Reporter, StepTime


class Deployer(Protocol):
    def up(self, reporter: Reporter | None = None) -> Summary:
        """Bring the cloud up, or check and repair a running one; idempotent."""
        ...
    def status(self) -> Health: ...
    def down(self, purge: bool = False) -> list[str]: ...
    def recover(self, reporter: Reporter | None = None, *, dry_run: bool = False,
                force: bool = False, without: Sequence[str] = ()) -> Any:
        """After a whole-cluster power loss: decide from every node's evidence, then act."""
        ...


@dataclass
class Summary:
    cloud: str
    state_dir: str
    total_s: float
    changed: bool
    healthy: bool
    status: Health
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
    for name, holders in status.vip_holders.items():
        table.add_row(f"VIP {name} {status.vips.get(name, '')}",
                      ", ".join(holders) or "[red]nobody[/red]")
    if status.galera:
        galera = status.galera
        table.add_row("Galera", f"size {galera.size}, "
                      f"{'primary' if galera.primary else '[red]non-primary[/red]'}, "
                      f"writer {galera.writer or '[red]none[/red]'}")
    if status.rabbitmq:
        table.add_row("RabbitMQ", "running " + ", ".join(status.rabbitmq.running))
    if status.memcached:
        table.add_row("memcached", ", ".join(status.memcached))
    if status.redis:
        table.add_row("Redis", f"master {status.redis.master or '?'}, sentinels "
                      + ", ".join(status.redis.sentinels))
        for group, members in status.redis.groups.items():
            table.add_row(f"tooz group {group}", "[red]no answer[/red]" if members is None
                          else f"{len(members)} live members")
    for anomaly in status.anomalies:
        table.add_row("[red]anomaly[/red]", str(anomaly))
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
