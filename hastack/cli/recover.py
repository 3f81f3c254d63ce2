"""`hastack recover`: bring a lab back after a whole-cluster power loss, explaining first.

A thin click command over `hastack.deploy.lab.recovery`; the decision itself is pure
(`hastack.deploy.recovery`). Exit status: 0 healthy (or a dry run that would proceed), 1 not
healthy afterwards, 2 refused or failed (one line per reason).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from hastack.cli.lab import _cloud, cloud_option
from hastack.deploy.lab.recover import SHARED_KERNEL_NOTE, RecoveryReport, recover
from hastack.deploy.progress import RichReporter


@click.command("recover")
@click.argument("cloud_arg", metavar="[CLOUD]", required=False,
                type=click.Path(dir_okay=False, path_type=Path))
@cloud_option
@click.option("--dry-run", is_flag=True,
              help="Power the nodes on and inspect them (runs --wsrep-recover), explain the "
                   "decision, start nothing.")
@click.option("--force", is_flag=True,
              help="Bootstrap the most advanced reachable member even when an unreachable "
                   "one might be ahead (its newer writes are lost). Never overrides a cluster "
                   "uuid disagreement.")
@click.option("--without", "without", multiple=True, metavar="NODE",
              help="Treat NODE as lost (its machine or disk is gone): do not read its "
                   "database/broker data, do not start them. Repeatable.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def recover_cmd(cloud_arg: Path | None, cloud_file: Path | None, dry_run: bool, force: bool,
                without: tuple[str, ...], fmt: str) -> None:
    """Recover the lab after every node lost power: Galera, RabbitMQ, then the rest.

    Reads every Galera member's grastate.dat / gvwstate.dat (and runs mariadbd
    --wsrep-recover where the seqno is -1), bootstraps the member with the highest seqno —
    never a stale one just because it says safe_to_bootstrap: 1 — and refuses, with the
    reason, when nodes disagree on the cluster uuid or when a member that might be ahead
    cannot be examined. RabbitMQ restarts last-to-stop first (force_boot when that member is
    gone). The evidence and the decision are kept under <state>/recovery/.

    \b
    Example:
      sudo hastack recover --dry-run
      sudo hastack recover
      sudo hastack recover --without ctl3      # ctl3's machine is gone
    """
    console = Console(highlight=False, stderr=fmt == "json")

    def run() -> RecoveryReport:
        cloud, path = _cloud(cloud_arg or cloud_file)
        console.print(f"Recovering lab [bold]{cloud.name}[/bold] from {path}"
                      + (" (dry run: nothing is started)" if dry_run else ""))
        return recover(cloud, path, RichReporter(console), dry_run=dry_run, force=force,
                       without=without)

    report = run()
    if fmt == "json":
        click.echo(json.dumps(_as_json(report), indent=2, default=str))
    else:
        _print(report, console)
    sys.exit(0 if report.dry_run or report.healthy else 1)


def _as_json(report: RecoveryReport) -> dict[str, object]:
    return {
        "cloud": report.cloud, "dry_run": report.dry_run, "healthy": report.healthy,
        "recovery_s": report.recovery_s, "record_dir": report.record_dir,
        "galera": report.galera.to_json() if report.galera else None,
        "rabbitmq": report.rabbitmq.to_json() if report.rabbitmq else None,
        "actions": report.actions, "queues": report.queues, "left_out": report.left_out,
        "anomalies": [str(a) for a in report.status.anomalies] if report.status else [],
        "note": SHARED_KERNEL_NOTE,
    }


def _print(report: RecoveryReport, console: Console) -> None:
    if report.galera:
        table = Table("node", "seqno", "from", "safe_to_bootstrap", "role",
                      title="Galera members")
        for n in report.galera.nodes:
            seqno = n.position.rsplit(":", 1)[1] if n.position else "-"
            table.add_row(n.name, seqno, n.source, "1" if n.safe_to_bootstrap else "0", n.role)
        console.print(table)
        uuids = {n.position.rsplit(":", 1)[0] for n in report.galera.nodes if n.position}
        if uuids:
            console.print(f"cluster uuid: {', '.join(sorted(uuids))}")
    if report.dry_run:
        console.print("[bold]dry run[/bold]: the decision above would be carried out; "
                      "nothing was started")
        return
    verdict = "[green]healthy[/green]" if report.healthy else "[red]NOT healthy[/red]"
    took = f" in {report.recovery_s:.1f} s" if report.recovery_s is not None else ""
    console.print(f"\nLab [bold]{report.cloud}[/bold] recovered{took} — {verdict}")
    for queue in report.queues:
        console.print(f"queue {queue.get('name')} ({queue.get('type')}): "
                      f"{queue.get('messages')} messages, leader {queue.get('leader')}")
    for anomaly in report.status.anomalies if report.status else ():
        console.print(f"[red]anomaly:[/red] {anomaly}")
    if report.left_out:
        console.print(f"[yellow]left out on purpose: {', '.join(report.left_out)}; "
                      "`hastack up` brings them back as joiners[/yellow]")
    console.print(f"[dim]note: {SHARED_KERNEL_NOTE}[/dim]")
